"""R, the correlation of a study's covariate-adjusted phenotypes, that the joint tests are built from.

Each dimension's GWAS regresses its phenotype on the covariates, so the
z-scores of a null variant are correlated as the covariate-adjusted phenotypes
are (:func:`phenotype_correlation`); :class:`~vitudip.genetics.joint_stats.JointTest`
takes that matrix. Arrays in, arrays out: no files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vitudip.genetics.gwas_inputs import covariate_basis


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

