"""Study-wide significance thresholds over many GWAS dimensions.

Beside the genome-wide 5e-8, two study-wide thresholds divide it by a number of
tests over dimensions: all of them (Bonferroni), or the effective number M_eff
of independent dimensions. M_eff follows Li & Ji (2005, Heredity 95:221): from
the eigenvalues λ of the dimensions' correlation matrix,
M_eff = Σ f(|λ|) with f(x) = [x >= 1] + (x - floor(x)). Uncorrelated dimensions
give M_eff = their number, perfectly correlated ones give 1. (Nyholt's 2004
estimate, from the variance of the eigenvalues, is the other common choice.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitudip.io.stage_tables import PHENO

logger = logging.getLogger("vitudip.loci")

#: Column names in the loci tables saying which threshold a locus passes.
PASS_COLUMNS = {"genome_wide": "passes_genome_wide", "bonferroni": "passes_bonferroni", "meff": "passes_meff"}


def effective_number_of_tests(correlation: np.ndarray) -> float:
    """Li & Ji's effective number of independent tests.

    Args:
        correlation: (k, k) correlation matrix of the dimensions.

    Returns:
        M_eff in [1, k] (k = 0 gives 0).
    """
    correlation = np.asarray(correlation, dtype=np.float64)
    if correlation.size == 0:
        return 0.0
    eigenvalues = np.abs(np.linalg.eigvalsh(correlation))
    # rounding leaves an eigenvalue that should be exactly 1 a hair below it; don't let that drop a whole test
    eigenvalues = np.where(np.isclose(eigenvalues, np.round(eigenvalues), rtol=0, atol=1e-9),
                           np.round(eigenvalues), eigenvalues)
    return float(np.sum((eigenvalues >= 1) + (eigenvalues - np.floor(eigenvalues))))


def dimension_correlation(path: str | os.PathLike, dimensions: Sequence[str]) -> np.ndarray:
    """Correlation matrix of the dimensions from a phenotype table (pheno.tsv or udips.tsv).

    Args:
        path: tab-separated table with one column per dimension (others, e.g. FID/IID, are ignored).
        dimensions: the dimension columns, in order.

    Returns:
        (k, k) pairwise-complete Pearson correlations; a constant column correlates 0 with the others.
    """
    table = PHENO.read(path, columns=list(dimensions))[list(dimensions)]
    correlation = table.astype(np.float64).corr().to_numpy()
    correlation = np.nan_to_num(correlation, nan=0.0)
    np.fill_diagonal(correlation, 1.0)
    return correlation


@dataclass(frozen=True)
class Thresholds:
    """The genome-wide threshold and the two study-wide ones.

    Attributes:
        genome_wide: e.g. 5e-8.
        n_dimensions: the number of dimensions (Bonferroni divisor).
        m_eff: the effective number of independent dimensions.
    """

    genome_wide: float
    n_dimensions: int
    m_eff: float

    @property
    def values(self) -> dict[str, float]:
        """Threshold name -> p-value threshold."""
        return {
            "genome_wide": self.genome_wide,
            "bonferroni": self.genome_wide / max(self.n_dimensions, 1),
            "meff": self.genome_wide / max(self.m_eff, 1.0),
        }

    def passes(self, p: np.ndarray | pd.Series) -> dict[str, np.ndarray]:
        """Which thresholds each p-value is below, as PASS_COLUMNS -> boolean arrays."""
        p = np.asarray(p, dtype=np.float64)
        return {PASS_COLUMNS[name]: p < value for name, value in self.values.items()}

    def table(self) -> pd.DataFrame:
        """One row per threshold: name, p_value, divisor."""
        divisors = {"genome_wide": 1.0, "bonferroni": float(self.n_dimensions), "meff": self.m_eff}
        return pd.DataFrame(
            {"threshold": list(self.values), "p_value": list(self.values.values()), "divisor": list(divisors.values())}
        )


def study_thresholds(
    genome_wide: float, dimensions: Sequence[str], phenotypes: str | os.PathLike | None = None
) -> Thresholds:
    """Thresholds of a study, with M_eff from a phenotype table.

    Args:
        genome_wide: the genome-wide threshold.
        dimensions: dimension names.
        phenotypes: table with one column per dimension; None takes M_eff = the number of dimensions.

    Returns:
        The thresholds.
    """
    if phenotypes is None:
        m_eff = float(len(dimensions))
        logger.warning("no phenotype table: M_eff taken as the number of dimensions (%d)", len(dimensions))
    else:
        m_eff = max(effective_number_of_tests(dimension_correlation(phenotypes, dimensions)), 1.0)
    thresholds = Thresholds(genome_wide, len(dimensions), m_eff)
    logger.info("M_eff %.2f of %d dimensions; thresholds %s", m_eff, len(dimensions),
                ", ".join(f"{k} {v:.3g}" for k, v in thresholds.values.items()))
    return thresholds
