"""The plink2 GWAS engine: one ``plink2 --glm`` pass over all phenotypes, converted to GWAS-SSF.

Facts about plink2 2.00a3.5 (Debian bookworm) that shape the command, checked
on its output:

* By default the A1 column of ``--glm`` is the minor allele in the analysed
  samples, so for a variant whose ALT is the major allele A1 is REF. The
  ``omit-ref`` modifier makes A1 the ALT allele; the conversion still checks
  A1 per variant and flips beta and the frequency when A1 is REF.
* ``cols=...,a1freq,...`` gives A1_FREQ over the samples of that phenotype's
  regressions (not the whole file); ``nobs`` gives OBS_CT.
* P is printed with six significant digits even below the double range
  (e.g. 2.68486e-402); such values parse as 0 and are floored when written.
  The ``log10`` modifier (LOG10_P) is not used: its six significant digits of
  -log10 p are coarser than P's for strong hits.
* An empty field in ``--pheno`` is an error ("fewer tokens than expected"), so
  plink2 reads a copy of the phenotypes with NA for missing values; phenotypes
  with different missing samples are fitted in separate internal passes.
* On chrX (``--xchr-model 2``, the default) male genotypes are coded 0..2 as stored, and the
  .fam/.psam sex is added as a covariate when both sexes are present (samples of unknown sex
  then leave chrX's regressions); XY/PAR1/PAR2 are analysed like autosomes. When the
  covariates hold sex already, adding it again stops plink2 with VIF_INFINITE, so then
  ``no-x-sex`` is given (:func:`~vitudip.genetics.gwas_inputs.sex_covariate_on_x`, which the
  torch engine follows too).
* A phenotype or covariate value of exactly -9 is read as missing unless
  ``--no-input-missing-phenotype``; that flag then makes the .fam's -9
  phenotype column a constant phenotype "PHENO1" unless ``--no-psam-pheno``.
  Both flags are given.
* A phenotype whose values are all 0, 1 or 2 is read as case/control (0 =
  missing) and fitted by logistic regression; plink2_gwas refuses such a
  phenotype rather than let the engines disagree.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.external_tools import find_tool, run_tool
from vitudip.genetics.genotypes import GenotypeFiles, find_genotypes
from vitudip.genetics.gwas_inputs import GwasInputs, load_gwas_inputs, select_variants, sex_covariate_on_x
from vitudip.genetics.sumstats import STATISTIC_COLUMNS, SumstatsWriter, VariantTexts, variant_texts
from vitudip.io.tables import Table

logger = logging.getLogger("vitudip.gwas")

#: --glm report columns: A1 frequency, OBS_CT, BETA, SE, T_STAT, P and ERRCODE besides the variant.
GLM_COLUMNS = "chrom,pos,ref,alt,a1freq,nobs,beta,se,tz,p,err"
#: The ``.glm.linear`` report those columns give, as it is read.
GLM_REPORT = Table("plink2 --glm report", required=("#CHROM", "POS", "ID", "REF", "ALT", "A1", "A1_FREQ", "OBS_CT",
                                                     "BETA", "SE", "P"),
                   text=("#CHROM", "ID", "REF", "ALT", "A1", "ERRCODE"),
                   numbers=("A1_FREQ", "BETA", "SE", "T_STAT", "P"), integers=("POS", "OBS_CT"), strip=False)


def write_plink2_phenotypes(inputs: GwasInputs, path: Path) -> None:
    """Write the analysed samples' phenotypes as plink2 reads them (NA = missing, exact decimals).

    Args:
        inputs: aligned inputs from load_gwas_inputs.
        path: output TSV.
    """
    table = pd.concat([inputs.samples, inputs.phenotypes], axis=1)
    # %.17g round-trips every double, so plink2 sees exactly the values the torch engine uses.
    table.to_csv(path, sep="\t", index=False, na_rep="NA", float_format="%.17g")


def require_quantitative(inputs: GwasInputs, pheno_path: str | os.PathLike) -> None:
    """Raise ValueError for a phenotype that plink2 would read as case/control (all values 0, 1 or 2)."""
    for name in inputs.phenotypes.columns:
        values = inputs.phenotypes[name].dropna()
        if values.isin([0.0, 1.0, 2.0]).all():
            raise ValueError(
                f"phenotype '{name}' in {pheno_path} holds only 0/1/2 values, which plink2 reads as case/control "
                "(logistic regression); use the torch engine (gwas.engine: torch) for a linear model of it"
            )


def glm_command(
    binary: str,
    genotypes: GenotypeFiles,
    pheno_file: Path,
    covar_path: str | os.PathLike,
    out_prefix: Path,
    threads: int,
    chromosomes: Sequence[str | int] | None,
    memory_mb: int | None = None,
    extract: str | os.PathLike | None = None,
    x_sex: bool = True,
) -> list[str]:
    """The plink2 --glm command line over all phenotypes of ``pheno_file``.

    Args:
        binary: plink2 executable.
        genotypes: the genotype fileset.
        pheno_file: phenotypes (every non-ID column is analysed).
        covar_path: covariates (every non-ID column is used).
        out_prefix: plink2 --out prefix.
        threads: plink2 --threads.
        chromosomes: plink2 --chr selection (None = all).
        memory_mb: plink2 --memory, its workspace (None: plink2 takes half of the machine's memory,
            more than a cluster job may have).
        extract: plink2 --extract, the file of variant IDs to test (the genotype QC's); None = all.
        x_sex: let plink2 add sex as a covariate on chrX (False: ``no-x-sex``).

    Returns:
        The argument list.
    """
    command = [
        binary, *genotypes.plink2_args(),
        "--pheno", os.fspath(pheno_file), "--no-psam-pheno", "--no-input-missing-phenotype",
        "--covar", os.fspath(covar_path), "--covar-variance-standardize",
        "--glm", "hide-covar", "omit-ref", *([] if x_sex else ["no-x-sex"]), f"cols={GLM_COLUMNS}",
        "--threads", str(threads),
        "--out", os.fspath(out_prefix),
    ]
    if chromosomes is not None:
        command[-2:-2] = ["--chr", ",".join(str(c) for c in chromosomes)]
    if memory_mb is not None:
        command[-2:-2] = ["--memory", str(memory_mb)]
    if extract is not None:
        command[-2:-2] = ["--extract", os.fspath(extract)]
    return command


def glm_to_sumstats(glm_path: Path) -> pd.DataFrame:
    """Convert a plink2 ``.glm.linear`` report into GWAS-SSF rows with ALT as the effect allele.

    Args:
        glm_path: report written with GLM_COLUMNS.

    Returns:
        Frame with the SUMSTATS_COLUMNS.
    """
    glm = GLM_REPORT.read(glm_path)
    a1_is_alt = (glm["A1"] == glm["ALT"]).to_numpy()
    a1_is_ref = (glm["A1"] == glm["REF"]).to_numpy()
    if not (a1_is_alt | a1_is_ref).all():
        row = glm.loc[~(a1_is_alt | a1_is_ref)].iloc[0]
        raise ValueError(f"{glm_path}: A1 '{row['A1']}' of {row['ID']} is neither REF nor ALT (multi-allelic?)")
    sign = np.where(a1_is_alt, 1.0, -1.0)
    a1_frequency = glm["A1_FREQ"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "chromosome": glm["#CHROM"],
            "base_pair_location": glm["POS"],
            "effect_allele": glm["ALT"],
            "other_allele": glm["REF"],
            "beta": sign * glm["BETA"].to_numpy(dtype=np.float64),
            "standard_error": glm["SE"],
            "effect_allele_frequency": np.where(a1_is_alt, a1_frequency, 1.0 - a1_frequency),
            "p_value": glm["P"],
            "variant_id": glm["ID"],
            "n": glm["OBS_CT"],
        }
    )


def convert_reports(reports: list[Path], outputs: list[Path]) -> list[Path]:
    """Convert plink2 reports into GWAS-SSF files, reading report i + 1 while writing file i.

    The variant columns are formatted once and reused while consecutive
    reports list the same variants (every phenotype of one --glm run does).

    Args:
        reports: ``.glm.linear`` files.
        outputs: one GWAS-SSF path per report.

    Returns:
        The written paths.
    """
    shared: tuple[np.ndarray, VariantTexts] | None = None
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = reader.submit(glm_to_sumstats, reports[0]) if reports else None
        for i, output in enumerate(outputs):
            frame = upcoming.result()
            if i + 1 < len(reports):
                upcoming = reader.submit(glm_to_sumstats, reports[i + 1])
            ids = frame["variant_id"].to_numpy()
            if shared is None or not np.array_equal(shared[0], ids):
                shared = (ids, variant_texts(frame))
            with SumstatsWriter(output) as writer:
                writer.write_statistics(shared[1], *(frame[c].to_numpy() for c in STATISTIC_COLUMNS))
    return list(outputs)


def plink2_gwas(
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    threads: int = 1,
    chromosomes: Sequence[str | int] | None = None,
    phenotypes: Sequence[str] | None = None,
    memory_mb: int | None = None,
    extract: str | os.PathLike | None = None,
) -> list[Path]:
    """Run ``plink2 --glm`` over all phenotypes in one pass and write one GWAS-SSF file per phenotype.

    The inputs get the same checks as the torch engine first (overlapping
    samples, complete numeric covariates, no constant phenotype, no collinear
    covariates), so both engines fail the same way on bad inputs.

    Args:
        genotype_prefix: genotype fileset prefix (PLINK 1, PLINK 2 or BGEN; plink2 reads each natively).
        pheno_path: TSV with FID, IID and phenotype columns (empty/NA/NaN = missing).
        covar_path: TSV with FID, IID and numeric covariate columns (no intercept).
        out_dir: folder for ``<phenotype>.tsv.gz`` (created).
        threads: plink2 --threads.
        chromosomes: only these chromosomes (None = all), for sharded runs.
        phenotypes: only these phenotype columns (None = all), for sharded runs.
        memory_mb: plink2's workspace (--memory); None: plink2's default.
        extract: file of the variant IDs to test (``genotypes/variants_pass.txt``); None = all.

    Returns:
        The written files, in phenotype order.
    """
    binary = find_tool("plink2", instead="use the in-process engine instead (gwas.engine: torch)")
    genotypes = find_genotypes(genotype_prefix)
    inputs = load_gwas_inputs(genotype_prefix, pheno_path, covar_path, phenotypes)
    require_quantitative(inputs, pheno_path)
    variants = genotypes.variants()
    if variants is not None:  # fail early when the shard has no variant (a BGEN's are only known to plink2)
        select_variants(variants, chromosomes, genotypes.variant_file)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".plink2-", dir=out_dir) as work:
        pheno_file = Path(work) / "pheno.tsv"
        write_plink2_phenotypes(inputs, pheno_file)
        out_prefix = Path(work) / "gwas"
        command = glm_command(binary, genotypes, pheno_file, covar_path, out_prefix, threads, chromosomes, memory_mb,
                               extract, x_sex=sex_covariate_on_x(inputs))
        names = list(inputs.phenotypes.columns)
        run_tool(command, f"GWAS of {len(names)} phenotypes on {genotypes.prefix}", logger, Path(f"{out_prefix}.log"))
        reports = [Path(f"{out_prefix}.{name}.glm.linear") for name in names]
        written = convert_reports(reports, [out_dir / f"{name}.tsv.gz" for name in names])
    logger.info("converted %d plink2 reports to GWAS-SSF in %s", len(written), out_dir)
    return written
