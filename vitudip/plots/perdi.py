"""PerDI figures: a map's orthogonal slices through its peak over the MNI template, one dimension or many."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

#: Voxels below this fraction of the map's largest |t| are left transparent.
OVERLAY_FRACTION = 0.25
_VIEWS = ("sagittal", "coronal", "axial")


@dataclass(frozen=True)
class PeakSlices:
    """Sagittal, coronal and axial slices of a map and its background through the map's peak |value|.

    Attributes:
        maps: the three map slices, each ``(horizontal, vertical)`` in RAS order.
        backgrounds: the matching background slices.
        peak_mm: the peak's world (MNI) coordinate.
        limit: the map's largest |value| (the colour scale is ±limit).
    """

    maps: tuple[np.ndarray, np.ndarray, np.ndarray]
    backgrounds: tuple[np.ndarray, np.ndarray, np.ndarray]
    peak_mm: tuple[float, float, float]
    limit: float


def canonical(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a volume to RAS so that slices display in neurological convention (left on the left)."""
    image = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(volume), affine))
    return np.asarray(image.dataobj), image.affine


def peak_slices(stat: np.ndarray, background: np.ndarray, affine: np.ndarray) -> PeakSlices:
    """Slices through the largest |value| of a RAS map (the background's centre when the map is all 0).

    Args:
        stat: RAS map, e.g. from :func:`canonical`.
        background: RAS background of the same shape (the template).
        affine: their (RAS) affine.
    """
    magnitude = np.abs(stat)
    if magnitude.max() > 0:
        peak = np.unravel_index(np.argmax(magnitude), stat.shape)
    else:
        peak = tuple(int(c) for c in np.argwhere(background > 0).mean(axis=0).round())
    x, y, z = peak
    maps = (stat[x], stat[:, y], stat[:, :, z])
    backgrounds = (background[x], background[:, y], background[:, :, z])
    world = affine @ np.array([*peak, 1.0])
    return PeakSlices(maps, backgrounds, tuple(float(v) for v in world[:3]), float(magnitude.max()))


def _draw(axes: Sequence[plt.Axes], slices: PeakSlices) -> matplotlib.image.AxesImage:
    """Draw the three views on ``axes``; returns the last overlay (for a colour bar)."""
    limit = slices.limit or 1.0
    overlay = None
    for ax, view, stat, background, coordinate in zip(axes, _VIEWS, slices.maps, slices.backgrounds,
                                                      ("x", "y", "z")):
        brain = background[background > 0]
        top = np.percentile(brain, 99) if brain.size else 1.0
        ax.imshow(background.T, origin="lower", cmap="gray", vmin=0, vmax=top)
        shown = np.ma.masked_where(np.abs(stat) < OVERLAY_FRACTION * limit, stat)
        overlay = ax.imshow(shown.T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
        value = slices.peak_mm[_VIEWS.index(view)]
        ax.set_title(f"{view} {coordinate}={value:.0f} mm", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].text(0.02, 0.02, "L", transform=axes[1].transAxes, color="white", fontsize=8)
    axes[1].text(0.94, 0.02, "R", transform=axes[1].transAxes, color="white", fontsize=8)
    return overlay


def plot_perdi_panel(slices: PeakSlices, path: str | os.PathLike, title: str, lines: Sequence[str] = (),
                     label: str = "smoothed paired t") -> None:
    """One dimension's signed map through its peak, with its top regions written below.

    Args:
        slices: from :func:`peak_slices`.
        path: PNG to write.
        title: figure title (the dimension).
        lines: text lines under the slices (the top regions).
        label: what the map is (the colour bar's label).
    """
    fig, axes = plt.subplots(1, 3, figsize=(10, 4.2))
    overlay = _draw(axes, slices)
    fig.colorbar(overlay, ax=list(axes), shrink=0.8, label=label)
    fig.suptitle(title)
    if lines:
        fig.text(0.02, 0.02, "\n".join(lines), fontsize=8, va="bottom", family="monospace")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_perdi_overview(rows: Sequence[tuple[str, PeakSlices]], path: str | os.PathLike, title: str) -> None:
    """Several dimensions, one row each (three views through each map's own peak).

    Args:
        rows: (row label, slices) per dimension; none gives a figure that says so.
        path: PNG to write.
        title: figure title.
    """
    if not rows:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no dimension to show", ha="center", va="center")
        fig.suptitle(title)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.6 * len(rows)), squeeze=False)
    for row_axes, (label, slices) in zip(axes, rows):
        overlay = _draw(row_axes, slices)
        fig.colorbar(overlay, ax=list(row_axes), shrink=0.8)
        row_axes[0].set_ylabel(label, fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)
