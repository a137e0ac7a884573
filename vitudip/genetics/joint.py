"""Joint association of a variant with all dimensions of a study: a Wald (Hotelling) test and min-P.

Per-dimension GWAS asks one question per dimension, so a variant whose effect
is spread thinly over many correlated dimensions can miss 5e-8 in each of them.
The joint tests ask one question per variant (REFERENCE.md §11):

* **Wald / Hotelling.** With z the variant's K per-dimension z-scores
  (the normal quantile of each p, signed by beta: :func:`z_scores`) and R the correlation of
  the covariate-adjusted phenotypes, T = z' R⁻¹ z is χ² with K degrees of
  freedom under the null (complete data). Embeddings are often near-singular,
  where R⁻¹ amplifies noise in the smallest eigen-directions; the ``eigen``
  method keeps the top-k eigen-directions (v_i, λ_i) of R and uses
  T = Σ_i (v_i'z)² / λ_i, χ² with k degrees of freedom. That is MOSTest's
  regularised inverse (van der Meer et al. 2020 truncate the eigen-spectrum
  of the z-score correlation). ``full`` keeps every direction and falls back to
  the regularised inverse, with the reason logged, when R is singular or its
  condition number is above ``max_condition``.
* **min-P.** The smallest per-dimension p-value, and its family-wise p
  F(x) = P(min_j p_j <= x) for z ~ N(0, R), the probability that any of the K
  correlated dimensions does as well under the null. F depends on x alone, so
  it is tabulated once per test (:class:`MinPNull`): by Monte Carlo from R
  where that is precise (F >= about 5e-3 with 200,000 draws), and below that by
  Hunter's (1976) upper bound Σ_j P(A_j) - Σ_tree P(A_i ∩ A_j) over the
  maximum spanning tree of |R|, with exact bivariate-normal tails (Owen's T).
  The bound is valid (never anti-conservative), exact for independent or
  duplicated dimensions, and tight where the per-dimension terms dominate, i.e.
  in the genome-wide tail; Šidák on Li & Ji's M_eff was rejected because it
  is anti-conservative in the bulk (λGC 1.46 on null data of 30 dimensions
  with three factors), and a beta fitted to the bulk (MOSTest's form) misses
  the tail by 2-5x in either direction. MOSTest's own route, fits to a permuted
  run, is :func:`fit_null`.

Exact relation to a multivariate regression (used by the tests): for complete
data, with Y regressed on [1, C] (residual SSCP S0) and on [1, C, g], Wilks'
Λ = det(S1) / det(S0) = 1 - u'S0⁻¹u with u = Y_r'g_r / |g_r|. The score
z-scores z0_j = t_j / sqrt(1 + t_j² / d) (t the per-dimension Wald t, d the
residual degrees of freedom) give z0'R⁻¹z0 = d (1 - Λ) exactly, and Hotelling's
T² = d (1 - Λ) / Λ. The Wald t used here differs from z0 by O(t²/d).

No PyTorch here: the plink2 and REGENIE engines' joint step runs from their
gathered GWAS-SSF files (:func:`joint_from_sumstats`); the torch engine calls
:meth:`JointTest.test` on each block (``linear_gwas(joint=...)``).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.sparse.csgraph import minimum_spanning_tree
from tqdm.auto import tqdm

from vitudip.genetics.gwas_inputs import covariate_basis, load_gwas_inputs
from vitudip.genetics.sumstats import (
    SMALLEST_P,
    SUMSTATS,
    VARIANT_COLUMNS,
    VariantTexts,
    _texts,
    genomic_inflation,
    id_column,
    ssf_chromosome,
    variant_texts,
)
from vitudip.io.atomic import StagedGzipWriter
from vitudip.io.stage_tables import COVAR, ID_COLUMNS, PHENO
from vitudip.io.tables import Table

logger = logging.getLogger("vitudip.gwas")

METHODS = ("eigen", "full")

#: Columns of ``joint.tsv.gz``, in file order.
JOINT_COLUMNS = [
    "chromosome", "base_pair_location", "effect_allele", "other_allele", "variant_id",
    "statistic", "df", "p_value", "n", "min_p", "min_p_dimension", "min_p_familywise",
]

#: The joint test's output, as the joint step writes it and the loci and report steps read it.
JOINT = Table("joint test file", required=("chromosome", "base_pair_location", "p_value"),
              text=("effect_allele", "other_allele", "variant_id", "min_p_dimension"),
              numbers=("statistic", "p_value", "min_p", "min_p_familywise"),
              integers=("chromosome", "base_pair_location", "df", "n"), strip=False, writer="the joint step")

#: λGC of a permuted (null) joint run above this is an error (MOSTest's check of its null).
NULL_LAMBDA_LIMIT = 1.1

#: Sumstats columns the joint step reads from every dimension's file.
_SUMSTATS_READ = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "variant_id",
                  "beta", "standard_error", "p_value", "n"]

#: The columns that must agree row by row across the dimensions' files.
_ALIGNMENT = ["chromosome", "base_pair_location", "effect_allele", "other_allele"]


# --------------------------------------------------------------------------- phenotype correlation


def covariate_residuals(phenotypes: np.ndarray, covariates: np.ndarray,
                        covariate_names: Sequence[str] | None = None) -> np.ndarray:
    """Phenotypes residualised on [intercept, covariates], as the torch engine does.

    Phenotypes are grouped by missingness pattern; each group is residualised
    on the covariate basis of its own samples (:func:`covariate_basis`), which
    is what each dimension's GWAS regression adjusts for.

    Args:
        phenotypes: (n, K) float64, NaN = missing.
        covariates: (n, c) float64, complete (no intercept column).
        covariate_names: the c names, for messages about collinear covariates.

    Returns:
        (n, K) residuals, NaN where the phenotype is missing.
    """
    phenotypes = np.asarray(phenotypes, dtype=np.float64)
    covariates = np.asarray(covariates, dtype=np.float64).reshape(len(phenotypes), -1)
    names = list(covariate_names) if covariate_names is not None else [f"covariate {i}" for i in
                                                                        range(covariates.shape[1])]
    residuals = np.full_like(phenotypes, np.nan)
    patterns, group_of_column = np.unique(np.isnan(phenotypes).T, axis=0, return_inverse=True)
    for index, pattern in enumerate(patterns):
        columns = np.flatnonzero(group_of_column.reshape(-1) == index)
        rows = np.flatnonzero(~pattern)
        q = covariate_basis(covariates[rows], names, f"{rows.size} samples with values of dimension {columns[0]}")
        y = phenotypes[np.ix_(rows, columns)]
        residuals[np.ix_(rows, columns)] = y - q @ (q.T @ y)
    return residuals


def phenotype_correlation(phenotypes: np.ndarray, covariates: np.ndarray,
                          covariate_names: Sequence[str] | None = None) -> np.ndarray:
    """R: the correlation of the covariate-adjusted phenotypes, pairwise-complete where values are missing.

    For complete data this is exactly the correlation the Wald statistic's null
    needs (the per-dimension regressions share their samples). With missing
    values each pair's correlation is the Pearson correlation of the two
    residuals over the samples that have both: an estimate of the z-scores'
    correlation when missingness is at random; the matrix may then be slightly
    indefinite, which the eigen method absorbs (it keeps positive directions only).

    Args:
        phenotypes: (n, K) float64, NaN = missing.
        covariates: (n, c) float64, complete (no intercept column).
        covariate_names: the c names, for messages.

    Returns:
        (K, K) correlation matrix (unit diagonal).

    Raises:
        ValueError: a dimension has no variance left after the covariates, or two share fewer than 3 samples.
    """
    phenotypes = np.asarray(phenotypes, dtype=np.float64)
    residuals = covariate_residuals(phenotypes, covariates, covariate_names)
    observed = np.isfinite(residuals)
    centred_ss = np.nansum(np.square(phenotypes - np.nanmean(phenotypes, axis=0)), axis=0)
    residual_ss = np.nansum(np.square(residuals), axis=0)
    flat = np.flatnonzero(residual_ss <= 1e-10 * centred_ss)
    if flat.size:
        raise ValueError(f"dimension {int(flat[0])} has no variance left after the covariates (they explain it "
                         "entirely); drop it from the joint test")
    mask = observed.astype(np.float64)
    x = np.where(observed, residuals, 0.0)
    # every pairwise sum as one matrix product: count, sum of x_i over the pair's samples, squares, cross products
    count = mask.T @ mask
    if (count < 3).any():
        i, j = np.argwhere(count < 3)[0]
        raise ValueError(f"dimensions {i} and {j} share {int(count[i, j])} samples with values; the joint test "
                         "needs at least 3 to correlate them")
    sums = x.T @ mask
    squares = (x * x).T @ mask
    covariance = (x.T @ x) * count - sums * sums.T
    variance = squares * count - sums * sums
    correlation = covariance / np.sqrt(variance * variance.T)
    correlation = (correlation + correlation.T) / 2
    np.fill_diagonal(correlation, 1.0)
    return correlation


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


def permute_tables(pheno_path: str | os.PathLike, covar_path: str | os.PathLike, out_pheno: str | os.PathLike,
                   out_covar: str | os.PathLike, seed: int) -> None:
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


# --------------------------------------------------------------------------- min-P's null


def _pair_tail(h: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(|X| > h and |Y| > h) for standard bivariate normals with correlation rho (h >= 0), via Owen's T.

    P(X > h, Y > h) = Φ̄(h) - 2 T(h, sqrt((1 - ρ) / (1 + ρ))), and the opposite-sign corner is the same with -ρ.
    """
    total = np.zeros(np.broadcast_shapes(h.shape, rho.shape))
    tail = stats.norm.sf(h)
    with np.errstate(divide="ignore"):
        for r in (rho, -rho):
            total = total + tail - 2.0 * special.owens_t(h, np.sqrt((1.0 - r) / (1.0 + r)))
    return np.maximum(2.0 * total, 0.0)


@dataclass(frozen=True)
class MinPNull:
    """F(x) = P(min_j p_j <= x) under z ~ N(0, R), tabulated on a log grid of x from 1 to 1e-300.

    Attributes:
        log_x: grid of log10 x, decreasing.
        log_f: log10 F at the grid, decreasing.
        monte_carlo_floor: F below which the table is Hunter's bound rather than the Monte Carlo estimate.
    """

    log_x: np.ndarray
    log_f: np.ndarray
    monte_carlo_floor: float

    @classmethod
    def from_correlation(cls, correlation: np.ndarray, draws: int = 200_000, min_count: int = 1000,
                         seed: int = 0) -> MinPNull:
        """Tabulate F for a correlation matrix.

        Args:
            correlation: (K, K) correlation of the dimensions' z-scores (may be singular).
            draws: Monte Carlo draws of z ~ N(0, R).
            min_count: the Monte Carlo estimate is used where at least this many draws fall below x.
            seed: seed of the draws (the same R and seed give the same table).

        Returns:
            The table.
        """
        size = len(correlation)
        # fine where Monte Carlo resolves F's curvature, coarse in the far tail where F is about M x
        log_x = np.concatenate([np.linspace(0.0, -6.0, 601), np.linspace(-6.5, -300.0, 588)])
        x = 10.0**log_x
        # Hunter's upper bound, capped by Šidák's inequality (also an upper bound for two-sided Gaussian tests)
        distance = 2.0 - np.abs(correlation)  # > 0 everywhere, so csgraph sees every edge
        np.fill_diagonal(distance, 0.0)
        tree = minimum_spanning_tree(distance).tocoo()
        rho = np.clip(correlation[tree.row, tree.col], -1.0, 1.0)
        h = stats.norm.isf(x / 2.0)[:, None]
        hunter = size * x - _pair_tail(h, rho[None, :]).sum(axis=1)
        bound = np.minimum(np.maximum(hunter, x), -np.expm1(size * np.log1p(-np.minimum(x, 1 - 1e-16))))
        # Monte Carlo where precise: the largest |z| of each draw gives its min-P
        values, vectors = np.linalg.eigh(correlation)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
        rng = np.random.default_rng(seed)
        largest = np.concatenate([np.abs(rng.standard_normal((min(50_000, draws - start), size)) @ root.T).max(axis=1)
                                  for start in range(0, draws, 50_000)])
        simulated_p = np.sort(2.0 * stats.norm.sf(largest))
        counts = np.searchsorted(simulated_p, x, side="right")
        use_monte_carlo = counts >= min_count
        f = np.where(use_monte_carlo, counts / draws, bound)
        f = np.minimum.accumulate(f)  # F is monotone in x; the seam between the two sources must not break that
        return cls(log_x=log_x, log_f=np.log10(np.maximum(f, 1e-320)), monte_carlo_floor=min_count / draws)

    def familywise(self, min_p: np.ndarray) -> np.ndarray:
        """F(min_p): the family-wise p of each min-P (NaN stays NaN; below 1e-300 F is extrapolated linearly)."""
        min_p = np.asarray(min_p, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_p = np.log10(np.clip(min_p, 0.0, 1.0))
        # np.interp needs increasing x: the grid is read backwards
        inside = np.interp(log_p, self.log_x[::-1], self.log_f[::-1])
        below = self.log_f[-1] + (log_p - self.log_x[-1])  # F ≈ M x in the far tail
        result = np.where(log_p < self.log_x[-1], below, inside)
        with np.errstate(over="ignore"):
            return np.where(np.isnan(min_p), np.nan, np.minimum(10.0**result, 1.0))


# --------------------------------------------------------------------------- the test


@dataclass
class JointResult:
    """Joint statistics of a block of variants.

    Attributes:
        statistic: (v,) the Wald statistic (NaN where no dimension has a z-score).
        df: (v,) its χ² degrees of freedom (0 where it is NaN).
        p_value: (v,) χ² upper tail of the statistic.
        min_p: (v,) the smallest per-dimension p-value.
        min_p_index: (v,) position of that dimension in the test's dimensions (-1 where none).
        min_p_familywise: (v,) family-wise p of min_p (see :class:`MinPNull`).
    """

    statistic: np.ndarray
    df: np.ndarray
    p_value: np.ndarray
    min_p: np.ndarray
    min_p_index: np.ndarray
    min_p_familywise: np.ndarray


def _check_correlation(correlation: np.ndarray, dimensions: Sequence[str]) -> np.ndarray:
    """The matrix as float64, or a ValueError saying what is wrong with it."""
    correlation = np.asarray(correlation, dtype=np.float64)
    k = len(dimensions)
    if correlation.shape != (k, k):
        raise ValueError(f"the phenotype correlation is {correlation.shape}, but there are {k} dimensions")
    if not np.isfinite(correlation).all():
        i, j = np.argwhere(~np.isfinite(correlation))[0]
        raise ValueError(f"the phenotype correlation of {dimensions[i]} and {dimensions[j]} is not finite")
    if not np.allclose(correlation, correlation.T, atol=1e-8):
        raise ValueError("the phenotype correlation matrix is not symmetric")
    if not np.allclose(np.diag(correlation), 1.0, atol=1e-6):
        at = int(np.argmax(np.abs(np.diag(correlation) - 1)))
        raise ValueError(f"the phenotype correlation has {correlation[at, at]:.6g} on the diagonal for "
                         f"{dimensions[at]}: pass a correlation, not a covariance, matrix")
    return (correlation + correlation.T) / 2


@dataclass(frozen=True)
class JointTest:
    """The joint tests over a fixed set of dimensions, built once from their phenotype correlation.

    Build it with :meth:`from_correlation`. The statistic is
    T = |z W|² with W = V_k Λ_k^{-1/2} (the kept eigen-directions of R scaled
    by their eigenvalues), so a block of variants costs one (v, K) x (K, k) product.

    Attributes:
        dimensions: the dimension names, in the order the z-score columns must come.
        correlation: (K, K) phenotype correlation R.
        method: what was asked for: "eigen" or "full".
        k: directions asked for (None: the fewest reaching ``variance_share``; "full" asks for all).
        variance_share: share of R's trace the eigen method keeps when ``k`` is None.
        max_condition: largest ratio λ_1 / λ_i of a kept direction.
        whitening: (K, k) W.
        eigenvalues: (k,) the kept eigenvalues, largest first.
        min_p_null: min-P's family-wise p as a function of min_p.
        reason: why fewer directions were kept than asked for ("" when none were dropped).
        seed: seed of min-P's Monte Carlo null.
    """

    dimensions: tuple[str, ...]
    correlation: np.ndarray
    method: str
    k: int | None
    variance_share: float
    max_condition: float
    whitening: np.ndarray
    eigenvalues: np.ndarray
    min_p_null: MinPNull
    reason: str = ""
    seed: int = 0
    _subtests: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_correlation(cls, correlation: np.ndarray, dimensions: Sequence[str] | None = None,
                         method: str = "eigen", k: int | None = None, variance_share: float = 0.9,
                         max_condition: float = 1e4, seed: int = 0, quiet: bool = False) -> JointTest:
        """Decompose R once and choose the directions the statistic keeps.

        Args:
            correlation: (K, K) phenotype correlation, e.g. from :func:`phenotype_correlation`.
            dimensions: K names (None: ``dimension_0`` ...).
            method: "eigen" (top-k directions, the default: embeddings are often near-singular) or "full"
                (all K directions: the exact Wald/Hotelling statistic, regularised when R is ill-conditioned).
            k: eigen: directions to keep; None keeps the fewest whose eigenvalues reach ``variance_share`` of K.
            variance_share: eigen with ``k`` None: share of the variance to keep, in (0, 1].
            max_condition: no kept direction has λ_1 / λ_i above this (R's noise lives there); full falls back
                to the regularised inverse, with a logged reason, when R's condition number is above it.
            seed: seed of the Monte Carlo draws of min-P's null.
            quiet: log the chosen directions at debug level only (for the per-missingness sub-tests).

        Returns:
            The test.

        Raises:
            ValueError: an unknown method, a bad ``k`` or share, or a matrix that is not a correlation matrix.
        """
        if method not in METHODS:
            raise ValueError(f"joint test method '{method}' is not one of {', '.join(METHODS)}")
        names = tuple(dimensions) if dimensions is not None else tuple(f"dimension_{i}" for i in
                                                                        range(len(correlation)))
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names repeat: {sorted({n for n in names if names.count(n) > 1})}")
        correlation = _check_correlation(correlation, names)
        size = len(names)
        if size == 0:
            raise ValueError("the joint test needs at least one dimension")
        if k is not None and not 1 <= k <= size:
            raise ValueError(f"joint test k = {k} is outside 1..{size} (the number of dimensions)")
        if not 0 < variance_share <= 1:
            raise ValueError(f"joint test variance_share {variance_share} is outside (0, 1]")
        if max_condition <= 1:
            raise ValueError(f"joint test max_condition {max_condition} must be above 1")
        values, vectors = np.linalg.eigh(correlation)
        values, vectors = values[::-1], vectors[:, ::-1]
        # the sign of an eigenvector is arbitrary; fixing it makes W reproducible (T does not depend on it)
        vectors = vectors * np.where(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(size)] < 0, -1.0, 1.0)
        usable = int(np.sum(values > values[0] / max_condition))
        if method == "full":
            wanted = size
        elif k is not None:
            wanted = k
        else:
            wanted = int(np.searchsorted(np.cumsum(values) / size, variance_share - 1e-12) + 1)
        kept = min(wanted, usable)
        reason = ""
        if kept < wanted:
            condition = values[0] / values[-1] if values[-1] > 0 else np.inf
            reason = (f"R of the {size} dimensions is {'singular' if values[-1] <= 0 else 'ill-conditioned'} "
                      f"(condition number {condition:.3g} > max_condition {max_condition:.3g}): "
                      f"{method} test regularised to the top {kept} eigen-directions of {wanted} asked for")
            (logger.debug if quiet else logger.warning)(reason)
        whitening = vectors[:, :kept] / np.sqrt(values[:kept])
        test = cls(dimensions=names, correlation=correlation, method=method, k=k, variance_share=variance_share,
                   max_condition=max_condition, whitening=whitening, eigenvalues=values[:kept].copy(),
                   min_p_null=MinPNull.from_correlation(correlation, seed=seed), reason=reason, seed=seed)
        (logger.debug if quiet else logger.info)("joint test: %s", test.describe())
        return test

    @property
    def df(self) -> int:
        """Degrees of freedom of the statistic for a variant with every dimension's z-score."""
        return int(self.whitening.shape[1])

    def describe(self) -> str:
        """One line for logs: method, directions kept, the variance they hold, their eigenvalues."""
        share = self.eigenvalues.sum() / len(self.dimensions)
        return (f"{self.method}, {self.df} of {len(self.dimensions)} eigen-directions ({share:.1%} of the variance), "
                f"eigenvalues {self.eigenvalues[0]:.3g}–{self.eigenvalues[-1]:.3g}")

    def column_order(self, names: Sequence[str], where: str) -> np.ndarray:
        """Positions of the test's dimensions among ``names`` (the columns a caller's z-scores come in).

        Raises:
            ValueError: the names are not the test's dimensions (names what is missing or extra, and ``where``).
        """
        names = list(names)
        if len(set(names)) != len(names):
            raise ValueError(f"{where} repeats a dimension name")
        missing = [d for d in self.dimensions if d not in names]
        extra = [n for n in names if n not in self.dimensions]
        if missing or extra:
            raise ValueError(f"{where} has dimensions that differ from the joint test's: missing {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''}, extra {extra[:5]}{' ...' if len(extra) > 5 else ''}"
                             "; build the test from the phenotype correlation of exactly these dimensions")
        position = {name: i for i, name in enumerate(names)}
        return np.array([position[d] for d in self.dimensions])

    def _subtest(self, observed: np.ndarray) -> JointTest:
        """The test over the observed dimensions of a variant with missing z-scores (cached per pattern)."""
        key = observed.tobytes()
        if key not in self._subtests:
            index = np.flatnonzero(observed)
            self._subtests[key] = JointTest.from_correlation(
                self.correlation[np.ix_(index, index)], [self.dimensions[i] for i in index], self.method,
                None if self.k is None else min(self.k, index.size), self.variance_share, self.max_condition,
                quiet=True, seed=self.seed)
        return self._subtests[key]

    def statistic(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Wald statistic and its degrees of freedom for every variant.

        A variant with some z-scores missing (NaN) is tested over the dimensions
        it has, with R restricted to them; one with none gets NaN and df 0.

        Args:
            z: (v, K) z-scores, columns in the order of ``dimensions``.

        Returns:
            (v,) statistic and (v,) integer degrees of freedom.
        """
        return self._statistic(self._checked(z))

    def _checked(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != len(self.dimensions):
            raise ValueError(f"z-scores of shape {z.shape} for a joint test of {len(self.dimensions)} dimensions; "
                             "pass (variants, dimensions)")
        return z

    def _statistic(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        finite = np.isfinite(z)
        complete = finite.all(axis=1)
        statistic = np.full(len(z), np.nan)
        df = np.zeros(len(z), dtype=np.int64)
        statistic[complete] = np.square(z[complete] @ self.whitening).sum(axis=1)
        df[complete] = self.df
        partial = np.flatnonzero(~complete & finite.any(axis=1))
        if partial.size:
            patterns, which = np.unique(finite[partial], axis=0, return_inverse=True)
            for index, pattern in enumerate(patterns):
                rows = partial[which.reshape(-1) == index]
                sub = self._subtest(pattern)
                statistic[rows] = np.square(z[np.ix_(rows, np.flatnonzero(pattern))] @ sub.whitening).sum(axis=1)
                df[rows] = sub.df
        return statistic, df

    def min_p(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The smallest per-dimension p-value of every variant and its family-wise p.

        The family-wise p is :class:`MinPNull`'s F(min_p), over the observed
        dimensions' R for a variant with some p-values missing.

        Args:
            p: (v, K) per-dimension p-values, columns in the order of ``dimensions`` (NaN = missing).

        Returns:
            (v,) min_p, (v,) position of its dimension (-1 where all are missing), (v,) family-wise p.
        """
        p = self._checked(p)
        finite = np.isfinite(p)
        any_finite = finite.any(axis=1)
        index = np.where(any_finite, np.argmin(np.where(finite, p, np.inf), axis=1), -1)
        smallest = np.where(any_finite, p[np.arange(len(p)), np.maximum(index, 0)], np.nan)
        familywise = self.min_p_null.familywise(smallest)
        partial = np.flatnonzero(~finite.all(axis=1) & any_finite)
        if partial.size:
            patterns, which = np.unique(finite[partial], axis=0, return_inverse=True)
            for position, pattern in enumerate(patterns):
                rows = partial[which.reshape(-1) == position]
                familywise[rows] = self._subtest(pattern).min_p_null.familywise(smallest[rows])
        return smallest, index, familywise

    def test(self, z: np.ndarray, p: np.ndarray | None = None) -> JointResult:
        """Both joint tests for a block of variants.

        Args:
            z: (v, K) z-scores (beta / standard error), columns in the order of ``dimensions``.
            p: (v, K) per-dimension p-values for min-P (None: two-sided normal p of z).

        Returns:
            The block's joint statistics.
        """
        z = self._checked(z)
        statistic, df = self._statistic(z)
        p = 2.0 * stats.norm.sf(np.abs(z)) if p is None else p
        smallest, index, familywise = self.min_p(p)
        return JointResult(statistic=statistic, df=df, p_value=chi2_p_values(statistic, df), min_p=smallest,
                           min_p_index=index, min_p_familywise=familywise)

    def test_association(self, names: Sequence[str], beta: np.ndarray, standard_error: np.ndarray,
                         p_value: np.ndarray) -> JointResult:
        """Both joint tests from one block of the torch engine's output (no second pass over the genotypes).

        Args:
            names: the engine's phenotype names, the columns of the arrays (any order; they must be the
                test's dimensions).
            beta: (v, P) effects of the ALT allele (``AssociationResult.beta``).
            standard_error: (v, P) their standard errors.
            p_value: (v, P) the per-dimension p-values.

        Returns:
            The block's joint statistics.
        """
        order = self.column_order(names, "the GWAS block")
        return self.test(z_scores(beta[:, order], standard_error[:, order], p_value[:, order]), p_value[:, order])


def z_scores(beta: np.ndarray, standard_error: np.ndarray, p_value: np.ndarray) -> np.ndarray:
    """Per-dimension z-scores: the normal quantile of each test's p-value, with the sign of beta.

    beta / SE is a t statistic with n - c - 2 degrees of freedom, whose tails are heavier than
    N(0, 1) in small samples, and the Wald statistic adds their squares: on the 40-subject test
    cohort its null λGC was 1.11 with 8 directions. The p-value's normal quantile is N(0, 1)
    whatever the degrees of freedom and the engine (MOSTest's z-scores). Where p is at the
    written floor (below the double range) it no longer measures the effect, so beta / SE is kept.

    Args:
        beta: effects of the effect allele.
        standard_error: their standard errors.
        p_value: the tests' two-sided p-values (NaN: untested).

    Returns:
        z-scores of the same shape (NaN where p or beta is missing).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(beta, dtype=np.float64) / np.asarray(standard_error, dtype=np.float64)
    p_value = np.asarray(p_value, dtype=np.float64)
    quantile = stats.norm.isf(np.clip(p_value, SMALLEST_P, 1.0) / 2.0)
    return np.where(np.isnan(p_value) | (p_value <= SMALLEST_P), ratio, np.sign(ratio) * quantile)


def chi2_p_values(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    """χ² upper-tail p-values (accurate down to about 1e-308), NaN where df is 0 or the statistic is NaN."""
    statistic = np.asarray(statistic, dtype=np.float64)
    df = np.asarray(df)
    with np.errstate(invalid="ignore"):
        return np.where(df > 0, stats.chi2.sf(statistic, np.maximum(df, 1)), np.nan)


# --------------------------------------------------------------------------- MOSTest's fitted null


@dataclass(frozen=True)
class NullFit:
    """MOSTest's null distributions fitted to a permuted run: gamma for T, beta for min-P.

    Attributes:
        gamma_shape: shape of the gamma fitted to the permuted statistics (scale ``gamma_scale``, location 0).
        gamma_scale: its scale.
        beta_a: first parameter of the beta fitted to the permuted min-P (on [0, 1]).
        beta_b: second parameter.
        n_variants: permuted variants the fit used.
    """

    gamma_shape: float
    gamma_scale: float
    beta_a: float
    beta_b: float
    n_variants: int

    def statistic_p(self, statistic: np.ndarray) -> np.ndarray:
        """p-values of joint statistics under the fitted gamma."""
        return stats.gamma.sf(statistic, self.gamma_shape, scale=self.gamma_scale)

    def min_p_familywise(self, min_p: np.ndarray) -> np.ndarray:
        """Family-wise p of min-P values under the fitted beta."""
        return stats.beta.cdf(min_p, self.beta_a, self.beta_b)


def fit_null(statistic: np.ndarray, min_p: np.ndarray) -> NullFit:
    """Fit MOSTest's null distributions to the joint statistics and min-P of a permuted run.

    Use it when the χ² or min-P p of the permuted run is off (e.g. R estimated
    on other samples): a gamma (location 0) for T, a beta on [0, 1] for min-P,
    both by maximum likelihood, as in the MOSTest code. The fitted tails are
    extrapolations beyond the smallest permuted p, as they are in MOSTest.

    Args:
        statistic: joint statistics of the permuted run (NaN ignored); every variant should have the same df.
        min_p: its min-P values (NaN ignored).

    Returns:
        The fitted distributions.

    Raises:
        ValueError: fewer than 100 finite values to fit.
    """
    statistic = np.asarray(statistic, dtype=np.float64)
    statistic = statistic[np.isfinite(statistic)]
    min_p = np.asarray(min_p, dtype=np.float64)
    min_p = np.clip(min_p[np.isfinite(min_p)], SMALLEST_P, 1 - 1e-16)
    if min(statistic.size, min_p.size) < 100:
        raise ValueError(f"{min(statistic.size, min_p.size)} permuted variants are too few to fit the joint test's "
                         "null (at least 100)")
    shape, _, scale = stats.gamma.fit(statistic, floc=0)
    a, b, _, _ = stats.beta.fit(min_p, floc=0, fscale=1)
    fit = NullFit(float(shape), float(scale), float(a), float(b), int(statistic.size))
    logger.info("null fitted on %d permuted variants: T ~ gamma(shape %.3f, scale %.3f) (χ²_k is shape k/2, "
                "scale 2); min-P ~ beta(%.3f, %.3f)", fit.n_variants, shape, scale, a, b)
    return fit


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """λGC of a joint test's p-values on a permuted (null) run and whether it is acceptable.

    Attributes:
        lambda_gc: λGC of the joint statistic's p-values.
        lambda_min_p: λGC of the min-P family-wise p-values.
        limit: the largest acceptable λGC.
        n_variants: variants with a p-value.
    """

    lambda_gc: float
    lambda_min_p: float
    limit: float
    n_variants: int

    @property
    def ok(self) -> bool:
        """Whether both λ are at most the limit (a NaN λ is not)."""
        return bool(self.lambda_gc <= self.limit and self.lambda_min_p <= self.limit)


class JointCalibrationError(ValueError):
    """The joint test's null (permuted) run is inflated: its p-values cannot be trusted."""


def null_calibration(p_value: np.ndarray, min_p_familywise: np.ndarray, limit: float = NULL_LAMBDA_LIMIT,
                     what: str = "the permuted joint run") -> Calibration:
    """λGC of a permuted run's joint p-values; a λ above ``limit`` is logged and raised, never passed on.

    Args:
        p_value: joint statistic p-values of the permuted run.
        min_p_familywise: its min-P family-wise p-values.
        limit: the largest acceptable λGC (1.1 by default; the null should give about 1).
        what: the run, for messages (e.g. its file).

    Returns:
        The calibration (``ok`` is True).

    Raises:
        JointCalibrationError: either λ is above ``limit`` (or NaN).
    """
    p_value = np.asarray(p_value, dtype=np.float64)
    calibration = Calibration(genomic_inflation(p_value), genomic_inflation(min_p_familywise), limit,
                              int(np.isfinite(p_value).sum()))
    message = (f"{what}: λGC of the joint statistic {calibration.lambda_gc:.3f}, of min-P {calibration.lambda_min_p:.3f} "
               f"over {calibration.n_variants} variants (limit {limit})")
    if not calibration.ok:
        message += ("; the null is inflated, so the joint p-values are not trustworthy: keep fewer eigen-directions "
                    "(smaller k or variance_share), check that R comes from the GWAS's phenotypes and covariates, "
                    "or calibrate with fit_null on this run")
        logger.error(message)
        raise JointCalibrationError(message)
    logger.info(message)
    return calibration


# --------------------------------------------------------------------------- the joint file


def _format_integers(values: np.ndarray) -> list[str]:
    return [str(v) for v in np.asarray(values, dtype=np.int64).tolist()]


class JointWriter(StagedGzipWriter):
    """Write ``joint.tsv.gz`` in blocks, atomically (see :class:`StagedGzipWriter`).

    Args:
        path: final ``.tsv.gz`` path; its folder is created.
        dimensions: the test's dimension names (``min_p_dimension`` is written by name).
        compresslevel: gzip level.
    """

    def __init__(self, path: str | os.PathLike, dimensions: Sequence[str], compresslevel: int = 1) -> None:
        super().__init__(path, compresslevel)
        self._names = np.array([*dimensions, "NA"], dtype=object)  # index -1 (no dimension) -> NA
        self._handle.write(("\t".join(JOINT_COLUMNS) + "\n").encode())
        self.n_rows = 0

    def write(self, variants: VariantTexts, result: JointResult, n: np.ndarray | int) -> None:
        """Append one block of variants.

        Args:
            variants: from :func:`variant_texts` (effect allele = ALT).
            result: the block's joint statistics.
            n: samples per variant (the smallest over the dimensions), one per variant or one for all.
        """
        if not variants.leading:
            return
        floored = [np.where(p < SMALLEST_P, SMALLEST_P, p) for p in (result.p_value, result.min_p,
                                                                      result.min_p_familywise)]
        columns = [
            variants.leading, variants.variant_id, _texts(result.statistic), _format_integers(result.df),
            _texts(floored[0]), _format_integers(np.broadcast_to(n, result.df.shape)), _texts(floored[1]),
            self._names[result.min_p_index].tolist(), _texts(floored[2]),
        ]
        self._handle.write(("\n".join(map("\t".join, zip(*columns))) + "\n").encode())
        self.n_rows += len(variants.leading)


def read_joint(path: str | os.PathLike) -> pd.DataFrame:
    """A ``joint.tsv.gz`` as written by :class:`JointWriter` (NA as NaN)."""
    return JOINT.read(path, columns=JOINT_COLUMNS)[JOINT_COLUMNS]


@dataclass(frozen=True)
class JointSummary:
    """What one joint run wrote.

    Attributes:
        path: the joint file.
        n_variants: variants with a joint p-value.
        lambda_gc: λGC of the joint statistic.
        lambda_min_p: λGC of the min-P family-wise p.
        n_genome_wide: variants with joint p below 5e-8.
    """

    path: Path
    n_variants: int
    lambda_gc: float
    lambda_min_p: float
    n_genome_wide: int


def summarise_joint(path: str | os.PathLike, qq_path: str | os.PathLike | None = None,
                    genome_wide: float = 5e-8) -> JointSummary:
    """λGC of a joint file's two tests, its genome-wide count, and optionally their QQ plot.

    Args:
        path: a joint file.
        qq_path: PNG for the QQ plot of the joint statistic and min-P (None: no plot).
        genome_wide: the threshold counted.

    Returns:
        The summary.
    """
    table = JOINT.read(path, columns=["p_value", "min_p_familywise"])
    p, familywise = table["p_value"].to_numpy(float), table["min_p_familywise"].to_numpy(float)
    summary = JointSummary(Path(path), int(np.isfinite(p).sum()), genomic_inflation(p), genomic_inflation(familywise),
                           int((p < genome_wide).sum()))
    if qq_path is not None:
        from vitudip.plots.gwas import plot_qq  # matplotlib only when a plot is asked for

        plot_qq({"joint": p, "min-P": familywise},
                {"joint": summary.lambda_gc, "min-P": summary.lambda_min_p}, qq_path)
    logger.info("%s: %d variants, λGC joint %.3f, min-P %.3f, %d below %.0e", path, summary.n_variants,
                summary.lambda_gc, summary.lambda_min_p, summary.n_genome_wide, genome_wide)
    return summary


# --------------------------------------------------------------------------- from GWAS-SSF files


def _sumstats_chunks(path: Path, chunk_size: int):
    """Iterate a GWAS-SSF file in chunks of the columns the joint step needs, cells of the contract's kinds."""
    present = SUMSTATS.header(path)  # exists, tab-separated, has the required columns
    source = id_column(present)  # variants are matched by the genotype files' ID
    wanted = [source if c == "variant_id" else c for c in _SUMSTATS_READ]
    absent = [c for c in wanted if c not in present]
    if absent:
        raise ValueError(f"{SUMSTATS.what} {path} lacks column(s) {', '.join(absent)} that the joint test needs; "
                         f"available: {', '.join(present)}")
    dtype = {c: str for c in (*SUMSTATS.text, "chromosome")} | {c: np.float64 for c in ("beta", "standard_error",
                                                                                         "p_value", "n")}
    dtype["base_pair_location"] = np.int64
    reader = pd.read_csv(path, sep="\t", usecols=wanted, dtype=dtype, keep_default_na=False,
                         na_values={c: ["NA", ""] for c in ("beta", "standard_error", "p_value", "n")},
                         chunksize=chunk_size)
    try:
        for chunk in reader:
            yield chunk.rename(columns={source: "variant_id"})[_SUMSTATS_READ]
    except ValueError:
        SUMSTATS.read(path, columns=wanted)  # the slow path names the bad cell's line and column
        raise


def _dimension_paths(sumstats: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Dimension name -> file; a sequence of files is named by file name (``udip_000.tsv.gz`` -> udip_000)."""
    if isinstance(sumstats, Mapping):
        return {name: Path(path) for name, path in sumstats.items()}
    paths = [Path(p) for p in sumstats]
    names = [p.name.removesuffix(".gz").removesuffix(".tsv") for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"two summary statistics files share a dimension name: {sorted(names)}")
    return dict(zip(names, paths))


#: A variant's identity across the dimensions' files: position, alleles and id.
_KEY = [*_ALIGNMENT, "variant_id"]


def _variant_at(frame: pd.DataFrame, row: int) -> str:
    """chromosome:position:effect:other of one row, for messages."""
    return ":".join(str(frame[c].iloc[row]) for c in _ALIGNMENT)


class _SumstatsStream:
    """One dimension's file as a buffer of rows, refilled chunk by chunk and checked to be in genome order.

    ``_order`` (GWAS-SSF chromosome x 2^40 + position) sorts the rows; ``_line`` is each row's file line.
    """

    def __init__(self, path: Path, chunk_size: int) -> None:
        self.path = path
        self._chunks = _sumstats_chunks(path, chunk_size)
        self.buffer = pd.DataFrame()
        self.done = False
        self._line = 2
        self._last = -1

    def fill(self) -> None:
        """Append the next chunk to the buffer (or mark the file done)."""
        chunk = next(self._chunks, None)
        if chunk is None:
            self.done = True
            return
        names = chunk["chromosome"]
        numbers = names.map({name: ssf_chromosome(name) for name in names.unique()}).to_numpy(np.int64)
        order = numbers * 2**40 + chunk["base_pair_location"].to_numpy(np.int64)
        back = np.flatnonzero(np.diff(np.concatenate([[self._last], order])) < 0)
        if back.size:
            at = int(back[0])
            raise ValueError(f"line {self._line + at} of {self.path} is variant {_variant_at(chunk, at)}, before the "
                             "line above it in chromosome and position order: the joint test reads files sorted by "
                             "chromosome and position, as gwas_gather writes them")
        chunk = chunk.assign(_order=order, _line=np.arange(self._line, self._line + len(chunk)))
        self._line += len(chunk)
        self._last = int(order[-1])
        self.buffer = pd.concat([self.buffer, chunk], ignore_index=True) if len(self.buffer) else chunk

    def take(self, count: int) -> pd.DataFrame:
        """Remove and return the first ``count`` buffered rows."""
        taken, self.buffer = self.buffer.iloc[:count], self.buffer.iloc[count:].reset_index(drop=True)
        return taken.reset_index(drop=True)


def _same_variants(frames: Sequence[pd.DataFrame]) -> bool:
    """Whether every frame lists the first one's variants in the same order."""
    first = frames[0]
    return all(len(f) == len(first) and all(np.array_equal(f[c].to_numpy(), first[c].to_numpy()) for c in _KEY)
               for f in frames[1:])


def _union(parts: Sequence[pd.DataFrame], paths: Sequence[Path]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The variants of any part in genome order, and each part's rows' positions among them."""
    for part, path in zip(parts, paths):
        repeated = part.duplicated(_KEY)
        if repeated.any():
            at = int(np.flatnonzero(repeated)[0])
            raise ValueError(f"line {int(part['_line'].iloc[at])} of {path} repeats variant {_variant_at(part, at)} "
                             f"({part['variant_id'].iloc[at]}): each variant may appear once per dimension's file")
    union = pd.concat([p[[*_KEY, "_order"]] for p in parts], ignore_index=True).drop_duplicates(_KEY)
    union = union.sort_values("_order", kind="stable").reset_index(drop=True)
    index = pd.MultiIndex.from_frame(union[_KEY])
    return union, [index.get_indexer(pd.MultiIndex.from_frame(p[_KEY])) for p in parts]


def _aligned_blocks(streams: Sequence[_SumstatsStream]):
    """Blocks of variants over every dimension's file: (variants, z, p, n), each (v, K) but the variants.

    Files written by one GWAS list the same variants (the fast path: row by row); a gathered file
    leaves out the variants untested in its dimension, so blocks are otherwise the union of the
    variants before the smallest position any file may still continue at, a dimension lacking a
    variant giving it a missing z (the test then uses the dimensions it has).
    """
    paths = [s.path for s in streams]
    while True:
        for stream in streams:
            if not stream.done and stream.buffer.empty:
                stream.fill()
        if all(s.buffer.empty for s in streams):
            return
        if _same_variants([s.buffer for s in streams]):
            parts = [s.take(len(s.buffer)) for s in streams]
            variants, rows = parts[0], [np.arange(len(parts[0]))] * len(parts)
        else:
            # a file not done may still hold rows at its last buffered position: stop before the smallest such
            open_ends = [int(s.buffer["_order"].iloc[-1]) for s in streams if not s.done and not s.buffer.empty]
            bound = min(open_ends) if open_ends else None
            counts = [len(s.buffer) if bound is None else int(np.searchsorted(s.buffer["_order"].to_numpy(), bound))
                      for s in streams]
            if not any(counts):
                for stream in streams:
                    if not stream.done and not stream.buffer.empty and int(stream.buffer["_order"].iloc[-1]) == bound:
                        stream.fill()
                continue
            parts = [s.take(c) for s, c in zip(streams, counts)]
            variants, rows = _union(parts, paths)
        shape = (len(variants), len(parts))
        z, p, n = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
        for column, (part, at) in enumerate(zip(parts, rows)):
            p[at, column] = part["p_value"].to_numpy()
            z[at, column] = z_scores(part["beta"].to_numpy(), part["standard_error"].to_numpy(), p[at, column])
            n[at, column] = part["n"].to_numpy()
        yield variants, z, p, n


def joint_from_sumstats(sumstats: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike], test: JointTest,
                        out_path: str | os.PathLike, chunk_size: int = 200_000, progress: bool = True) -> JointSummary:
    """Stream the per-dimension GWAS-SSF files in variant chunks and write the joint file.

    For the plink2 and REGENIE engines (the torch engine computes the same
    in process). z is the normal quantile of each dimension's p_value with the
    sign of its beta (:func:`z_scores`), signed by the effect allele, which every
    engine writes as ALT; the p_value column feeds min-P too.
    The files are read in genome order and matched by chromosome, position,
    alleles and variant_id: a variant some files lack (gwas_gather leaves out
    a dimension's untested variants) is tested over the dimensions that have
    it, with R restricted to them (its ``df`` says how many directions).
    Memory is about chunk_size x K x 40 bytes.

    Args:
        sumstats: dimension -> GWAS-SSF file, or files named ``<dimension>.tsv.gz``; exactly the test's dimensions.
        test: the joint test.
        out_path: ``joint.tsv.gz`` (written atomically).
        chunk_size: variants per chunk.
        progress: show a progress bar over chunks.

    Returns:
        What was written, with λGC.

    Raises:
        ValueError: the files are not the test's dimensions, lack a column, are not sorted by chromosome and
            position, or repeat a variant (names the file and the line).
    """
    paths = _dimension_paths(sumstats)
    names = list(paths)
    order = test.column_order(names, "the summary statistics files")
    ordered = [paths[names[i]] for i in order]
    streams = [_SumstatsStream(path, chunk_size) for path in ordered]
    logger.info("joint test over %d dimensions from %s ... (%s), chunks of %d variants", len(ordered), ordered[0],
                test.describe(), chunk_size)
    p_values, familywise, offset = [], [], 0
    with JointWriter(out_path, test.dimensions) as writer, tqdm(desc="joint test", unit=" variants",
                                                                  disable=not progress, mininterval=5) as bar:
        for variants, z, p, n in _aligned_blocks(streams):
            result = test.test(z, p)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a variant no dimension tested: n is NaN
                smallest_n = np.nanmin(n, axis=1)
            writer.write(variant_texts(variants[VARIANT_COLUMNS]), result, np.nan_to_num(smallest_n).astype(np.int64))
            p_values.append(result.p_value)
            familywise.append(result.min_p_familywise)
            offset += len(variants)
            bar.update(len(variants))
    p = np.concatenate(p_values) if p_values else np.array([])
    fw = np.concatenate(familywise) if familywise else np.array([])
    summary = JointSummary(writer.path, int(np.isfinite(p).sum()), genomic_inflation(p), genomic_inflation(fw),
                           int((p < 5e-8).sum()))
    logger.info("joint test of %d variants written to %s: λGC %.3f (min-P %.3f), %d below 5e-8", offset, writer.path,
                summary.lambda_gc, summary.lambda_min_p, summary.n_genome_wide)
    return summary
