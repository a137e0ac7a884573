"""Voxel-wise paired t statistics accumulated batch by batch, never holding every subject's volume."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("vitudip.perdi")


class PairedDifferenceStats:
    """Running mean and sum of squared deviations of paired differences, for several maps at once.

    Batches are merged with Chan et al.'s pairwise update rather than by summing
    raw squares: a decoder's perturbation effect is consistent across subjects
    (|t| in the hundreds), and ``sum(d**2) - n * mean**2`` would cancel away most
    float32 digits of the variance.

    Args:
        n_maps: maps accumulated side by side (one per perturbed dimension).
        n_voxels: voxels per map.
        device: where the accumulators live.
    """

    def __init__(self, n_maps: int, n_voxels: int, device: torch.device | str = "cpu") -> None:
        self.mean = torch.zeros(n_maps, n_voxels, dtype=torch.float32, device=device)
        self.m2 = torch.zeros_like(self.mean)
        self.count = torch.zeros(n_maps, dtype=torch.float64)

    def update(self, maps: slice, differences: torch.Tensor) -> None:
        """Merge one batch of subjects into some of the maps.

        Args:
            maps: which maps the batch belongs to (``len`` = ``differences.shape[0]``).
            differences: ``(n_maps_in_slice, batch, n_voxels)`` perturbed minus original.
        """
        batch_mean = differences.mean(dim=1)
        batch_m2 = (differences - batch_mean[:, None]).square_().sum(dim=1)
        n_a = self.count[maps]
        n_b = differences.shape[1]
        n = n_a + n_b
        weight = (n_b / n).to(self.mean)[:, None]
        cross = (n_a * n_b / n).to(self.mean)[:, None]
        delta = batch_mean - self.mean[maps]
        self.mean[maps] += delta * weight
        self.m2[maps] += batch_m2 + delta.square_() * cross
        self.count[maps] = n

    def t(self) -> torch.Tensor:
        """Paired t of every voxel of every map, ``(n_maps, n_voxels)`` float32; see :func:`paired_t`."""
        if (self.count < 2).any():
            raise ValueError(f"a paired t-test needs at least 2 subjects, got {int(self.count.min())}")
        return paired_t(self.mean, self.m2, self.count.to(self.mean)[:, None])


def paired_t(mean: torch.Tensor, m2: torch.Tensor, n: torch.Tensor | float) -> torch.Tensor:
    """Paired t from the mean and the sum of squared deviations of the differences.

    ``t = mean / sqrt(m2 / (n - 1) / n)``, as ``scipy.stats.ttest_rel``. Where the
    differences do not vary, ``0/0`` (no change at all) gives 0; a constant
    non-zero change (``t = ±inf``) gives the map's largest finite ``|t|`` (at least 1)
    with its sign, so that maps stay finite for smoothing and such voxels still rank first.

    Args:
        mean: ``(n_maps, n_voxels)`` mean differences.
        m2: same shape, sums of squared deviations from the mean.
        n: subjects per map, broadcastable against ``mean``.

    Returns:
        ``(n_maps, n_voxels)`` float32.
    """
    se = (m2.clamp_min(0) / ((n - 1) * n)).sqrt()
    t = torch.where(se > 0, mean / se, torch.zeros_like(mean))
    constant = (se == 0) & (mean != 0)
    if constant.any():
        finite_max = torch.where(constant, 0.0, t.abs()).amax(dim=1, keepdim=True)
        t = torch.where(constant, mean.sign() * finite_max.clamp_min(1.0), t)
        log.warning("%d voxel(s) change by the same amount in every subject; their t is set to the map's "
                    "largest finite |t|", int(constant.sum()))
    return t
