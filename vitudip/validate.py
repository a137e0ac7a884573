"""The checks of the study's inputs that need no model, run before training (the validate_inputs rule).

With the local executor the genotype and phenotype stages run after training, so a mistake in the covariates,
the genotype sample list or ``gwas.chromosomes`` would surface only after hours (on UK Biobank, GPU-days) of
training. These checks read only tables, headers and variant tables' chromosome columns (never genotype data),
and call the functions the later stages check with, so that they refuse what those stages would refuse.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pandas as pd

from vitudip.config import input_table
from vitudip.genetics.genotypes import find_genotypes
from vitudip.genetics.pheno import covariate_matrix, describe_counts, parse_numeric, read_covariates
from vitudip.genetics.prepare import selected_samples
from vitudip.genetics.settings import PhenoSettings
from vitudip.io.chromosomes import require_chromosome
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.plink import check_bed_fileset
from vitudip.io.stage_tables import INPUT_CHECKS
from vitudip.io.tables import match_without_zeros

log = logging.getLogger("vitudip.validate")


def check_covariate_ids(imaged: Sequence[str], samples_path: str, covariate_ids: Sequence[str],
                        covariates_path: str) -> int:
    """The covariates' IIDs match the samples table's subject IDs.

    Args:
        imaged: subject_id of the samples table.
        samples_path: that table, for messages.
        covariate_ids: IID of the covariates table.
        covariates_path: that table, for messages.

    Returns:
        How many subjects both tables hold.

    Raises:
        ValueError: an IID that matches a subject only once leading zeros are stripped, or no IID in common.
    """
    zeros = match_without_zeros(covariate_ids, imaged)
    if zeros:
        raise ValueError(f"covariates file {covariates_path}: IID '{zeros[0]}' matches subject_id '{zeros[1]}' of "
                         f"the samples table {samples_path} only once leading zeros are stripped: the covariates' "
                         "IDs lost their zeros (a spreadsheet does that); write them as in the samples table")
    common = len(set(imaged) & set(covariate_ids))
    if common == 0:
        raise ValueError(f"covariates file {covariates_path}: none of its {len(set(covariate_ids))} IIDs is a "
                         f"subject_id of the samples table {samples_path} (e.g. '{covariate_ids[0]}' against "
                         f"'{imaged[0]}'): both must hold the genotype files' IIDs")
    return common


def analysable_covariates(covariates: pd.DataFrame, path: str, settings: PhenoSettings,
                          subjects: set[str]) -> pd.DataFrame:
    """The covariates the pheno stage would use, of ``subjects``, for those with every used column present.

    Args:
        covariates: the covariates table as :func:`vitudip.genetics.pheno.read_covariates` reads it.
        path: its file, for messages.
        settings: which columns are used.
        subjects: the subjects that may be analysed.

    Raises:
        ValueError: a used column that is missing or holds a non-number where a number is needed.
    """
    missing = [column for column in settings.used_columns() if column not in covariates.columns]
    if missing:
        raise ValueError(f"covariates file {path} lacks column(s) {', '.join(missing)} (config section 'pheno'); "
                         f"available: {', '.join(map(str, covariates.columns))}")
    numeric = parse_numeric(covariates, settings.numeric_columns(), path)
    used = pd.concat([covariates[["IID", *settings.categorical]], numeric], axis=1).set_index("IID")
    used = used[used.index.isin(subjects)]
    return used.dropna(subset=settings.used_columns())


def check_covariate_levels(covariates: pd.DataFrame, path: str, settings: PhenoSettings) -> None:
    """Every covariate varies over the subjects that may be analysed: the pheno stage's own check
    (:func:`vitudip.genetics.pheno.covariate_matrix`), before its samples are known to the last one.

    Args:
        covariates: :func:`analysable_covariates`.
        path: the covariates file, for messages.
        settings: which columns are used.

    Raises:
        ValueError: a categorical covariate with a single level or a constant one (all one sex, one age), naming
            the file.
    """
    try:
        covariate_matrix(covariates, settings)
    except ValueError as err:
        raise ValueError(f"covariates file {path}: {err} (of the subjects with an image, genotypes and every "
                         "covariate of config section 'pheno'); drop it from pheno.covariates or "
                         "pheno.categorical, or fix the column") from None


def check_min_samples(counts: dict[str, int], min_samples: int) -> None:
    """At least ``pheno.min_samples`` subjects can be analysed, before image and genotype QC remove any.

    Args:
        counts: the subjects left after each join step, the last being those that may be analysed.
        min_samples: ``pheno.min_samples``.

    Raises:
        ValueError: naming the key and the counts.
    """
    n = list(counts.values())[-1]
    if n < min_samples:
        raise ValueError(f"config key 'pheno.min_samples' is {min_samples} but at most {n} subjects can be analysed "
                         f"({describe_counts(counts)}), before image and genotype QC remove any: lower it or "
                         "fix the inputs")


def check_chromosomes(genotypes: GenotypeInput, chromosomes: Sequence[str]) -> int:
    """Every analysed chromosome has variants in the genotype files.

    A fileset per chromosome was checked when the workflow started (its files exist); a single fileset's
    variant table is read, its chromosome column only.

    Args:
        genotypes: the study's genotype input.
        chromosomes: the analysed chromosomes (``gwas.chromosomes``).

    Returns:
        How many chromosomes are analysed.

    Raises:
        ValueError: naming the key, the file and the chromosomes it holds.
    """
    if genotypes.per_chromosome:
        return len(chromosomes)
    files = find_genotypes(genotypes.prefix(chromosomes[0]), genotypes.sample_file)
    present = files.chromosomes()
    absent = [c for c in chromosomes if require_chromosome(c, "config key 'gwas.chromosomes'") not in present]
    if absent:
        raise ValueError(f"config key 'gwas.chromosomes' lists {', '.join(absent)}, but {files.variant_file} has no "
                         f"variant on {'it' if len(absent) == 1 else 'them'} (it holds chromosome(s) "
                         f"{', '.join(sorted(present)) or 'none'}): list only those it holds")
    return len(chromosomes)


def check_bed_sizes(genotypes: GenotypeInput, chromosomes: Sequence[str]) -> int:
    """Every PLINK 1 .bed of the genotype input has the size its .fam and .bim give it (a truncated copy is
    otherwise found only when the genotypes are prepared, after training).

    Args:
        genotypes: the study's genotype input.
        chromosomes: the analysed chromosomes.

    Returns:
        How many .bed files were checked.

    Raises:
        ValueError: naming the .bed, its size and the size it should have.
    """
    wanted = chromosomes if genotypes.per_chromosome else chromosomes[:1]
    prefixes = dict.fromkeys(genotypes.prefix(c) for c in wanted)
    checked = 0
    for prefix in prefixes:
        if find_genotypes(prefix, genotypes.sample_file).format == "bed":
            check_bed_fileset(prefix)
            checked += 1
    return checked


def validate_inputs(samples_path: str, covariates_path: str, genotypes: GenotypeInput, chromosomes: Sequence[str],
                    keep_path: str | None, settings: PhenoSettings, out: str | os.PathLike) -> pd.DataFrame:
    """Check the inputs the stages after training read, and write ``checks/inputs.tsv``: each check, its file,
    and a count.

    Args:
        samples_path: the samples table (``inputs.samples``).
        covariates_path: the covariates table (``inputs.covariates``).
        genotypes: the genotype input (``inputs.genotypes``, ``inputs.genotype_samples``).
        chromosomes: the analysed chromosomes.
        keep_path: ``genotype_qc.keep``, or None.
        settings: the ``pheno`` section.
        out: the table to write.

    Raises:
        ValueError: the first problem, naming the file, key, line or an example ID.
    """
    imaged = list(input_table("samples").read(samples_path)["subject_id"])
    covariates = read_covariates(covariates_path)
    rows = [("subjects", samples_path, len(imaged), "subjects of the samples table")]
    common = check_covariate_ids(imaged, samples_path, list(covariates["IID"]), covariates_path)
    rows.append(("covariate IDs", covariates_path, common, "subjects with an image and covariates"))
    files = find_genotypes(genotypes.prefix(chromosomes[0]), genotypes.sample_file)
    selection = selected_samples(files, set(imaged), keep_path)
    genotyped = set(selection.loc[selection["reason"] == "", "IID"])
    rows.append(("genotype samples", files.sample_file, len(genotyped), "genotype samples with an image analysed"))
    rows.append(("chromosomes", files.variant_file, check_chromosomes(genotypes, chromosomes),
                 "analysed chromosomes with variants"))
    rows.append(("PLINK 1 .bed sizes", files.prefix, check_bed_sizes(genotypes, chromosomes),
                 ".bed files whose size fits their .fam and .bim"))
    used = analysable_covariates(covariates, covariates_path, settings, genotyped)
    counts = {"in the samples table": len(imaged), "with genotypes": len(genotyped),
              "with covariates": len(genotyped & set(covariates["IID"])), "with complete covariates": len(used)}
    check_min_samples(counts, settings.min_samples)
    rows.append(("pheno.min_samples", covariates_path, len(used), describe_counts(counts)))
    check_covariate_levels(used, covariates_path, settings)
    rows.append(("covariate levels", covariates_path, len(settings.used_columns()), "covariates that vary"))
    table = pd.DataFrame(rows, columns=["check", "file", "count", "detail"])
    INPUT_CHECKS.write(table, out)
    for row in rows:
        log.info("%s: %s (%d, %s)", row[0], row[1], row[2], row[3])
    return table
