"""The joint tests' null: MOSTest's fitted null distributions and the λGC check of a permuted run.

MOSTest (van der Meer et al. 2020, "Understanding the genetic determinants of
the brain with MOSTest", Nat Commun 11:3512) permutes genotypes against
phenotypes once and checks or fits the joint tests' null on that run:
:func:`null_calibration` checks the λGC of a permuted run's p-values against a
limit, and :func:`fit_null` fits MOSTest's gamma and beta distributions to it.
Arrays in, arrays out: the permuted run itself is the joint stage's
(:func:`~vitudip.genetics.joint_stage.null_stage`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from vitudip.genetics.pvalue_sketch import PValueSketch
from vitudip.genetics.sumstats import SMALLEST_P

logger = logging.getLogger("vitudip.gwas")

#: λGC of a permuted (null) joint run above this is an error (MOSTest's check of its null).
NULL_LAMBDA_LIMIT = 1.1
#: Chance that a calibrated test's permuted run of few variants fails the check by sampling error alone.
NULL_FALSE_ALARM = 1e-3


def lambda_standard_error(n_variants: int) -> float:
    """Sampling SD of λGC over ``n_variants`` independent null p-values: 2.33 / sqrt(n).

    λGC is the sample median of χ²₁ over its median m; the sample median's SD is 1 / (2 f(m) sqrt(n)), f the χ²₁
    density, so λGC's is 1 / (2 f(m) m sqrt(n)).
    """
    median = stats.chi2.ppf(0.5, 1)
    return float(1.0 / (2.0 * stats.chi2.pdf(median, 1) * median * np.sqrt(max(n_variants, 1))))


def effective_lambda_limit(limit: float, n_variants: int) -> float:
    """The λGC a permuted run of ``n_variants`` may reach: ``limit``, or above it the λ that a calibrated test
    (λ 1) exceeds with probability :data:`NULL_FALSE_ALARM` by sampling error alone.

    One permuted run of n variants estimates λ to ± 2.33 / sqrt(n): 0.043 at 3,000 variants, the pruned
    variants of a small study, where a calibrated test passes a fixed 1.1 only 99 % of the time per statistic.
    The check then asks for inflation beyond both the limit and the run's own noise.
    """
    return max(limit, 1.0 + float(stats.norm.isf(NULL_FALSE_ALARM)) * lambda_standard_error(n_variants))


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
        limit: the largest acceptable λGC: the configured limit, or above it the run's sampling noise
            (:func:`effective_lambda_limit`).
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


def _too_few_subjects(subjects: int | None, dimensions: int | None, limit: float) -> str:
    """Why a null is inflated when the study is small for its dimensions, or "" when it is not.

    R estimated from n subjects inflates the joint statistic of K dimensions by about n / (n - K) (Hotelling's
    T²), more than ``limit`` below n = K limit / (limit - 1); at n <= K the estimate is singular. Fewer
    eigen-directions may lower the inflation, not mend its cause.
    """
    if subjects is None or dimensions is None or limit <= 1:
        return ""
    # rounded first: 128 x 1.1 / 0.1 is 1408.0000000000002 in floating point
    needed = math.ceil(round(dimensions * limit / (limit - 1), 6))
    if subjects >= needed:
        return ""
    return (f"; the null is inflated, and the cause is the study's size: {subjects} subjects are too few for a "
            f"joint test of {dimensions} dimensions (R of {dimensions} dimensions estimated from n subjects "
            f"inflates the statistic by about n / (n - K), over the limit below {needed} subjects"
            f"{'; at n <= K it is singular' if subjects <= dimensions else ''}); fewer eigen-directions may lower "
            "the inflation but not mend its cause: analyse more subjects, or set joint.enabled to false for a study "
            "this small")


def null_calibration(statistic: PValueSketch, familywise: PValueSketch, limit: float = NULL_LAMBDA_LIMIT,
                     what: str = "the permuted joint run", subjects: int | None = None,
                     dimensions: int | None = None) -> Calibration:
    """λGC of a permuted run's joint p-values; a λ above ``limit`` is logged and raised, never passed on.

    Args:
        statistic: sketch of the joint statistic's p-values of the permuted run (:class:`PValueSketch`; its
            λGC is within 4.4e-5 of the exact median's below λ 35).
        familywise: sketch of its min-P family-wise p-values.
        limit: the largest acceptable λGC (1.1 by default; the null should give about 1), raised to the run's
            sampling noise when it has few variants (:func:`effective_lambda_limit`).
        what: the run, for messages (e.g. its file).
        subjects: the subjects the run analysed (None: unknown), to tell a study too small for its dimensions.
        dimensions: the dimensions tested jointly.

    Returns:
        The calibration (``ok`` is True).

    Raises:
        JointCalibrationError: either λ is above ``limit`` (or NaN).
    """
    n_variants = statistic.n
    allowed = effective_lambda_limit(limit, n_variants)
    calibration = Calibration(statistic.lambda_gc(), familywise.lambda_gc(), allowed, n_variants)
    message = (f"{what}: λGC of the joint statistic {calibration.lambda_gc:.3f}, "
               f"of min-P {calibration.lambda_min_p:.3f} over {n_variants} variants (limit {allowed:.3f}: "
               f"{limit} or, above it, 1 + {stats.norm.isf(NULL_FALSE_ALARM):.2f} x λ's sampling SD "
               f"{lambda_standard_error(n_variants):.3f})")
    if not calibration.ok:
        message += _too_few_subjects(subjects, dimensions, limit) or (
            "; the null is inflated, so the joint p-values are not trustworthy: keep fewer eigen-directions "
            "(smaller k or variance_share), check that R comes from the GWAS's phenotypes and covariates, "
            "or calibrate with fit_null on this run")
        logger.error(message)
        raise JointCalibrationError(message)
    logger.info(message)
    return calibration

