"""Smooth random fields for deformations and bias fields."""

from __future__ import annotations

import numpy as np


def _cubic_bspline(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    out = np.where(t < 1, 2 / 3 - t**2 + t**3 / 2, 0.0)
    return np.where((t >= 1) & (t < 2), (2 - t) ** 3 / 6, out)


def bspline_basis(n: int, spacing: float) -> np.ndarray:
    """(n, m) matrix that evaluates a cubic B-spline with control points every ``spacing`` voxels.

    Args:
        n: voxels along the axis.
        spacing: control-point spacing in voxels (>= 1).
    """
    m = int(np.ceil((n - 1) / spacing)) + 3
    pos = np.arange(n)[:, None] / spacing + 1.0
    return _cubic_bspline(pos - np.arange(m)[None, :]).astype(np.float32)


class SmoothFieldSampler:
    """Draws zero-mean, unit-SD smooth random fields on a fixed 3-D grid.

    A field is a cubic B-spline over random control points, evaluated as three
    small matrix products (separable), so a field costs far less than one
    interpolation of the volume.

    Args:
        shape: grid shape.
        spacing: control-point spacing in voxels: larger is smoother.
    """

    def __init__(self, shape: tuple[int, int, int], spacing: float) -> None:
        self.shape = tuple(shape)
        self.bases = [bspline_basis(n, max(spacing, 1.0)) for n in shape]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One field, float32, scaled to unit SD over the grid."""
        bx, by, bz = self.bases
        control = rng.standard_normal((bx.shape[1], by.shape[1], bz.shape[1])).astype(np.float32)
        field = np.einsum("ia,abc->ibc", bx, control)
        field = np.einsum("jb,ibc->ijc", by, field)
        field = np.einsum("kc,ijc->ijk", bz, field)
        field -= field.mean()
        return field / max(float(field.std()), 1e-12)
