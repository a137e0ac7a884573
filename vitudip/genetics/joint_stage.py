"""The joint-test stage: the joint file of a study, and its calibration on one permuted GWAS.

* :func:`joint_stage` builds the test from the phenotype correlation R of the
  GWAS's samples and streams the gathered per-dimension files through it:
  ``gwas/joint/joint.tsv.gz``, ``lambda.tsv`` (λGC of both joint tests) and ``qq.png``.
  It reads the gathered files whatever the engine. The torch engine's in-process
  hook (``linear_gwas(joint=...)``) would save this read only when one shard holds
  every dimension, so the workflow keeps the one path for every engine and
  ``gwas.dimension_batches``; the read costs about 1.6 % of the GWAS (bench/joint.py).
* :func:`null_stage` is MOSTest's check of the null: the subjects' phenotypes and
  covariates are permuted together against the genotypes
  (:func:`permute_tables`), the in-process engine runs the GWAS of
  every dimension on all chromosomes and computes the same test (R of the real tables) from
  each block's products (``linear_gwas(joint=...)``), with no per-dimension files: the
  null checks the joint statistic, which the engines compute alike (the torch engine equals
  ``plink2 --glm``; REGENIE's step 1 models the real phenotypes, so it could not run a null),
  and λGC of both joint tests must stay below ``null_lambda_limit``; otherwise the
  stage logs the reason and fails (:func:`~vitudip.genetics.joint_null.null_calibration`).

The statistics are :mod:`~vitudip.genetics.joint_stats` (the test) and
:mod:`~vitudip.genetics.joint_correlation` (its R), the streaming of the gathered files
:mod:`~vitudip.genetics.joint_sumstats`; this module reads the study's tables for them,
writes the stage's outputs and has their QQ plot drawn (:func:`vitudip.plots.gwas.plot_qq`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.gwas_inputs import load_gwas_inputs
from vitudip.genetics.joint_correlation import phenotype_correlation
from vitudip.genetics.joint_null import effective_lambda_limit, null_calibration
from vitudip.genetics.joint_stats import JointTest
from vitudip.genetics.joint_sumstats import joint_from_sumstats
from vitudip.genetics.joint_table import GENOME_WIDE, JointSummary
from vitudip.genetics.settings import InProcessGwasSettings, JointSettings
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import COVAR, ID_COLUMNS, PHENO
from vitudip.io.tables import Table

logger = logging.getLogger("vitudip.gwas")

#: ``gwas/joint/lambda.tsv`` and ``null.tsv``: one row per joint test (``statistic``, ``min_p``).
JOINT_LAMBDA_COLUMNS = ["test", "n_variants", "lambda_gc", "min_p", "n_genome_wide", "df", "limit", "status"]
JOINT_LAMBDA = Table("joint λ table", required=("test", "lambda_gc"), text=("test", "status"),
                     numbers=("lambda_gc", "min_p", "limit"), integers=("n_variants", "n_genome_wide", "df"),
                     writer="the joint stage")

_SUFFIX = ".tsv.gz"



def build_test(genotypes: str | os.PathLike, pheno: str | os.PathLike, covar: str | os.PathLike,
               settings: JointSettings) -> JointTest:
    """The joint test of a study: R of its covariate-adjusted phenotypes over the GWAS's samples.

    Args:
        genotypes: the GWAS's genotype prefix (for its samples).
        pheno: ``pheno/pheno.tsv``.
        covar: ``pheno/covar.tsv``.
        settings: the joint settings.
    """
    names, correlation = correlation_from_tables(genotypes, pheno, covar)
    return JointTest.from_correlation(correlation, dimensions=names, method=settings.method, k=settings.k,
                                      variance_share=settings.variance_share,
                                      max_condition=settings.max_condition, seed=settings.seed)


def correlation_from_tables(genotype_prefix: str | os.PathLike, pheno_path: str | os.PathLike,
                            covar_path: str | os.PathLike,
                            phenotypes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """R from a ``pheno.tsv`` / ``covar.tsv`` pair over the samples every GWAS engine analyses.

    The samples are those in the genotype fileset and both tables (as
    :func:`load_gwas_inputs` matches them); only the genotype fileset's sample
    file is read.

    Args:
        genotype_prefix: the GWAS's genotype fileset prefix (for its samples).
        pheno_path: PHENO table (FID, IID, one column per dimension).
        covar_path: COVAR table (FID, IID, covariates).
        phenotypes: dimensions to keep (None = all), in file order.

    Returns:
        The dimension names and their (K, K) correlation matrix.
    """
    inputs = load_gwas_inputs(genotype_prefix, pheno_path, covar_path, phenotypes)
    names = list(inputs.phenotypes.columns)
    correlation = phenotype_correlation(inputs.phenotypes.to_numpy(), inputs.covariates.to_numpy(),
                                        list(inputs.covariates.columns))
    logger.info("phenotype correlation of %d dimensions over %d samples (%s, %s)", len(names),
                len(inputs.samples), pheno_path, covar_path)
    return names, correlation


def _dimension_files(folder: str | os.PathLike) -> dict[str, Path]:
    """``<dimension>.tsv.gz`` files of a folder, by dimension."""
    folder = Path(folder)
    files = {p.name[: -len(_SUFFIX)]: p for p in sorted(folder.glob(f"*{_SUFFIX}"))}
    if not files:
        raise FileNotFoundError(f"no *{_SUFFIX} summary statistics in {folder}")
    return files


def lambda_table(summary: JointSummary, test: JointTest, limit: float | None = None) -> pd.DataFrame:
    """λGC, smallest p and genome-wide count of both joint tests of a joint run (JOINT_LAMBDA_COLUMNS).

    Args:
        summary: the run's streamed summary (:class:`JointSummary`).
        test: its test (for the degrees of freedom).
        limit: the null's λ limit (None: not a null run; ``limit`` and ``status`` are empty).
    """
    rows = []
    for name, sketch, count in (("statistic", summary.statistic, summary.n_genome_wide),
                                ("min_p", summary.familywise, summary.n_genome_wide_min_p)):
        lam = sketch.lambda_gc()
        allowed = None if limit is None else effective_lambda_limit(limit, sketch.n)
        status = "" if limit is None else ("ok" if lam <= allowed else "inflated")
        rows.append({"test": name, "n_variants": sketch.n, "lambda_gc": lam, "min_p": sketch.min_p,
                     "n_genome_wide": count, "df": test.df if name == "statistic" else 1,
                     "limit": np.nan if limit is None else allowed, "status": status})
    return pd.DataFrame(rows, columns=JOINT_LAMBDA_COLUMNS)


def summarise_joint(summary: JointSummary, qq_path: str | os.PathLike | None = None) -> JointSummary:
    """Log a joint run's λGC of both tests and genome-wide count, and optionally draw their QQ plot.

    Args:
        summary: the run's streamed summary (from the run, or :meth:`JointSummary.of_file`).
        qq_path: PNG for the QQ plot of the joint statistic and min-P (None: no plot).

    Returns:
        ``summary``.
    """
    if qq_path is not None:
        from vitudip.plots.gwas import plot_qq  # matplotlib only when a plot is asked for

        plot_qq({"joint": summary.statistic, "min-P": summary.familywise},
                {"joint": summary.lambda_gc, "min-P": summary.lambda_min_p}, qq_path)
    logger.info("%s: %d variants, λGC joint %.3f, min-P %.3f, %d below %.0e", summary.path, summary.n_variants,
                summary.lambda_gc, summary.lambda_min_p, summary.n_genome_wide, GENOME_WIDE)
    return summary


def joint_stage(sumstats: str | os.PathLike, genotypes: str | os.PathLike, pheno: str | os.PathLike,
                covar: str | os.PathLike, settings: JointSettings, joint_path: str | os.PathLike,
                lambda_path: str | os.PathLike, qq_path: str | os.PathLike, progress: bool = True) -> dict[str, Path]:
    """Write the study's joint file, the λGC of its two tests and their QQ plot.

    Args:
        sumstats: folder of the gathered ``<dimension>.tsv.gz`` files.
        genotypes: the GWAS's genotype prefix.
        pheno: ``pheno/pheno.tsv``.
        covar: ``pheno/covar.tsv``.
        settings: the joint settings.
        joint_path: ``joint.tsv.gz`` to write.
        lambda_path: ``lambda.tsv`` to write.
        qq_path: QQ figure (PNG) to write.
        progress: show a progress bar.

    Returns:
        Output name -> path.
    """
    files = _dimension_files(sumstats)
    test = build_test(genotypes, pheno, covar, settings)
    targets = {"joint": Path(joint_path), "lambda": Path(lambda_path), "qq": Path(qq_path)}
    with staged_outputs(targets) as staged:
        # the λ and QQ come from the sketches of the write itself: the joint file is not read back
        summary = joint_from_sumstats(files, test, staged["joint"], chunk_size=settings.chunk_size,
                                      progress=progress)
        summarise_joint(summary, staged["qq"])
        write_tsv(lambda_table(summary, test), staged["lambda"])
    return targets


def permute_tables(pheno_path: str | os.PathLike, covar_path: str | os.PathLike, out_pheno: str | os.PathLike,
                   out_covar: str | os.PathLike, seed: int) -> int:
    """Write a permuted copy of a phenotype/covariate pair, for the joint test's null run.

    The sample IDs stay where they are and each sample gets another sample's
    phenotypes *and* covariates (one permutation for both), so against the
    genotypes this is MOSTest's permutation of genotype rows against phenotype
    rows, with the covariate adjustment intact. Only samples in both tables are written.

    Args:
        pheno_path: PHENO table.
        covar_path: COVAR table.
        out_pheno: permuted phenotype table (written atomically).
        out_covar: permuted covariate table (written atomically).
        seed: seed of the permutation.

    Returns:
        How many samples were permuted.

    Raises:
        ValueError: no sample is in both tables.
    """
    pheno = PHENO.read(pheno_path, text_only=True)
    covar = COVAR.read(covar_path, text_only=True)
    keys = list(ID_COLUMNS)
    merged = pheno.merge(covar[keys], on=keys, how="inner")[keys]
    if merged.empty:
        raise ValueError(f"no sample is in both {pheno_path} and {covar_path} (matched on FID and IID)")
    order = np.random.default_rng(seed).permutation(len(merged))
    for table, path, contract in ((pheno, out_pheno, PHENO), (covar, out_covar, COVAR)):
        values = merged.merge(table, on=keys, how="left").drop(columns=keys)
        permuted = pd.concat([merged.reset_index(drop=True), values.iloc[order].reset_index(drop=True)], axis=1)
        contract.write(permuted, path)
    logger.info("%d samples of %s and %s permuted (seed %d)", len(merged), pheno_path, covar_path, seed)
    return len(merged)


def null_stage(gwas: InProcessGwasSettings, genotypes: str | os.PathLike, pheno: str | os.PathLike,
               covar: str | os.PathLike, settings: JointSettings, null_path: str | os.PathLike,
               qq_path: str | os.PathLike, threads: int = 1,
               progress: bool = True, extract: str | os.PathLike | None = None) -> dict[str, Path]:
    """MOSTest's check of the joint tests' null: one GWAS of permuted subjects, then λGC of both tests on it.

    Args:
        gwas: the in-process engine's block size and device (the null runs in process whatever the engine).
        genotypes: the genotype prefix.
        pheno: ``pheno/pheno.tsv``.
        covar: ``pheno/covar.tsv``.
        settings: the joint settings (``seed`` seeds the permutation).
        null_path: ``null.tsv`` to write (JOINT_LAMBDA_COLUMNS, ``status`` ok).
        qq_path: QQ figure of the permuted run's joint tests.
        threads: CPU threads of the GWAS.
        progress: show progress bars.
        extract: the variant IDs the study's GWAS tests (``genotypes/variants_pass.txt``); None = all.

    Returns:
        Output name -> path.

    Raises:
        JointCalibrationError: λGC of either joint test on the permuted run is above the limit (logged).
    """
    test = build_test(genotypes, pheno, covar, settings)
    targets = {"null": Path(null_path), "qq": Path(qq_path)}
    with staged_outputs(targets) as staged, tempfile.TemporaryDirectory(prefix=".null-",
                                                                         dir=staged["null"].parent) as work:
        work = Path(work)
        subjects = permute_tables(pheno, covar, work / "pheno.tsv", work / "covar.tsv", seed=settings.seed)
        logger.info("permuted GWAS of %d dimensions in process (torch engine) on all chromosomes",
                    len(test.dimensions))
        # only this path needs PyTorch: the joint stage's other callers run without it
        import torch

        from vitudip.genetics.linear import linear_gwas

        torch.set_num_threads(threads)
        joint = work / "joint.tsv.gz"
        linear_gwas(genotypes, work / "pheno.tsv", work / "covar.tsv", None, block_size=gwas.block_size,
                    device=gwas.device, progress=progress, joint=test, joint_path=joint,
                    extract=extract)
        summary = summarise_joint(JointSummary.of_file(joint, settings.chunk_size), staged["qq"])
        null_calibration(summary.statistic, summary.familywise, settings.null_lambda_limit,
                         what="the joint tests on permuted subjects", subjects=subjects,
                         dimensions=len(test.dimensions))
        write_tsv(lambda_table(summary, test, settings.null_lambda_limit), staged["null"])
    return targets
