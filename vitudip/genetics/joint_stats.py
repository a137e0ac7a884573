"""The joint tests of a variant over all dimensions of a study: a Wald (Hotelling) statistic and min-P.

Per-dimension GWAS asks one question per dimension, so a variant whose effect
is spread thinly over many correlated dimensions can miss 5e-8 in each of them.
The joint tests ask one question per variant, as MOSTest does (van der Meer et
al. 2020, "Understanding the genetic determinants of the brain with MOSTest",
Nat Commun 11:3512):

* **Wald / Hotelling.** With z the variant's K per-dimension z-scores
  (the normal quantile of each p, signed by beta: :func:`z_scores`) and R the correlation of
  the covariate-adjusted phenotypes
  (:func:`~vitudip.genetics.joint_correlation.phenotype_correlation`), T = z' R⁻¹ z is χ² with K degrees of
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
  run, is :func:`~vitudip.genetics.joint_null.fit_null`.

Exact relation to a multivariate regression (used by the tests): for complete
data, with Y regressed on [1, C] (residual SSCP S0) and on [1, C, g], Wilks'
Λ = det(S1) / det(S0) = 1 - u'S0⁻¹u with u = Y_r'g_r / |g_r|. The score
z-scores z0_j = t_j / sqrt(1 + t_j² / d) (t the per-dimension Wald t, d the
residual degrees of freedom) give z0'R⁻¹z0 = d (1 - Λ) exactly, and Hotelling's
T² = d (1 - Λ) / Λ. The Wald t used here differs from z0 by O(t²/d).

Arrays in, arrays out: no files and no PyTorch. The plink2 and REGENIE
engines' joint step streams their gathered GWAS-SSF files through
:meth:`JointTest.test` (:func:`~vitudip.genetics.joint_sumstats.joint_from_sumstats`);
the torch engine calls it on each block (``linear_gwas(joint=...)``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats
from scipy.sparse.csgraph import minimum_spanning_tree

from vitudip.genetics.sumstats import SMALLEST_P

logger = logging.getLogger("vitudip.gwas")

METHODS = ("eigen", "full")


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


def _check_options(size: int, k: int | None, variance_share: float, max_condition: float) -> None:
    """Raise a ValueError naming the first of the joint test's options that is out of range.

    Args:
        size: the number of dimensions K.
        k: eigen-directions asked for (None: chosen by ``variance_share``).
        variance_share: share of R's trace to keep, in (0, 1].
        max_condition: largest λ_1 / λ_i of a kept direction, above 1.
    """
    if size == 0:
        raise ValueError("the joint test needs at least one dimension")
    if k is not None and not 1 <= k <= size:
        raise ValueError(f"joint test k = {k} is outside 1..{size} (the number of dimensions)")
    if not 0 < variance_share <= 1:
        raise ValueError(f"joint test variance_share {variance_share} is outside (0, 1]")
    if max_condition <= 1:
        raise ValueError(f"joint test max_condition {max_condition} must be above 1")


def _eigen_directions(correlation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R's eigenvalues, largest first, and its eigenvectors (columns) with a reproducible sign.

    Args:
        correlation: (K, K) symmetric correlation matrix.

    Returns:
        (K,) eigenvalues and (K, K) eigenvectors, each with its largest-magnitude entry positive.
    """
    values, vectors = np.linalg.eigh(correlation)
    values, vectors = values[::-1], vectors[:, ::-1]
    # the sign of an eigenvector is arbitrary; fixing it makes W reproducible (T does not depend on it)
    size = len(values)
    vectors = vectors * np.where(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(size)] < 0, -1.0, 1.0)
    return values, vectors


def _directions_kept(values: np.ndarray, method: str, k: int | None, variance_share: float,
                     max_condition: float) -> tuple[int, str]:
    """How many of R's eigen-directions the statistic keeps, and why fewer than asked for.

    Args:
        values: R's eigenvalues, largest first.
        method: "eigen" or "full" (all directions asked for).
        k: eigen: directions asked for; None asks for the fewest whose eigenvalues reach ``variance_share``.
        variance_share: share of R's trace asked for when ``k`` is None.
        max_condition: no kept direction has λ_1 / λ_i above this.

    Returns:
        The directions kept and the reason fewer were kept than asked for ("" when none were dropped).
    """
    size = len(values)
    usable = int(np.sum(values > values[0] / max_condition))
    if method == "full":
        wanted = size
    elif k is not None:
        wanted = k
    else:
        wanted = int(np.searchsorted(np.cumsum(values) / size, variance_share - 1e-12) + 1)
    kept = min(wanted, usable)
    if kept == wanted:
        return kept, ""
    condition = values[0] / values[-1] if values[-1] > 0 else np.inf
    return kept, (f"R of the {size} dimensions is {'singular' if values[-1] <= 0 else 'ill-conditioned'} "
                  f"(condition number {condition:.3g} > max_condition {max_condition:.3g}): "
                  f"{method} test regularised to the top {kept} eigen-directions of {wanted} asked for")


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
            correlation: (K, K) phenotype correlation, e.g. from
                :func:`~vitudip.genetics.joint_correlation.phenotype_correlation`.
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
        _check_options(len(names), k, variance_share, max_condition)
        values, vectors = _eigen_directions(correlation)
        kept, reason = _directions_kept(values, method, k, variance_share, max_condition)
        if reason:
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
                             f"{' ...' if len(missing) > 5 else ''}, "
                             f"extra {extra[:5]}{' ...' if len(extra) > 5 else ''}"
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
        """``z`` as float64 (v, K) with the test's K columns, or a ValueError naming the shape.

        Args:
            z: per-variant, per-dimension values (z-scores or p-values).
        """
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != len(self.dimensions):
            raise ValueError(f"z-scores of shape {z.shape} for a joint test of {len(self.dimensions)} dimensions; "
                             "pass (variants, dimensions)")
        return z

    def _statistic(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`statistic` of z-scores already checked by :meth:`_checked`.

        Args:
            z: (v, K) float64 z-scores, NaN = missing.
        """
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


