"""The MNI152 grids the pipeline works on, and resampling between them."""

from __future__ import annotations

import numpy as np

#: FSL's MNI152 1 mm grid: UK Biobank's ``T1_unbiased_brain_linear`` lives on it.
MNI_1MM_SHAPE: tuple[int, int, int] = (182, 218, 182)
MNI_1MM_AFFINE: np.ndarray = np.array(
    [[-1.0, 0.0, 0.0, 90.0], [0.0, 1.0, 0.0, -126.0], [0.0, 0.0, 1.0, -72.0], [0.0, 0.0, 0.0, 1.0]]
)


def block_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    """Affine of a grid whose voxels are ``factor``-cubed blocks of ``affine``'s voxels.

    Block (i, j, k) covers fine voxels ``factor*i … factor*i+factor-1``; its
    centre sits at fine coordinate ``factor*i + (factor-1)/2``.
    """
    scale = np.diag([factor, factor, factor, 1.0]).astype(float)
    scale[:3, 3] = (factor - 1) / 2.0
    return affine @ scale


def mni_grid(voxel_mm: int) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the MNI152 grid at 1 mm or an integer coarsening of it.

    Args:
        voxel_mm: 1 for the UK Biobank grid, 2 for the 91 x 109 x 91 grid of the fast demo.

    Returns:
        (shape, affine).
    """
    if voxel_mm < 1 or int(voxel_mm) != voxel_mm:
        raise ValueError(f"voxel size must be a positive integer number of mm, got {voxel_mm}")
    voxel_mm = int(voxel_mm)
    shape = tuple(s // voxel_mm for s in MNI_1MM_SHAPE)
    return shape, block_affine(MNI_1MM_AFFINE, voxel_mm)


def block_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor``-cubed blocks; trailing voxels that do not fill a block are dropped."""
    if factor == 1:
        return volume
    sx, sy, sz = (s // factor for s in volume.shape[:3])
    v = volume[: sx * factor, : sy * factor, : sz * factor]
    return v.reshape(sx, factor, sy, factor, sz, factor).mean(axis=(1, 3, 5))


def pad_offsets(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    """Leading zero-padding per axis that centres ``shape`` inside ``target`` (extra voxel at the end)."""
    if len(shape) != len(target):
        raise ValueError(f"cannot pad a {len(shape)}-D shape {shape} to {target}")
    if any(t < s for s, t in zip(shape, target)):
        raise ValueError(f"pad target {tuple(target)} is smaller than the image {tuple(shape)}")
    return tuple((t - s) // 2 for s, t in zip(shape, target))


def pad_to(volume: np.ndarray, target: tuple[int, int, int]) -> np.ndarray:
    """Zero-pad ``volume`` centred to ``target`` (182 x 218 x 182 → 182 x 224 x 182 pads 3 each side)."""
    lead = pad_offsets(volume.shape, tuple(target))
    widths = [(lo, t - s - lo) for lo, s, t in zip(lead, volume.shape, target)]
    return np.pad(volume, widths)


def unpad(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Undo :func:`pad_to`: crop the centred ``shape`` back out of a padded volume."""
    lead = pad_offsets(shape, volume.shape[-3:])
    sl = tuple(slice(lo, lo + s) for lo, s in zip(lead, shape))
    return volume[(...,) + sl]
