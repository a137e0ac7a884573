"""The checks of the study's inputs that need no model, run before training (the validate_inputs rule).

With the local executor the genotype and phenotype stages run after training, so a mistake in the covariates,
the genotype filesets or ``gwas.chromosomes`` would surface only after hours (on UK Biobank, GPU-days) of
training. These checks read only tables, headers and variant tables (never genotype data), and call the
functions the later stages check with, so that they refuse what those stages would refuse.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vitudip.config import input_table
from vitudip.genetics.genotypes import GenotypeFiles, check_pgen, find_genotypes, unique_ids_command, variant_position
from vitudip.genetics.pheno import covariate_matrix, describe_counts, parse_numeric, read_covariates
from vitudip.genetics.prepare import selected_samples, unique_variant_ids
from vitudip.genetics.settings import PhenoSettings
from vitudip.imaging.splits import read_splits, split_counts
from vitudip.io.chromosomes import canonical_chromosome, require_chromosome
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


def check_split_sizes(subjects: Sequence[str], samples_path: str, splits: dict, batch_size: int) -> int:
    """The train split can hold a batch: ``preprocess.splits``' share of the samples table, or the subjects a
    splits file puts there (at most: image QC may remove some).

    Args:
        subjects: subject_id of the samples table.
        samples_path: that table, for messages.
        splits: the config's ``preprocess.splits`` (train, val, test fractions and file).
        batch_size: ``train.batch_size``.

    Returns:
        The train split's subjects at most.

    Raises:
        ValueError: a train split smaller than a batch, naming the keys, the file and the counts.
    """
    if splits["file"] is not None:
        table = read_splits(splits["file"])
        train = int(table.loc[table["subject_id"].isin(set(subjects)), "split"].eq("train").sum())
        source = (f"the splits file {splits['file']} (config key 'preprocess.splits.file') puts {train} subjects of "
                  f"{samples_path} in the train split")
        fix = "put more subjects in the train split"
    else:
        fractions = (splits["train"], splits["val"], splits["test"])
        train = split_counts(len(subjects), fractions)[0]
        source = (f"config key 'preprocess.splits.train' ({splits['train']}) gives the train split {train} of the "
                  f"{len(subjects)} subjects of {samples_path}, before image QC removes any")
        fix = "raise preprocess.splits.train or add subjects"
    if train < batch_size:
        raise ValueError(f"{source}, fewer than config key 'train.batch_size' ({batch_size}): a batch would never "
                         f"fill: {fix}, or lower train.batch_size")
    return train


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


def _variant_table(files: GenotypeFiles) -> pd.DataFrame:
    """A fileset's variant table (chrom, id, pos, alt, ref), a BGEN's from its index or variant headers (which
    refuse a .bgen that ends before its last variant)."""
    if files.format != "bgen":
        return files.variants()
    # the reader prepare_genotypes decodes with: it refuses what that stage would (multi-allelic variants too)
    from vitudip.genetics.dosages import BgenReader

    with BgenReader(files) as bgen:
        return bgen.variants


def _check_size(files: GenotypeFiles, n_samples: int, n_variants: int) -> None:
    """A .bed or .pgen holds what its sample and variant files list (a truncated copy fails)."""
    if files.format == "bed":
        check_bed_fileset(files.prefix)
    elif files.format == "pgen":
        check_pgen(f"{files.prefix}.pgen", n_samples, n_variants, files.sample_file, files.variant_file)


def _check_same_samples(first: GenotypeFiles, first_ids: np.ndarray, files: GenotypeFiles, ids: np.ndarray) -> None:
    """Every chromosome's fileset lists the samples of the first, in its order (prepare_genotypes takes one
    selection of rows for all)."""
    if len(ids) == len(first_ids) and (ids == first_ids).all():
        return
    differ = np.flatnonzero(ids[: len(first_ids)] != first_ids[: len(ids)])
    at = int(differ[0]) if differ.size else min(len(ids), len(first_ids))
    example = (f"sample {at + 1} is '{ids[at] if at < len(ids) else '(none)'}' there and "
               f"'{first_ids[at] if at < len(first_ids) else '(none)'}' in {first.sample_file}")
    raise ValueError(f"{files.sample_file} lists {len(ids)} samples, {first.sample_file} {len(first_ids)}: not the "
                     f"same samples in the same order ({example}); every chromosome's genotypes must list the same "
                     "samples (set inputs.genotype_samples for one .sample shared by every chromosome's BGEN)")


def _chromosome_ids(table: pd.DataFrame, chrom: np.ndarray, chromosome: str) -> tuple[np.ndarray, pd.Series]:
    """A chromosome's rows of a variant table and their IDs as prepare_genotypes makes them (a missing or
    repeated ID becomes ``<chrom>:<pos>_<ref>_<alt>``).

    Args:
        table: the fileset's variant table.
        chrom: its chromosome column, canonical.
        chromosome: the chromosome, as ``gwas.chromosomes`` writes it.
    """
    rows = np.flatnonzero(chrom == require_chromosome(chromosome, "config key 'gwas.chromosomes'"))
    return rows, unique_variant_ids(table.iloc[rows].reset_index(drop=True))[0]


def _fileset_ids(files: GenotypeFiles) -> tuple[pd.DataFrame, np.ndarray]:
    """A fileset's variant table and its canonical chromosome column."""
    table = _variant_table(files)
    return table, table["chrom"].map({c: canonical_chromosome(c) for c in table["chrom"].unique()}).to_numpy()


class _SeenIds:
    """The variant IDs of the chromosomes read so far, as 64-bit hashes (8 bytes a variant, whatever the IDs); a
    hash seen before is confirmed on the IDs themselves, read again, so a collision of two hashes refuses nothing."""

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []
        self.where: list[tuple[GenotypeFiles, str]] = []

    def add(self, ids: pd.Series, rows: np.ndarray, table: pd.DataFrame, files: GenotypeFiles,
            chromosome: str) -> None:
        """Add one chromosome's IDs, refusing one another chromosome has.

        Raises:
            ValueError: naming the variant's file and line, the ID and the file of the other chromosome.
        """
        hashes = pd.util.hash_pandas_object(ids, index=False).to_numpy()
        for earlier, (other, other_chromosome) in zip(self.hashes, self.where):
            candidates = np.flatnonzero(np.isin(hashes, earlier))
            if not candidates.size:
                continue
            other_ids = _chromosome_ids(*_fileset_ids(other), other_chromosome)[1]
            repeated = candidates[ids.iloc[candidates].isin(set(other_ids)).to_numpy()]
            if repeated.size:
                at = int(repeated[0])
                row = table.iloc[rows[at]]
                path = files.variant_file
                raise ValueError(
                    f"{path} {variant_position(path, int(rows[at]))}: variant ID '{ids.iloc[at]}' "
                    f"({row['chrom']}:{row['pos']}) is also the ID of a variant on chromosome {other_chromosome} "
                    f"({other.variant_file}; {repeated.size} IDs of chromosome {chromosome} are): the GWAS files, "
                    f"loci and LD lookups key variants by ID across chromosomes; give every variant its own ID "
                    f"first, e.g. {unique_ids_command(path, files.sample_file if files.format == 'bgen' else None)}")
        self.hashes.append(hashes)
        self.where.append((files, chromosome))


def check_genotype_filesets(genotypes: GenotypeInput, chromosomes: Sequence[str]) -> int:
    """Every genotype fileset the analysis reads, as far as it can be checked without reading genotypes:

    - each chromosome's fileset lists the samples of the first chromosome's, in the same order;
    - a .bed or .pgen holds the samples and variants its sample and variant files list (not truncated), and a
      .bgen holds every variant its header counts;
    - no variant ID of one chromosome is that of a variant on another, once a missing (``.``) or repeated ID
      within a chromosome is made ``<chrom>:<pos>_<ref>_<alt>`` as prepare_genotypes makes it: every stage
      after it keys variants by ID across chromosomes.

    Args:
        genotypes: the study's genotype input.
        chromosomes: the analysed chromosomes (present in the files: :func:`check_chromosomes`).

    Returns:
        How many filesets were checked.

    Raises:
        ValueError: the first problem, naming the file, and the sample, line or variant ID.
    """
    by_prefix: dict[str, list[str]] = {}
    for chromosome in chromosomes:
        by_prefix.setdefault(genotypes.prefix(chromosome), []).append(chromosome)
    first = first_ids = None
    seen = _SeenIds()
    for prefix, held in by_prefix.items():
        files = find_genotypes(prefix, genotypes.sample_file)
        ids = files.samples()["IID"].to_numpy(dtype=str)
        if first is None:
            first, first_ids = files, ids
        _check_same_samples(first, first_ids, files, ids)
        table, chrom = _fileset_ids(files)
        _check_size(files, len(ids), len(table))
        for chromosome in held:
            rows, unique = _chromosome_ids(table, chrom, chromosome)
            seen.add(unique, rows, table, files, chromosome)
        log.info("%s: %d samples, %d variants, IDs of chromosome(s) %s checked", files.variant_file, len(ids),
                 len(table), ", ".join(held))
    return len(by_prefix)


def validate_inputs(samples_path: str, covariates_path: str, genotypes: GenotypeInput, chromosomes: Sequence[str],
                    keep_path: str | None, settings: PhenoSettings, splits: dict, batch_size: int,
                    out: str | os.PathLike, ld_reference: str | None = None) -> pd.DataFrame:
    """Check the inputs the stages after training read, and write ``checks/inputs.tsv``: each check, its file,
    and a count.

    Args:
        samples_path: the samples table (``inputs.samples``).
        covariates_path: the covariates table (``inputs.covariates``).
        genotypes: the genotype input (``inputs.genotypes``, ``inputs.genotype_samples``).
        chromosomes: the analysed chromosomes.
        keep_path: ``genotype_qc.keep``, or None.
        settings: the ``pheno`` section.
        splits: ``preprocess.splits``.
        batch_size: ``train.batch_size``.
        out: the table to write.
        ld_reference: ``loci.ld_reference``, a PLINK 1 prefix, or None.

    Raises:
        ValueError: the first problem, naming the file, key, line or an example ID.
    """
    imaged = list(input_table("samples").read(samples_path)["subject_id"])
    covariates = read_covariates(covariates_path)
    rows = [("subjects", samples_path, len(imaged), "subjects of the samples table")]
    rows.append(("train split", splits["file"] or samples_path, check_split_sizes(imaged, samples_path, splits,
                                                                                  batch_size),
                 "train subjects at most (before image QC)"))
    common = check_covariate_ids(imaged, samples_path, list(covariates["IID"]), covariates_path)
    rows.append(("covariate IDs", covariates_path, common, "subjects with an image and covariates"))
    files = find_genotypes(genotypes.prefix(chromosomes[0]), genotypes.sample_file)
    selection = selected_samples(files, set(imaged), keep_path)
    genotyped = set(selection.loc[selection["reason"] == "", "IID"])
    rows.append(("genotype samples", files.sample_file, len(genotyped), "genotype samples with an image analysed"))
    rows.append(("chromosomes", files.variant_file, check_chromosomes(genotypes, chromosomes),
                 "analysed chromosomes with variants"))
    rows.append(("genotype filesets", files.prefix, check_genotype_filesets(genotypes, chromosomes),
                 "filesets with the same samples, complete, with variant IDs unique across chromosomes"))
    if ld_reference is not None:
        # read by the loci stage, after training: a truncated copy would stop it there
        check_bed_fileset(ld_reference)
        rows.append(("LD reference", f"{ld_reference}.bed", 1, "the .bed's size fits its .fam and .bim"))
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
