"""The in-process GWAS engine: exact linear regression of every phenotype on every variant.

For one phenotype y, one variant g and covariates C (with an intercept), the
model y = a + C b + beta g + e is fitted by ordinary least squares, as
``plink2 --glm`` does. With Q an orthonormal basis of [1, C]:

* y_r = y - Q Q'y and g_r = g - Q Q'g are the residuals on the covariates;
* beta = g_r'y_r / g_r'g_r, and since y_r is orthogonal to Q, g_r'y_r = g'y_r
  and g_r'g_r = |g_c|² - |Q'g_c|² for the centred genotype g_c, so the
  residualised genotype block is never formed;
* the residual sum of squares is y_r'y_r - beta g_r'y_r with n - k - 1 degrees
  of freedom (k = covariate columns including the intercept), se = sqrt(s² /
  g_r'g_r), t = beta / se, and p is the two-sided Student-t tail.

All phenotypes go through one matrix product per genotype block. Phenotypes
with missing values are grouped by their missingness pattern; each group has
its own samples, covariate basis and degrees of freedom, all in the same pass.

Genotypes are ALT dosages, read in blocks from PLINK 1, PLINK 2 (dosages or
hard calls) or BGEN 1.2 (:mod:`vitudip.genetics.dosages`). A missing dosage is
replaced by the variant's mean dosage within the group's samples, so n is the
same for every variant of a phenotype (plink2 instead drops such samples per
variant; where no dosage is missing both agree).

Effect allele: the dosage counts ALT alleles, so beta is the effect of ALT.

Chromosome X follows ``plink2 --glm``'s defaults (2.00a3.5, ``--xchr-model 2``): a male's
non-PAR X genotype is used as stored (hemizygous calls 0/2, so 0..2 like a female's), sex from
the genotype files is added as a covariate where plink2 adds it and samples of unknown sex then
leave X's regressions (:func:`~vitudip.genetics.gwas_inputs.sex_covariate_on_x`). The
pseudo-autosomal region (XY, PAR1, PAR2) is analysed as an autosome, as plink2 does. Y and MT
(haploid in plink2's model) are refused: use the plink2 engine for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from vitudip.genetics.dosages import GenotypeReader, hardcall_dosages, open_genotypes
from vitudip.genetics.gwas_inputs import (
    X_SEX,
    GwasInputs,
    covariate_basis,
    extract_variants,
    load_gwas_inputs,
    select_variants,
    sex_covariate_on_x,
)
from vitudip.genetics.joint_stats import JointTest
from vitudip.genetics.joint_table import JointWriter
from vitudip.genetics.sumstats import SumstatsWriter, VariantTexts, variant_texts
from vitudip.model.device import pick_device

logger = logging.getLogger("vitudip.gwas")


# --------------------------------------------------------------------------- phenotype groups


@dataclass
class PhenotypeGroup:
    """Phenotypes that share one missingness pattern, residualised on the covariates.

    Attributes:
        columns: positions of the group's phenotypes among all phenotypes.
        rows: positions of the samples with values, among the analysed samples.
        basis: (n, k) orthonormal covariate basis (intercept included), on the device.
        residuals: (n, p) phenotype residuals on the covariates, on the device.
        residual_ss: (p,) float64 sums of squares of the residuals.
    """

    columns: np.ndarray
    rows: torch.Tensor
    basis: torch.Tensor
    residuals: torch.Tensor
    residual_ss: np.ndarray

    @property
    def n(self) -> int:
        """Samples in the group's regressions."""
        return int(self.rows.numel())

    @property
    def df(self) -> int:
        """Residual degrees of freedom: n - (covariate columns incl. intercept) - 1 (the genotype)."""
        return self.n - self.basis.shape[1] - 1


def phenotype_groups(
    phenotypes: np.ndarray,
    covariates: np.ndarray,
    phenotype_names: Sequence[str],
    covariate_names: Sequence[str],
    device: torch.device,
    dtype: torch.dtype,
) -> list[PhenotypeGroup]:
    """Group phenotypes by missingness pattern and residualise each group on its covariates.

    The covariate projection is done once per group in float64; only the
    results are cast to ``dtype`` for the per-block products.

    Args:
        phenotypes: (n, p) float64, NaN = missing.
        covariates: (n, c) float64, complete.
        phenotype_names: the p names (for messages).
        covariate_names: the c names (for messages).
        device: where the per-block products run.
        dtype: their floating type.

    Returns:
        One group per distinct missingness pattern.
    """
    patterns, group_of_column = np.unique(np.isnan(phenotypes).T, axis=0, return_inverse=True)
    groups = []
    for index, pattern in enumerate(patterns):
        columns = np.flatnonzero(group_of_column.reshape(-1) == index)
        rows = np.flatnonzero(~pattern)
        named = ", ".join(phenotype_names[c] for c in columns[:3]) + (", ..." if columns.size > 3 else "")
        q = covariate_basis(covariates[rows], covariate_names, f"{rows.size} samples with values of {named}")
        if rows.size - q.shape[1] - 1 < 1:
            raise ValueError(f"phenotype(s) {named}: {rows.size} samples leave no degrees of freedom")
        y = phenotypes[np.ix_(rows, columns)]
        residuals = y - q @ (q.T @ y)
        groups.append(
            PhenotypeGroup(
                columns=columns,
                rows=torch.from_numpy(rows).to(device),
                basis=torch.from_numpy(q).to(device=device, dtype=dtype),
                residuals=torch.from_numpy(residuals).to(device=device, dtype=dtype),
                residual_ss=np.einsum("ij,ij->j", residuals, residuals),
            )
        )
    return groups


# --------------------------------------------------------------------------- statistics


@dataclass
class AssociationResult:
    """Per-variant, per-phenotype statistics of one genotype block.

    Attributes:
        beta: (v, p) effect of one ALT allele.
        standard_error: (v, p) standard error of beta.
        p_value: (v, p) two-sided p-value of the Student t test.
        alt_frequency: (v, p) ALT allele frequency over each phenotype's samples.
        n: (p,) samples in each phenotype's regressions.
    """

    beta: np.ndarray
    standard_error: np.ndarray
    p_value: np.ndarray
    alt_frequency: np.ndarray
    n: np.ndarray


def _genotype_products(group: PhenotypeGroup, dosages: torch.Tensor) -> tuple[np.ndarray, ...]:
    """The block products one group needs, as float64 arrays.

    Args:
        group: a phenotype group.
        dosages: (n_analysed, v) floating ALT dosages on the group's device, NaN = missing.

    Returns:
        (g'y_r of shape (v, p), g_r'g_r (v,), |g_c|² (v,), ALT frequency (v,)).
    """
    genotypes = dosages.index_select(0, group.rows).to(group.basis.dtype)
    missing = torch.isnan(genotypes)
    if bool(missing.any()):
        # Mean-impute missing dosages within the group's samples.
        observed = (~missing).sum(0)
        mean = genotypes.masked_fill(missing, 0).sum(0) / observed
        genotypes = torch.where(missing, mean, genotypes)
    else:
        mean = genotypes.mean(0)
    # Centred (in place): orthogonal to the intercept, which keeps float32 sums accurate.
    centred = genotypes.sub_(mean)
    # (x * x).sum(0) is about twice as fast as vector_norm over dim 0 of a row-major block.
    centred_ss = (centred * centred).sum(0)
    explained_ss = (group.basis.T @ centred).square().sum(0)
    gy = centred.T @ group.residuals
    as_numpy = [x.double().cpu().numpy() for x in (gy, centred_ss - explained_ss, centred_ss, mean / 2)]
    return tuple(as_numpy)


def t_test_p_values(t: np.ndarray, df: int) -> np.ndarray:
    """Two-sided Student-t p-values, accurate in the far tail.

    The upper tail is computed directly (no 1 - cdf), so p keeps its relative
    precision down to the smallest double (about 1e-308); below that it is 0.

    Args:
        t: t statistics (NaN allowed).
        df: degrees of freedom.

    Returns:
        p-values, same shape as ``t``.
    """
    return 2.0 * stats.t.sf(np.abs(t), df)


def _group_statistics(group: PhenotypeGroup, dosages: torch.Tensor) -> tuple[np.ndarray, ...]:
    """beta, se, p and ALT frequency, each (v, p), of one group over one block."""
    gy, gg, centred_ss, frequency = _genotype_products(group, dosages)
    # A variant that the covariates explain (almost) entirely, or a monomorphic
    # one, has no testable residual variation: NaN. The cut-off is relative to
    # the rounding error of the compute type.
    tolerance = float(np.sqrt(torch.finfo(group.basis.dtype).eps))
    testable = (gg > tolerance * centred_ss)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(testable, gy / gg[:, None], np.nan)
        residual_ss = np.maximum(group.residual_ss[None, :] - beta * gy, 0.0)
        se = np.sqrt(residual_ss / group.df / gg[:, None])
        p = t_test_p_values(beta / se, group.df)
    frequency = np.broadcast_to(frequency[:, None], beta.shape)
    return beta, se, p, frequency


def _block_association(groups: list[PhenotypeGroup], dosages: torch.Tensor, n_phenotypes: int) -> AssociationResult:
    """Statistics of every group over one block, placed at the phenotypes' columns."""
    n_variants = dosages.shape[1]
    arrays = [np.full((n_variants, n_phenotypes), np.nan) for _ in range(4)]
    n = np.zeros(n_phenotypes, dtype=np.int64)
    for group in groups:
        for array, values in zip(arrays, _group_statistics(group, dosages)):
            array[:, group.columns] = values
        n[group.columns] = group.n
    beta, se, p, frequency = arrays
    return AssociationResult(beta=beta, standard_error=se, p_value=p, alt_frequency=frequency, n=n)


def compute_dtype(device: torch.device) -> torch.dtype:
    """float32 for the per-block products on a GPU, float64 on the CPU."""
    return torch.float32 if device.type == "cuda" else torch.float64


@contextlib.contextmanager
def _ieee_float32_matmul(device: torch.device) -> Iterator[None]:
    """Turn TF32 off for CUDA matrix products (its 10-bit mantissa would cost 3 digits of beta)."""
    if device.type != "cuda":
        yield
        return
    # allow_tf32 exists from torch 1.7 to 2.13 (the conda envs pin 2.5, which lacks fp32_precision).
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _as_matrix(values: np.ndarray) -> np.ndarray:
    """float64 copy of ``values`` with a 1-D vector viewed as one column."""
    values = np.asarray(values, dtype=np.float64)
    return values[:, None] if values.ndim == 1 else values


def linear_association(
    dosages: np.ndarray,
    phenotypes: np.ndarray,
    covariates: np.ndarray,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> AssociationResult:
    """Regress every phenotype on every variant of a block, adjusting for covariates.

    Args:
        dosages: (n, v) ALT dosages: integer counts 0/1/2 with -1 = missing, or floats in [0, 2] with NaN = missing.
        phenotypes: (n, p) or (n,) values, NaN = missing.
        covariates: (n, c) or (n,) complete values, no intercept column (it is added).
        device: "cpu", "cuda", "auto" or a torch device.
        dtype: floating type of the per-block products (None = float32 on a GPU, float64 on the CPU).

    Returns:
        The statistics; see AssociationResult.
    """
    phenotypes, covariates = _as_matrix(phenotypes), _as_matrix(covariates)
    resolved = pick_device(device, "gwas.device")
    phenotype_names = [f"phenotype {i}" for i in range(phenotypes.shape[1])]
    covariate_names = [f"covariate {i}" for i in range(covariates.shape[1])]
    groups = phenotype_groups(
        phenotypes, covariates, phenotype_names, covariate_names, resolved, dtype or compute_dtype(resolved)
    )
    dosages = np.asarray(dosages)
    values = hardcall_dosages(dosages) if np.issubdtype(dosages.dtype, np.integer) else dosages.astype(np.float64)
    block = torch.from_numpy(np.ascontiguousarray(values)).to(resolved)
    with _ieee_float32_matmul(resolved):
        return _block_association(groups, block, phenotypes.shape[1])


# --------------------------------------------------------------------------- whole genome


def autosomal_groups(inputs: GwasInputs, device: torch.device, dtype: torch.dtype) -> list[PhenotypeGroup]:
    """The phenotype groups of every tested chromosome but non-PAR X: the autosomes and X's pseudo-autosomal region.

    Args:
        inputs: the phenotypes and covariates aligned to the genotype samples.
        device: where the per-block products run.
        dtype: their floating type.
    """
    return phenotype_groups(
        inputs.phenotypes.to_numpy(), inputs.covariates.to_numpy(), list(inputs.phenotypes.columns),
        list(inputs.covariates.columns), device, dtype,
    )


def chromosome_x_groups(inputs: GwasInputs, device: torch.device, dtype: torch.dtype) -> list[PhenotypeGroup]:
    """The phenotype groups of non-PAR X: with sex as one more covariate, and without samples of unknown sex,
    where plink2 adds it (:func:`~vitudip.genetics.gwas_inputs.sex_covariate_on_x`); else those of the autosomes."""
    phenotypes, covariates = inputs.phenotypes.to_numpy(), inputs.covariates.to_numpy()
    names = list(inputs.covariates.columns)
    if sex_covariate_on_x(inputs):
        phenotypes = np.where(np.isin(inputs.sex, (1, 2))[:, None], phenotypes, np.nan)
        covariates = np.column_stack([covariates, inputs.sex.astype(np.float64)])
        names.append(X_SEX)
    return phenotype_groups(phenotypes, covariates, list(inputs.phenotypes.columns), names, device, dtype)


@dataclass
class VariantBlock:
    """One block of the tested variants and the regressions it goes through.

    Attributes:
        index: positions of its variants in the genotype files.
        groups: the phenotype groups of its chromosome (non-PAR X has its own).
    """

    index: np.ndarray
    groups: list[PhenotypeGroup]


def _blocks(chromosomes: pd.Series, block_size: int) -> Iterator[tuple[int, int, bool]]:
    """(start, stop, on non-PAR X) of each block over the selected variants: blocks of at most ``block_size``
    that never mix non-PAR X with other chromosomes, whose regressions differ."""
    on_x = (chromosomes == "X").to_numpy()
    edges = np.flatnonzero(np.diff(on_x.astype(np.int8))) + 1
    for first, last in zip([0, *edges], [*edges, on_x.size]):
        for start in range(first, last, block_size):
            yield start, min(start + block_size, last), bool(on_x[first])


def _refuse_haploid(chromosomes: pd.Series, variant_file: str) -> None:
    """Raise ValueError for variants on Y or MT, which plink2 codes as haploid and this engine does not model."""
    haploid = chromosomes.isin(["Y", "MT"]).to_numpy()
    if haploid.any():
        raise ValueError(f"{variant_file} has {int(haploid.sum())} variant(s) on Y or MT among the chromosomes to "
                         "test; the torch engine tests autosomes, X and its pseudo-autosomal region only: leave Y "
                         "and MT out of gwas.chromosomes or use gwas.engine: plink2")


#: The joint test of a GWAS, the writer of its file and the phenotype names, in the order of the statistics.
JointOutput = tuple[JointTest, JointWriter, list[str]]


def _block_variants(variants: pd.DataFrame, index: np.ndarray) -> VariantTexts:
    """The GWAS-SSF variant columns of one block, effect allele = ALT."""
    block = variants.iloc[index]
    return variant_texts(
        pd.DataFrame(
            {
                "chromosome": block["chrom"], "base_pair_location": block["pos"], "effect_allele": block["alt"],
                "other_allele": block["ref"], "variant_id": block["id"],
            }
        )
    )


def _write_block(writers: list[SumstatsWriter], variants: VariantTexts, result: AssociationResult,
                 joint: JointOutput | None = None) -> None:
    """Append one block's statistics to every phenotype's file (writer i holds phenotype i), and its joint
    statistics to the joint file when ``joint`` (test, writer, phenotype names) is given."""
    for column, writer in enumerate(writers):
        writer.write_statistics(
            variants, result.beta[:, column], result.standard_error[:, column],
            result.alt_frequency[:, column], result.p_value[:, column], int(result.n[column]),
        )
    if joint is not None:
        test, joint_writer, names = joint
        joint_result = test.test_association(names, result.beta, result.standard_error, result.p_value)
        joint_writer.write(variants, joint_result, int(result.n.min()))


def _log_peak_memory(device: torch.device) -> None:
    """Log the peak resident memory of this process (and of the GPU when used)."""
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    message = f"peak RSS {rss_gib:.2f} GiB"
    if device.type == "cuda":
        message += f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    logger.info(message)


@dataclass
class BlockSeconds:
    """Seconds spent on each part of a GWAS's block loop: where the time goes.

    Attributes:
        read: reading genotype blocks.
        compute: the association statistics.
        write: writing the statistics, in the background thread.
        wait: the compute waiting for that thread.
    """

    read: float = 0.0
    compute: float = 0.0
    write: float = 0.0
    wait: float = 0.0


def _check_gwas_arguments(block_size: int, out_dir: str | os.PathLike | None, joint: JointTest | None,
                          joint_path: str | os.PathLike | None) -> None:
    """Raise ValueError for a block size below 1, a joint test without its file or the reverse, or nothing to write.

    Args:
        block_size: variants per block.
        out_dir: folder of the per-phenotype files, or None.
        joint: the joint test, or None.
        joint_path: its output file, or None.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if (joint is None) != (joint_path is None):
        raise ValueError("the joint test needs both joint (the test) and joint_path (its output file)")
    if out_dir is None and joint is None:
        raise ValueError("a GWAS without out_dir writes only the joint file: give joint and joint_path")


def _variant_blocks(genotypes: GenotypeReader, inputs: GwasInputs, groups: list[PhenotypeGroup],
                    device: torch.device, chromosomes: Sequence[str | int] | None,
                    extract: str | os.PathLike | None, block_size: int) -> list[VariantBlock]:
    """The blocks of the variants to test, each with its phenotype groups; logs what the GWAS will compute.

    Args:
        genotypes: the open genotype files.
        inputs: the phenotypes and covariates aligned to their samples.
        groups: the phenotype groups of the autosomes (:func:`autosomal_groups`).
        device: where the per-block products run.
        chromosomes: only these chromosomes (None = all).
        extract: file of the variant IDs to test, one per line; None = all.
        block_size: variants per block.

    Raises:
        ValueError: a variant to test is on Y or MT.
    """
    variant_index = select_variants(genotypes.variants, chromosomes, genotypes.variant_file)
    if extract is not None:
        variant_index = extract_variants(genotypes.variants, variant_index, extract)
    selected = genotypes.variants["chrom"].iloc[variant_index]
    _refuse_haploid(selected, genotypes.variant_file)
    x_groups = chromosome_x_groups(inputs, device, compute_dtype(device)) if (selected == "X").any() else None
    logger.info(
        "%d variants (%s) x %d phenotypes in %d missingness group(s) on %s (%s), blocks of %d",
        variant_index.size, genotypes.files.format, inputs.phenotypes.shape[1], len(groups), device,
        compute_dtype(device), block_size,
    )
    return [VariantBlock(variant_index[start:stop], x_groups if on_x else groups)
            for start, stop, on_x in _blocks(selected, block_size)]


def _open_outputs(stack: ExitStack, out_dir: str | os.PathLike | None, names: list[str], joint: JointTest | None,
                  joint_path: str | os.PathLike | None,
                  pheno_path: str | os.PathLike) -> tuple[list[SumstatsWriter], JointOutput | None]:
    """Open the per-phenotype files and the joint file on ``stack``, which closes them.

    Args:
        stack: the GWAS's exit stack.
        out_dir: folder of the ``<phenotype>.tsv.gz`` files; None: none.
        names: the phenotypes, in the order of the statistics.
        joint: the joint test, or None.
        joint_path: its output file (given with ``joint``).
        pheno_path: the phenotype file, for messages.

    Returns:
        (one writer per phenotype, in order; the joint output, None without ``joint``).

    Raises:
        ValueError: the joint test's dimensions are not the phenotypes (before the first block).
    """
    writers = ([] if out_dir is None else
               [stack.enter_context(SumstatsWriter(Path(out_dir) / f"{name}.tsv.gz")) for name in names])
    if joint is None:
        return writers, None
    joint.column_order(names, f"the GWAS of {pheno_path}")  # refuse before the first block
    return writers, (joint, stack.enter_context(JointWriter(joint_path, joint.dimensions)), names)


def _timed_write_block(seconds: BlockSeconds, writers: list[SumstatsWriter], variants: VariantTexts,
                       result: AssociationResult, joint: JointOutput | None) -> None:
    """:func:`_write_block`, adding its time to ``seconds.write``.

    Args:
        seconds: the loop's time record.
        writers: one per phenotype, in order.
        variants: the block's variant columns.
        result: the block's statistics.
        joint: the joint output, or None.
    """
    begun = time.perf_counter()
    _write_block(writers, variants, result, joint)
    seconds.write += time.perf_counter() - begun


def _test_blocks(genotypes: GenotypeReader, blocks: list[VariantBlock], sample_rows: np.ndarray,
                 n_phenotypes: int, device: torch.device, writers: list[SumstatsWriter],
                 joint: JointOutput | None, progress: bool) -> BlockSeconds:
    """Read, test and write every block, writing each in a background thread while the next is computed.

    At most one block of results waits for the writer, so memory stays bounded.

    Args:
        genotypes: the open genotype files.
        blocks: the blocks to test, in order.
        sample_rows: positions of the analysed samples in the genotype files.
        n_phenotypes: the phenotypes tested.
        device: where the per-block products run.
        writers: one per phenotype, in order.
        joint: the joint output, or None.
        progress: show a progress bar over blocks.

    Returns:
        Where the time went.
    """
    seconds = BlockSeconds()
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1) as background:
        for block in tqdm(blocks, desc="GWAS blocks", unit="block", disable=not progress):
            begun = time.perf_counter()
            dosages = torch.from_numpy(genotypes.read_block(block.index, sample_rows)).to(device)
            read = time.perf_counter()
            result = _block_association(block.groups, dosages, n_phenotypes)
            computed = time.perf_counter()
            seconds.read += read - begun
            seconds.compute += computed - read
            if pending is not None:
                pending.result()  # re-raises a failed write here
            seconds.wait += time.perf_counter() - computed
            variants = _block_variants(genotypes.variants, block.index)
            pending = background.submit(_timed_write_block, seconds, writers, variants, result, joint)
        if pending is not None:
            begun = time.perf_counter()
            pending.result()
            seconds.wait += time.perf_counter() - begun
    return seconds


def _log_time_spent(n_phenotypes: int, total: float, seconds: BlockSeconds) -> None:
    """Log how long the GWAS took and where the time went.

    Args:
        n_phenotypes: the phenotypes tested.
        total: seconds from start to end.
        seconds: the block loop's parts.
    """
    logger.info("GWAS of %d phenotypes done in %.1f s: reading genotypes %.1f s, association %.1f s, writing "
                "output %.1f s in a background thread (the compute waited %.1f s for it)", n_phenotypes,
                total, seconds.read, seconds.compute, seconds.write, seconds.wait)


def linear_gwas(
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    out_dir: str | os.PathLike | None,
    block_size: int = 4096,
    device: str = "auto",
    chromosomes: Sequence[str | int] | None = None,
    phenotypes: Sequence[str] | None = None,
    progress: bool = True,
    joint: JointTest | None = None,
    joint_path: str | os.PathLike | None = None,
    extract: str | os.PathLike | None = None,
) -> list[Path]:
    """Run the GWAS of every phenotype in process and write one GWAS-SSF file per phenotype.

    Genotypes are streamed from the fileset in blocks of ``block_size`` variants
    (PLINK 1, PLINK 2 or BGEN 1.2, read directly: :func:`~vitudip.genetics.dosages.open_genotypes`),
    so memory is about 12 x n_samples x block_size bytes for the block (float32 as read,
    float64 on the CPU) plus the phenotypes; every phenotype file is appended to per
    block and renamed into place only when all blocks are done.

    Args:
        genotype_prefix: genotype fileset prefix (.bed/.bim/.fam, .pgen/.pvar/.psam or .bgen/.sample).
        pheno_path: TSV with FID, IID and phenotype columns (empty/NA/NaN = missing).
        covar_path: TSV with FID, IID and numeric covariate columns (no intercept).
        out_dir: folder for ``<phenotype>.tsv.gz`` (created); None: no per-phenotype files, only the
            joint file (the joint test's permuted null needs nothing else).
        block_size: variants per block.
        device: "auto" (CUDA when available), "cpu" or "cuda[:i]".
        chromosomes: only these chromosomes (None = all), for sharded runs.
        phenotypes: only these phenotype columns (None = all), for sharded runs.
        progress: show a progress bar over blocks.
        joint: also compute the joint tests over all phenotypes from each block's products (no second pass);
            its dimensions must be exactly the analysed phenotypes, so shard by chromosome only.
        joint_path: the joint file (``joint.tsv.gz``, written atomically), required with ``joint``; keep it
            out of ``out_dir``, whose ``*.tsv.gz`` are the dimensions.
        extract: file of the variant IDs to test, one per line (``genotypes/variants_pass.txt``); None = all.

    Returns:
        The written files, in phenotype order.
    """
    _check_gwas_arguments(block_size, out_dir, joint, joint_path)
    started = time.perf_counter()
    inputs = load_gwas_inputs(genotype_prefix, pheno_path, covar_path, phenotypes)
    resolved = pick_device(device, "gwas.device")
    names = list(inputs.phenotypes.columns)
    groups = autosomal_groups(inputs, resolved, compute_dtype(resolved))
    with ExitStack() as stack, _ieee_float32_matmul(resolved):
        genotypes = stack.enter_context(open_genotypes(genotype_prefix))
        blocks = _variant_blocks(genotypes, inputs, groups, resolved, chromosomes, extract, block_size)
        writers, joint_output = _open_outputs(stack, out_dir, names, joint, joint_path, pheno_path)
        seconds = _test_blocks(genotypes, blocks, inputs.fam_rows, len(names), resolved, writers, joint_output,
                               progress)
    _log_time_spent(len(names), time.perf_counter() - started, seconds)
    _log_peak_memory(resolved)
    return [writer.path for writer in writers]
