"""λGC and QQ points of many p-values in bounded memory, streamed chunk by chunk.

λGC is the median χ²(1) of the p-values over its null median (0.4549). The exact median needs every
p-value at once (10 M per dimension at UK Biobank scale); :class:`PValueSketch` instead counts the
χ² values of the streamed p-values on fixed bins and interpolates the median inside its bin:

* bins of width :data:`CHI2_STEP` (2e-5) for χ² below :data:`CHI2_LINEAR` (16, λGC below 35): there the
  streamed λGC is within ``CHI2_STEP / 0.4549364 = 4.4e-5`` of the exact one;
* above, bins whose edges grow by the factor ``1 + LOG_STEP`` (1e-4): a relative error below 1e-4.

So ``|λ_streamed - λ_exact| <= max(4.4e-5, 1e-4 λ_exact)``, whatever the number of p-values, with about
850,000 bin counts (7 MB) per sketch. The smallest :data:`EXACT_SMALLEST` p-values are kept exactly, so the
QQ plot's tail (and the smallest p) is drawn from the values themselves, its body from the bins.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from vitudip.genetics.sumstats import CHI2_1DF_MEDIAN

#: Width of the χ² bins below CHI2_LINEAR: the streamed λGC's error bound there is CHI2_STEP / 0.4549.
CHI2_STEP = 2e-5
#: χ² up to which bins are of equal width (λGC up to 16 / 0.4549 = 35 gets the absolute bound).
CHI2_LINEAR = 16.0
#: Relative width of the bins above CHI2_LINEAR (the relative error bound of a larger λGC).
LOG_STEP = 1e-4
#: χ² of the last bin's upper edge: p down to the smallest double (χ² about 1480) and p = 0 fall below it.
CHI2_TOP = 2048.0
#: The smallest p-values kept exactly (the QQ plot draws these points one by one, as from the full array).
EXACT_SMALLEST = 1000

_N_LINEAR = int(round(CHI2_LINEAR / CHI2_STEP))
_N_LOG = int(np.ceil(np.log(CHI2_TOP / CHI2_LINEAR) / np.log1p(LOG_STEP)))
_N_BINS = _N_LINEAR + _N_LOG


def _chi2(p: np.ndarray) -> np.ndarray:
    """χ²(1) of two-sided p-values: the square of the normal quantile of p / 2 (fast, unlike chi2.isf)."""
    return np.square(special.ndtri(np.clip(p, 0.0, 1.0) / 2.0))


def _bin(chi2: np.ndarray) -> np.ndarray:
    """Bin of each χ² (an infinite χ², from p = 0, in the last bin)."""
    linear = np.floor(chi2 / CHI2_STEP)
    with np.errstate(divide="ignore", invalid="ignore"):
        logarithmic = _N_LINEAR + np.floor(np.log(chi2 / CHI2_LINEAR) / np.log1p(LOG_STEP))
    index = np.where(chi2 < CHI2_LINEAR, linear, logarithmic)
    return np.clip(np.nan_to_num(index, posinf=_N_BINS - 1), 0, _N_BINS - 1).astype(np.int64)


def _edges(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper χ² edge of each bin."""
    index = np.asarray(index, dtype=np.float64)
    above = index - _N_LINEAR
    lower = np.where(above < 0, index * CHI2_STEP, CHI2_LINEAR * np.power(1.0 + LOG_STEP, np.maximum(above, 0)))
    upper = np.where(above < 0, (index + 1) * CHI2_STEP,
                     CHI2_LINEAR * np.power(1.0 + LOG_STEP, np.maximum(above, 0) + 1))
    return lower, upper


class PValueSketch:
    """Counts of streamed p-values on fine χ² bins, their smallest values exactly (see the module docstring)."""

    def __init__(self) -> None:
        self.counts = np.zeros(_N_BINS, dtype=np.int64)
        self.n = 0
        self.zeros = 0
        self.smallest = np.zeros(0, dtype=np.float64)

    @classmethod
    def of(cls, p_values: np.ndarray) -> PValueSketch:
        """A sketch of an array of p-values (NaN ignored)."""
        sketch = cls()
        sketch.add(p_values)
        return sketch

    def add(self, p_values: np.ndarray) -> None:
        """Count a chunk of p-values (NaN entries are ignored).

        Args:
            p_values: the chunk.
        """
        p = np.asarray(p_values, dtype=np.float64)
        p = p[np.isfinite(p)]
        if p.size == 0:
            return
        self.counts += np.bincount(_bin(_chi2(p)), minlength=_N_BINS)
        self.n += p.size
        positive = p[p > 0]
        self.zeros += p.size - positive.size
        if self.smallest.size == EXACT_SMALLEST:
            positive = positive[positive < self.smallest[-1]]
        kept = np.concatenate([self.smallest, positive])
        if kept.size > EXACT_SMALLEST:
            kept = np.partition(kept, EXACT_SMALLEST - 1)[:EXACT_SMALLEST]
        self.smallest = np.sort(kept)

    @property
    def min_p(self) -> float:
        """The smallest p (NaN when none was counted)."""
        if self.zeros:
            return 0.0
        return float(self.smallest[0]) if self.smallest.size else float("nan")

    def _chi2_at(self, ranks: np.ndarray) -> np.ndarray:
        """χ² at ascending-χ² ranks (0-based), interpolated inside their bins."""
        cumulative = np.cumsum(self.counts)
        bins = np.searchsorted(cumulative, ranks, side="right")
        before = np.where(bins > 0, cumulative[np.maximum(bins - 1, 0)], 0)
        lower, upper = _edges(bins)
        return lower + (upper - lower) * (ranks - before + 0.5) / self.counts[bins]

    def lambda_gc(self) -> float:
        """λGC from the bins (within the module docstring's bound of the exact median's), NaN without p-values."""
        if self.n == 0:
            return float("nan")
        middle = np.array(sorted({(self.n - 1) // 2, self.n // 2}))
        return float(np.mean(self._chi2_at(middle)) / CHI2_1DF_MEDIAN)

    def qq_points(self, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Expected and observed -log10 p of the positive p-values: the smallest 1,000 and ``max_points``
        evenly spaced ranks, smallest p first.

        Args:
            max_points: evenly spaced ranks besides the smallest.
        """
        n = self.n - self.zeros
        if n <= 0:
            return np.zeros(0), np.zeros(0)
        ranks = np.unique(np.concatenate([np.arange(min(EXACT_SMALLEST, n)),
                                          np.linspace(0, n - 1, min(max_points, n)).astype(np.int64)]))
        observed = np.empty(ranks.size)
        exact = ranks < self.smallest.size
        observed[exact] = self.smallest[ranks[exact]]
        # the r-th smallest positive p is the (n_all - 1 - zeros - r)-th smallest χ²
        chi2 = self._chi2_at((self.n - 1 - self.zeros - ranks[~exact]).astype(np.float64))
        observed[~exact] = 2.0 * special.ndtr(-np.sqrt(chi2))
        expected = -np.log10((ranks + 0.5) / n)
        return expected, -np.log10(observed)
