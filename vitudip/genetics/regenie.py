"""The REGENIE GWAS engine: step 1 (whole-genome ridge regression) then step 2 (association tests).

REGENIE is not in Debian or PyPI; the workflow's ``envs/regenie.yaml`` installs
it from bioconda. Facts that shape this module (REGENIE's documentation, Mbatchou et al. 2021,
Nat Genet 53:1097):

* Step 1 reads one genotype fileset covering all chromosomes (ideally a pruned
  set of < 1 M SNPs, given with ``--extract``) and writes ``S1_pred.list``.
  ``--lowmem`` keeps memory flat when there are many traits.
* Step 2 writes one ``S2_<pheno>.regenie.gz`` per phenotype, space-separated,
  with columns ``CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ [INFO] N TEST BETA SE
  CHISQ LOG10P EXTRA``; ALLELE1 is the tested allele. Rows are matched to the
  .bim by ID and oriented so that the effect allele is ALT, as for every engine.
* Chromosome X: REGENIE codes non-PAR X genotypes of males (sex from the .fam/.psam) by the
  PAR bounds of ``--par-region`` (default hg38), so both steps get the study's build
  (``gwas.regenie.par_region``). Unlike plink2 it adds no sex covariate on X: keep sex among
  the covariates when X is tested.
* Only ``LOG10P`` is reported, so p = 10^-LOG10P; beyond the double range it is
  floored at the smallest positive double (as the GWAS-SSF writer does).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.external_tools import ToolError, find_tool, run_tool
from vitudip.genetics.genotypes import GenotypeFiles, find_genotypes
from vitudip.genetics.gwas_inputs import load_gwas_inputs, select_phenotypes
from vitudip.genetics.plink2 import write_plink2_phenotypes
from vitudip.genetics.sumstats import SMALLEST_P, SUMSTATS_COLUMNS, write_sumstats
from vitudip.io.tables import Table

logger = logging.getLogger("vitudip.gwas")

#: What to do without regenie, added to the error that says how to install it.
REGENIE_INSTEAD = "use gwas.engine: plink2 or torch"

#: Step 2 columns this module needs (INFO, CHISQ and EXTRA are optional or unused).
REGENIE_COLUMNS = ["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "A1FREQ", "N", "TEST", "BETA", "SE", "LOG10P"]
#: A step 2 ``.regenie(.gz)`` report (space-separated).
REGENIE_REPORT = Table("regenie file", required=tuple(REGENIE_COLUMNS), sep=" ",
                       text=("CHROM", "ID", "ALLELE0", "ALLELE1", "TEST"),
                       numbers=("A1FREQ", "BETA", "SE", "LOG10P"), integers=("GENPOS",), strip=False)


def step1_command(
    regenie: str,
    genotypes: GenotypeFiles,
    pheno: str | os.PathLike,
    covar: str | os.PathLike,
    out_prefix: str | os.PathLike,
    tmp_prefix: str | os.PathLike,
    threads: int,
    bsize: int = 1000,
    apply_rint: bool = False,
    extract: str | os.PathLike | None = None,
    par_region: str = "b37",
) -> list[str]:
    """The regenie step 1 command line (ridge-regression predictions of every phenotype).

    Args:
        regenie: regenie executable.
        genotypes: fileset covering all chromosomes.
        pheno: phenotype file (FID, IID, one column per phenotype).
        covar: covariate file (FID, IID, covariates).
        out_prefix: --out prefix S1 (writes S1_pred.list and S1_<i>.loco.gz).
        tmp_prefix: --lowmem-prefix for the on-disk level-0 predictions.
        threads: --threads.
        bsize: genotype block size.
        apply_rint: rank-inverse-normal transform the phenotypes (--apply-rint).
        extract: file of SNP ids to use (the pruned step-1 set); None = all.
        par_region: --par-region, the build whose PAR bounds code chromosome X (b37, b38, hg19, ...).

    Returns:
        The argument list.
    """
    command = [
        regenie, "--step", "1", *genotypes.regenie_args(),
        "--phenoFile", os.fspath(pheno), "--covarFile", os.fspath(covar), "--qt",
    ]
    if apply_rint:
        command.append("--apply-rint")
    if extract is not None:
        command += ["--extract", os.fspath(extract)]
    command += [
        "--bsize", str(bsize), "--par-region", par_region, "--lowmem", "--lowmem-prefix", os.fspath(tmp_prefix),
        "--threads", str(threads), "--gz", "--out", os.fspath(out_prefix),
    ]
    return command


def step2_command(
    regenie: str,
    genotypes: GenotypeFiles,
    pheno: str | os.PathLike,
    covar: str | os.PathLike,
    pred_list: str | os.PathLike,
    out_prefix: str | os.PathLike,
    threads: int,
    bsize: int = 400,
    min_mac: float = 5,
    chromosomes: Sequence[str | int] | None = None,
    phenotypes: Sequence[str] | None = None,
    extract: str | os.PathLike | None = None,
    par_region: str = "b37",
) -> list[str]:
    """The regenie step 2 command line (single-variant additive tests).

    Args:
        regenie: regenie executable.
        genotypes: fileset of the tested variants.
        pheno: phenotype file, the same as in step 1.
        covar: covariate file, the same as in step 1.
        pred_list: step 1's S1_pred.list.
        out_prefix: --out prefix S2 (writes S2_<pheno>.regenie.gz).
        threads: --threads.
        bsize: genotype block size.
        min_mac: skip variants with a minor allele count below this.
        chromosomes: test only these chromosomes (one --chr each); None = all.
        phenotypes: test only these phenotype columns (--phenoColList); None = all.
        extract: test only the variant IDs of this file (--extract; the genotype QC's); None = all.
        par_region: --par-region (as in step 1).

    Returns:
        The argument list.
    """
    command = [
        regenie, "--step", "2", *genotypes.regenie_args(),
        "--phenoFile", os.fspath(pheno), "--covarFile", os.fspath(covar), "--qt",
        "--pred", os.fspath(pred_list), "--bsize", str(bsize), "--minMAC", f"{min_mac:g}",
        "--par-region", par_region,
    ]
    for chromosome in chromosomes or []:
        command += ["--chr", str(chromosome)]
    if phenotypes is not None:
        command += ["--phenoColList", ",".join(phenotypes)]
    if extract is not None:
        command += ["--extract", os.fspath(extract)]
    command += ["--threads", str(threads), "--gz", "--out", os.fspath(out_prefix)]
    return command


def read_regenie(path: str | os.PathLike) -> pd.DataFrame:
    """Read a step 2 ``.regenie(.gz)`` file, keeping only the additive tests.

    Args:
        path: the file.

    Returns:
        Its rows with TEST == "ADD" (index reset), with at least REGENIE_COLUMNS.

    Raises:
        ValueError: a needed column is missing (the message names the file).
    """
    frame = REGENIE_REPORT.read(path)
    # Other tests (DOM, REC, interactions) are never the additive effect we report.
    return frame.loc[frame["TEST"] == "ADD"].reset_index(drop=True)


def p_from_log10(log10p: np.ndarray | pd.Series) -> np.ndarray:
    """p-values from -log10 p, floored at the smallest positive double (NaN stays NaN).

    Args:
        log10p: -log10 p values.

    Returns:
        float64 p-values; those below the double range are SMALLEST_P, never 0.
    """
    with np.errstate(under="ignore"):
        p = np.power(10.0, -np.asarray(log10p, dtype=np.float64))
    return np.where(p < SMALLEST_P, SMALLEST_P, p)


def _variant_rows(regenie: pd.DataFrame, variants: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    """The variant-table row of each regenie row, matched by variant id."""
    if variants["id"].duplicated().any():
        raise ValueError(f"the variant table lists variant id(s) more than once; {path} cannot be matched to it "
                         "by ID")
    rows = variants.set_index("id").reindex(regenie["ID"])
    absent = regenie["ID"][rows["alt"].isna().to_numpy()]
    if len(absent):
        raise ValueError(f"{path}: variant '{absent.iloc[0]}' is not in the genotype fileset's variant table")
    return rows.reset_index()


def parse_regenie(path: str | os.PathLike, variants: pd.DataFrame | None) -> pd.DataFrame:
    """Convert a step 2 file into GWAS-SSF rows with ALT as the effect allele.

    Args:
        path: ``S2_<pheno>.regenie.gz``.
        variants: the tested fileset's variant table (``chrom, id, pos, alt, ref``, as
            :meth:`GenotypeFiles.variants` gives), or None for a BGEN read ``--ref-first``,
            whose ALLELE0 is REF and ALLELE1 (the tested allele) is ALT.

    Returns:
        Frame with the SUMSTATS_COLUMNS, one row per additive test.

    Raises:
        ValueError: missing columns, a variant absent from the variant table, or a
            tested allele that is neither its REF nor its ALT.
    """
    regenie = read_regenie(path)
    if variants is None:
        rows = pd.DataFrame({"chrom": regenie["CHROM"], "pos": regenie["GENPOS"],
                             "alt": regenie["ALLELE1"], "ref": regenie["ALLELE0"]})
    else:
        rows = _variant_rows(regenie, variants, path)
    tested = regenie["ALLELE1"].to_numpy()
    is_alt = tested == rows["alt"].to_numpy()
    is_ref = tested == rows["ref"].to_numpy()
    if not (is_alt | is_ref).all():
        bad = int(np.flatnonzero(~(is_alt | is_ref))[0])
        raise ValueError(f"{path}: tested allele '{tested[bad]}' of {regenie['ID'][bad]} is neither REF nor ALT")
    # When regenie tested REF, the ALT effect is the negative and its frequency the complement.
    sign = np.where(is_alt, 1.0, -1.0)
    frequency = regenie["A1FREQ"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame(
        {
            "chromosome": rows["chrom"],
            "base_pair_location": rows["pos"],
            "effect_allele": rows["alt"],
            "other_allele": rows["ref"],
            "beta": sign * regenie["BETA"].to_numpy(dtype=np.float64),
            "standard_error": regenie["SE"].to_numpy(dtype=np.float64),
            "effect_allele_frequency": np.where(is_alt, frequency, 1.0 - frequency),
            "p_value": p_from_log10(regenie["LOG10P"]),
            "variant_id": regenie["ID"],
            "n": regenie["N"],
        }
    )
    return frame[SUMSTATS_COLUMNS]


def prune_step1_variants(
    genotype_prefix: str | os.PathLike,
    out_prefix: str | os.PathLike,
    window_kb: int = 1000,
    r2: float = 0.5,
    maf: float = 0.01,
    threads: int = 1,
    extract: str | os.PathLike | None = None,
) -> Path:
    """The variants for step 1: common ones, LD-pruned with ``plink2 --indep-pairwise``.

    REGENIE's step 1 only needs the genome's polygenic background, for which
    some hundred thousand pruned common variants suffice; running it on all
    imputed variants would cost hours for nothing.

    Args:
        genotype_prefix: fileset covering all chromosomes.
        out_prefix: plink2 --out prefix (writes ``<out_prefix>.prune.in``).
        window_kb: pruning window in kb.
        r2: r² above which one of a pair is dropped.
        maf: minimum minor-allele frequency.
        threads: plink2 --threads.
        extract: prune among the variant IDs of this file (the genotype QC's); None = all.

    Returns:
        The ``.prune.in`` file (one variant id per line).
    """
    genotypes = find_genotypes(genotype_prefix)
    command = ["plink2", *genotypes.plink2_args(), "--maf", str(maf),
               "--indep-pairwise", f"{window_kb}kb", "1", str(r2), "--threads", str(threads),
               "--out", os.fspath(out_prefix)]
    if extract is not None:
        command[-2:-2] = ["--extract", os.fspath(extract)]
    try:
        run_tool(command, f"LD pruning for regenie step 1 on {genotypes.prefix}", logger, Path(f"{out_prefix}.log"))
    except ToolError as err:
        if "No variants remaining" in err.tail:
            raise ValueError(f"no variant of {genotypes.prefix} passes maf {maf} for regenie step 1") from None
        raise
    kept = Path(f"{out_prefix}.prune.in")
    count = sum(1 for _ in open(kept))
    logger.info("%d variants kept for regenie step 1 (maf >= %g, r2 < %g in %d kb windows)", count, maf, r2,
                window_kb)
    return kept


def regenie_step1(
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    work_dir: str | os.PathLike,
    threads: int = 1,
    extract: str | os.PathLike | None = None,
    bsize: int = 1000,
    par_region: str = "b37",
) -> Path:
    """Run regenie step 1 once for all phenotypes.

    The inputs get the same checks as the other engines first, so all engines
    fail the same way on bad inputs.

    Args:
        genotype_prefix: fileset covering all chromosomes.
        pheno_path: TSV with FID, IID and phenotype columns (empty/NA/NaN = missing).
        covar_path: TSV with FID, IID and numeric covariate columns.
        work_dir: folder for step 1's files (created); they are step 2's input.
        threads: regenie --threads.
        extract: file of variant ids to use (e.g. :func:`prune_step1_variants`); None = all.
        bsize: genotype block size.
        par_region: --par-region, the build of the PAR bounds on X.

    Returns:
        ``<work_dir>/step1_pred.list``, which names the per-phenotype LOCO files by absolute path.
    """
    genotypes = find_genotypes(genotype_prefix)
    inputs = load_gwas_inputs(genotype_prefix, pheno_path, covar_path)
    regenie = find_tool("regenie", instead=REGENIE_INSTEAD)
    # absolute, because step 2 reads the LOCO paths written into the pred list
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # regenie cannot read empty fields: give it the analysed samples with NA for missing.
    pheno_file = work / "pheno.tsv"
    write_plink2_phenotypes(inputs, pheno_file)
    s1 = work / "step1"
    run_tool(step1_command(regenie, genotypes, pheno_file, covar_path, s1, work / "step1_tmp", threads,
                           bsize=bsize, extract=extract, par_region=par_region),
             f"regenie step 1 on {genotypes.prefix}", logger, Path(f"{s1}.log"))
    return Path(f"{s1}_pred.list")


def regenie_step2(
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    pred_list: str | os.PathLike,
    out_dir: str | os.PathLike,
    threads: int = 1,
    chromosomes: Sequence[str | int] | None = None,
    phenotypes: Sequence[str] | None = None,
    bsize: int = 400,
    min_mac: float = 5,
    extract: str | os.PathLike | None = None,
    par_region: str = "b37",
) -> list[Path]:
    """Run regenie step 2 on one shard and write one GWAS-SSF file per phenotype.

    Args:
        genotype_prefix: fileset of the tested variants.
        pheno_path: the phenotype table given to step 1.
        covar_path: the covariate table given to step 1.
        pred_list: step 1's ``step1_pred.list``.
        out_dir: folder for ``<phenotype>.tsv.gz`` (created).
        threads: regenie --threads.
        chromosomes: test only these chromosomes (None = all).
        phenotypes: test only these phenotype columns (None = all).
        bsize: genotype block size.
        min_mac: skip variants with a lower minor allele count.
        extract: test only the variant IDs of this file (the genotype QC's); None = all.
        par_region: --par-region, the build of the PAR bounds on X.

    Returns:
        The written files, in phenotype order.
    """
    if not Path(pred_list).is_file():
        raise FileNotFoundError(f"regenie step 1 prediction list not found: {pred_list}")
    genotypes = find_genotypes(genotype_prefix)
    inputs = load_gwas_inputs(genotype_prefix, pheno_path, covar_path)
    names = select_phenotypes(list(inputs.phenotypes.columns), phenotypes, pheno_path)
    regenie = find_tool("regenie", instead=REGENIE_INSTEAD)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = genotypes.variants()
    with tempfile.TemporaryDirectory(prefix=".regenie-", dir=out) as work:
        # the same analysed samples as step 1, so the same file; --phenoColList picks the shard's columns
        pheno_file = Path(work) / "pheno.tsv"
        write_plink2_phenotypes(inputs, pheno_file)
        s2 = Path(work) / "step2"
        run_tool(step2_command(regenie, genotypes, pheno_file, covar_path, pred_list, s2, threads, bsize=bsize,
                               min_mac=min_mac, chromosomes=chromosomes,
                               phenotypes=names if phenotypes is not None else None, extract=extract,
                               par_region=par_region),
                 f"regenie step 2 on {genotypes.prefix}", logger, Path(f"{s2}.log"))
        written = [write_sumstats(parse_regenie(Path(f"{s2}_{name}.regenie.gz"), variants), out / f"{name}.tsv.gz")
                   for name in names]
    logger.info("converted %d regenie reports to GWAS-SSF in %s", len(written), out)
    return written


def regenie_gwas(
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    threads: int = 1,
    chromosomes: Sequence[str | int] | None = None,
    step1_extract: str | os.PathLike | None = None,
) -> list[Path]:
    """Run regenie step 1 and step 2 in one go (an unsharded run; the workflow runs them as separate jobs).

    Args:
        genotype_prefix: fileset covering all chromosomes.
        pheno_path: TSV with FID, IID and phenotype columns (empty/NA/NaN = missing).
        covar_path: TSV with FID, IID and numeric covariate columns.
        out_dir: folder for ``<phenotype>.tsv.gz`` (created).
        work_dir: folder for step 1's files (created, kept for inspection).
        threads: regenie --threads.
        chromosomes: test only these chromosomes in step 2 (None = all); step 1 always uses all.
        step1_extract: file of variant ids for step 1 (the pruned set); None = all.

    Returns:
        The written files, in phenotype order.
    """
    pred_list = regenie_step1(genotype_prefix, pheno_path, covar_path, work_dir, threads, extract=step1_extract)
    return regenie_step2(genotype_prefix, pheno_path, covar_path, pred_list, out_dir, threads,
                         chromosomes=chromosomes)
