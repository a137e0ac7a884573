"""The REGENIE GWAS engine: step 1 (whole-genome ridge regression) then step 2 (association tests).

REGENIE is not in Debian or PyPI; the workflow's ``envs/regenie.yaml`` installs
it from bioconda. Facts that shape this module (REFERENCE §4):

* Step 1 reads one genotype fileset covering all chromosomes (ideally a pruned
  set of < 1 M SNPs, given with ``--extract``) and writes ``S1_pred.list``.
  ``--lowmem`` keeps memory flat when there are many traits.
* Step 2 writes one ``S2_<pheno>.regenie.gz`` per phenotype, space-separated,
  with columns ``CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ [INFO] N TEST BETA SE
  CHISQ LOG10P EXTRA``; ALLELE1 is the tested allele. Rows are matched to the
  .bim by ID and oriented so that the effect allele is ALT, as for every engine.
* Only ``LOG10P`` is reported, so p = 10^-LOG10P; beyond the double range it is
  floored at the smallest positive double (as the GWAS-SSF writer does).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.linear import load_gwas_inputs
from vitudip.genetics.plink2 import LOG_TAIL_LINES, write_plink2_phenotypes
from vitudip.genetics.sumstats import SMALLEST_P, SUMSTATS_COLUMNS, write_sumstats
from vitudip.io.plink import read_bim

logger = logging.getLogger("vitudip.gwas")

REGENIE_BINARY = "regenie"

#: Step 2 columns this module needs (INFO, CHISQ and EXTRA are optional or unused).
REGENIE_COLUMNS = ["CHROM", "GENPOS", "ID", "ALLELE0", "ALLELE1", "A1FREQ", "N", "TEST", "BETA", "SE", "LOG10P"]


class RegenieError(RuntimeError):
    """regenie exited with an error."""


def find_regenie() -> str:
    """Path of the regenie binary on PATH.

    Returns:
        The executable's path.

    Raises:
        FileNotFoundError: regenie is not installed, with what to do about it.
    """
    path = shutil.which(REGENIE_BINARY)
    if path is None:
        raise FileNotFoundError(
            "regenie is not on PATH: install it from bioconda (the workflow's envs/regenie.yaml does) "
            "or use gwas.engine: plink2 or torch"
        )
    return path


def step1_command(
    regenie: str,
    bed_prefix: str | os.PathLike,
    pheno: str | os.PathLike,
    covar: str | os.PathLike,
    out_prefix: str | os.PathLike,
    tmp_prefix: str | os.PathLike,
    threads: int,
    bsize: int = 1000,
    apply_rint: bool = False,
    extract: str | os.PathLike | None = None,
) -> list[str]:
    """The regenie step 1 command line (ridge-regression predictions of every phenotype).

    Args:
        regenie: regenie executable.
        bed_prefix: PLINK fileset prefix covering all chromosomes.
        pheno: phenotype file (FID, IID, one column per phenotype).
        covar: covariate file (FID, IID, covariates).
        out_prefix: --out prefix S1 (writes S1_pred.list and S1_<i>.loco.gz).
        tmp_prefix: --lowmem-prefix for the on-disk level-0 predictions.
        threads: --threads.
        bsize: genotype block size.
        apply_rint: rank-inverse-normal transform the phenotypes (--apply-rint).
        extract: file of SNP ids to use (the pruned step-1 set); None = all.

    Returns:
        The argument list.
    """
    command = [
        regenie, "--step", "1", "--bed", os.fspath(bed_prefix),
        "--phenoFile", os.fspath(pheno), "--covarFile", os.fspath(covar), "--qt",
    ]
    if apply_rint:
        command.append("--apply-rint")
    if extract is not None:
        command += ["--extract", os.fspath(extract)]
    command += [
        "--bsize", str(bsize), "--lowmem", "--lowmem-prefix", os.fspath(tmp_prefix),
        "--threads", str(threads), "--gz", "--out", os.fspath(out_prefix),
    ]
    return command


def step2_command(
    regenie: str,
    bed_prefix: str | os.PathLike,
    pheno: str | os.PathLike,
    covar: str | os.PathLike,
    pred_list: str | os.PathLike,
    out_prefix: str | os.PathLike,
    threads: int,
    bsize: int = 400,
    min_mac: int = 5,
    chromosomes: Sequence[str | int] | None = None,
) -> list[str]:
    """The regenie step 2 command line (single-variant additive tests).

    Args:
        regenie: regenie executable.
        bed_prefix: PLINK fileset prefix of the tested variants.
        pheno: phenotype file, the same as in step 1.
        covar: covariate file, the same as in step 1.
        pred_list: step 1's S1_pred.list.
        out_prefix: --out prefix S2 (writes S2_<pheno>.regenie.gz).
        threads: --threads.
        bsize: genotype block size.
        min_mac: skip variants with a minor allele count below this.
        chromosomes: test only these chromosomes (one --chr each); None = all.

    Returns:
        The argument list.
    """
    command = [
        regenie, "--step", "2", "--bed", os.fspath(bed_prefix),
        "--phenoFile", os.fspath(pheno), "--covarFile", os.fspath(covar), "--qt",
        "--pred", os.fspath(pred_list), "--bsize", str(bsize), "--minMAC", str(min_mac),
    ]
    for chromosome in chromosomes or []:
        command += ["--chr", str(chromosome)]
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
    text = {"CHROM": str, "ID": str, "ALLELE0": str, "ALLELE1": str, "TEST": str}
    frame = pd.read_csv(path, sep=" ", dtype=text, na_values=["NA"], keep_default_na=False)
    missing = [c for c in REGENIE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"regenie file {path} lacks column(s) {missing}")
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


def _bim_rows(regenie: pd.DataFrame, bim: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    """The .bim row of each regenie row, matched by variant id."""
    if bim["id"].duplicated().any():
        raise ValueError(f"the .bim lists variant id(s) more than once; {path} cannot be matched to it by ID")
    rows = bim.set_index("id").reindex(regenie["ID"])
    absent = regenie["ID"][rows["alt"].isna().to_numpy()]
    if len(absent):
        raise ValueError(f"{path}: variant '{absent.iloc[0]}' is not in the .bim")
    return rows.reset_index()


def parse_regenie(path: str | os.PathLike, bim: pd.DataFrame) -> pd.DataFrame:
    """Convert a step 2 file into GWAS-SSF rows with ALT (from the .bim) as the effect allele.

    Args:
        path: ``S2_<pheno>.regenie.gz``.
        bim: the .bim of the tested fileset (``read_bim``: chrom, id, pos, alt, ref).

    Returns:
        Frame with the SUMSTATS_COLUMNS, one row per additive test.

    Raises:
        ValueError: missing columns, a variant absent from the .bim, or a
            tested allele that is neither its REF nor its ALT.
    """
    regenie = read_regenie(path)
    rows = _bim_rows(regenie, bim, path)
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


def _log_tail(log_path: Path, fallback: str) -> str:
    """The last lines of regenie's log, or of its console output when there is no log."""
    text = log_path.read_text(errors="replace") if log_path.is_file() else fallback
    return "\n".join(text.strip().splitlines()[-LOG_TAIL_LINES:])


def run_regenie(command: list[str], out_prefix: Path) -> None:
    """Run one regenie step, logging the command; raise RegenieError with the log's tail on failure.

    Args:
        command: the argument list.
        out_prefix: its --out prefix (regenie writes ``<out_prefix>.log``).
    """
    logger.info("running: %s", shlex.join(command))
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        tail = _log_tail(Path(f"{out_prefix}.log"), finished.stdout + finished.stderr)
        raise RegenieError(f"regenie failed (exit code {finished.returncode}); end of its log:\n{tail}")
    logger.info("regenie step finished in %.1f s", time.perf_counter() - started)


def regenie_gwas(
    bed_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    threads: int = 1,
    chromosomes: Sequence[str | int] | None = None,
    step1_extract: str | os.PathLike | None = None,
) -> list[Path]:
    """Run regenie step 1 and step 2 and write one GWAS-SSF file per phenotype.

    The inputs get the same checks as the other engines first, so all engines
    fail the same way on bad inputs.

    Args:
        bed_prefix: PLINK fileset prefix (.bed/.bim/.fam) covering all chromosomes.
        pheno_path: TSV with FID, IID and phenotype columns (empty/NA/NaN = missing).
        covar_path: TSV with FID, IID and numeric covariate columns.
        out_dir: folder for ``<phenotype>.tsv.gz`` (created).
        work_dir: folder for regenie's files (created, kept for inspection).
        threads: regenie --threads.
        chromosomes: test only these chromosomes in step 2 (None = all); step 1 always uses all.
        step1_extract: file of SNP ids for step 1 (the pruned set); None = all.

    Returns:
        The written files, in phenotype order.
    """
    inputs = load_gwas_inputs(bed_prefix, pheno_path, covar_path)
    regenie = find_regenie()
    work, out = Path(work_dir), Path(out_dir)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    # regenie cannot read empty fields: give it the analysed samples with NA for missing.
    pheno_file = work / "pheno.tsv"
    write_plink2_phenotypes(inputs, pheno_file)
    s1, s2 = work / "step1", work / "step2"
    run_regenie(
        step1_command(regenie, bed_prefix, pheno_file, covar_path, s1, work / "step1_tmp", threads,
                      extract=step1_extract),
        s1,
    )
    run_regenie(
        step2_command(regenie, bed_prefix, pheno_file, covar_path, Path(f"{s1}_pred.list"), s2, threads,
                      chromosomes=chromosomes),
        s2,
    )
    bim = read_bim(bed_prefix)
    written = []
    for name in inputs.phenotypes.columns:
        frame = parse_regenie(Path(f"{s2}_{name}.regenie.gz"), bim)
        written.append(write_sumstats(frame, out / f"{name}.tsv.gz"))
    logger.info("converted %d regenie reports to GWAS-SSF in %s", len(written), out)
    return written
