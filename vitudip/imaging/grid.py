"""The MNI152 grids the pipeline works on, and resampling between them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

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


@dataclass(frozen=True)
class StandardGrid:
    """A named voxel grid in MNI152 space.

    Attributes:
        name: the ``preprocess.input_grid`` value that names it (``unchecked`` for an image's own affine).
        shape: voxels per axis.
        affine: voxel → MNI mm.
        description: what it is, for messages.
    """

    name: str
    shape: tuple[int, int, int]
    affine: np.ndarray
    description: str


#: ``preprocess.input_grid``: recognise the grid from the images' affines.
AUTO_GRID = "auto"
#: The grid name of a cache made without the affine check: its affine is the first image's own.
UNCHECKED_GRID = "unchecked"
#: Largest corner displacement (mm) at which two affines are the same grid.
GRID_TOLERANCE_MM = 1e-2

MNI152_1MM = StandardGrid("mni152_1mm", MNI_1MM_SHAPE, MNI_1MM_AFFINE,
                          "FSL's MNI152 1 mm grid, UK Biobank's (origin 90, -126, -72)")
BLOCK_2MM = StandardGrid("block_2mm", mni_grid(2)[0], mni_grid(2)[1],
                         "the 1 mm grid block-averaged by 2, the demo's (origin 89.5, -125.5, -71.5)")
# FSL's MNI152_T1_2mm: its voxel centres are every other 1 mm voxel centre, half a 1 mm voxel from the block grid's.
FSL_2MM = StandardGrid("fsl_2mm", mni_grid(2)[0],
                       np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]]),
                       "FSL's MNI152 2 mm grid, MNI152_T1_2mm's (origin 90, -126, -72)")
#: The grids ``preprocess.input_grid`` names.
STANDARD_GRIDS: dict[str, StandardGrid] = {g.name: g for g in (MNI152_1MM, BLOCK_2MM, FSL_2MM)}


def standard_grids(voxel_mm: int) -> tuple[StandardGrid, ...]:
    """The named grids of one voxel size; a coarser integer size has only the block grid (``block_<k>mm``).

    Args:
        voxel_mm: voxel size in mm (``preprocess.input_voxel_mm``).
    """
    named = tuple(g for g in STANDARD_GRIDS.values() if g.shape == mni_grid(voxel_mm)[0])
    if named:
        return named
    shape, affine = mni_grid(voxel_mm)
    return (StandardGrid(f"block_{voxel_mm}mm", shape, affine, f"the 1 mm grid block-averaged by {voxel_mm}"),)


def grid_choices(input_grid: str, voxel_mm: int) -> tuple[StandardGrid, ...]:
    """The grids a cohort may be on under ``preprocess.input_grid`` and ``preprocess.input_voxel_mm``.

    Args:
        input_grid: ``auto`` or a name in :data:`STANDARD_GRIDS`.
        voxel_mm: the input voxel size.

    Raises:
        ValueError: an unknown name, or a named grid of another voxel size.
    """
    choices = standard_grids(voxel_mm)
    if input_grid == AUTO_GRID:
        return choices
    if input_grid not in STANDARD_GRIDS:
        raise ValueError(f"preprocess.input_grid must be {AUTO_GRID} or one of {', '.join(STANDARD_GRIDS)}, "
                         f"got '{input_grid}'")
    named = STANDARD_GRIDS[input_grid]
    if named not in choices:
        raise ValueError(
            f"preprocess.input_grid {input_grid} has {'x'.join(map(str, named.shape))} voxels but "
            f"preprocess.input_voxel_mm {voxel_mm} expects {'x'.join(map(str, mni_grid(voxel_mm)[0]))}: set "
            f"input_grid to {' or '.join(g.name for g in choices)} (or {AUTO_GRID})")
    return (named,)


def voxel_volume_ml(affine: np.ndarray) -> float:
    """The volume of one voxel of a 4 x 4 voxel-to-mm affine, in mL."""
    return abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000


def corner_distance_mm(affine: np.ndarray, other: np.ndarray, shape: tuple[int, int, int]) -> float:
    """Largest distance in mm between where two affines place the corner voxels of ``shape``.

    Args:
        affine: 4 x 4 voxel-to-world affine.
        other: the 4 x 4 affine to compare with.
        shape: grid shape whose 8 corner voxels are compared.
    """
    corners = np.array(np.meshgrid(*[(0, s - 1) for s in shape], [1], indexing="ij"), dtype=float).reshape(4, -1)
    shift = (np.asarray(affine, float) - np.asarray(other, float))[:3] @ corners
    return float(np.linalg.norm(shift, axis=0).max())


def recognise_grid(shape: tuple[int, ...], affine: np.ndarray,
                   candidates: tuple[StandardGrid, ...] = tuple(STANDARD_GRIDS.values())) -> StandardGrid | None:
    """The candidate grid that ``(shape, affine)`` is (within :data:`GRID_TOLERANCE_MM`), or None.

    Args:
        shape: image shape.
        affine: image affine.
        candidates: grids to try.
    """
    for candidate in candidates:
        if tuple(shape) == candidate.shape and \
                corner_distance_mm(affine, candidate.affine, candidate.shape) <= GRID_TOLERANCE_MM:
            return candidate
    return None


def _axis_weights(n_target: int, n_source: int, scale: float, offset: float) -> sparse.csr_matrix:
    """Share of each source voxel in each target voxel along one axis (overlap of the two voxels' extents).

    Target voxel ``i`` covers source coordinates ``offset + scale * (i ± 0.5)``; source voxel ``j``
    covers ``j ± 0.5``. Source voxels outside the source grid count as 0.
    """
    i = np.arange(n_target)
    ends = offset + scale * np.stack([i - 0.5, i + 0.5])
    lo, hi = ends.min(axis=0), ends.max(axis=0)
    first = np.floor(lo + 0.5).astype(int)
    rows, cols, weights = [], [], []
    for step in range(int(np.ceil(abs(scale))) + 1):
        j = first + step
        overlap = np.minimum(hi, j + 0.5) - np.maximum(lo, j - 0.5)
        keep = (overlap > 1e-9) & (j >= 0) & (j < n_source)
        rows.append(i[keep])
        cols.append(j[keep])
        weights.append(overlap[keep] / abs(scale))
    return sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n_target, n_source))


def resample_box(volume: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int],
                 target_affine: np.ndarray) -> np.ndarray:
    """Average ``volume`` over each target voxel's extent in world space (partial voxels weighted by overlap).

    Works in mm, so grids that differ by half a voxel (FSL's 2 mm grid and the block-averaged
    1 mm grid) each get their own values; onto an integer block grid of ``affine`` it equals
    :func:`block_mean`. The grids' axes must be parallel (any voxel sizes, flips and shifts).

    Args:
        volume: 3-D source volume.
        affine: its voxel → mm affine.
        shape: target grid shape.
        target_affine: target voxel → mm affine.

    Returns:
        float32 volume of ``shape``; 0 where the target lies outside the source.

    Raises:
        ValueError: the target grid is rotated relative to the source.
    """
    to_source = np.linalg.solve(np.asarray(affine, float), np.asarray(target_affine, float))
    linear = to_source[:3, :3]
    scales = np.diag(linear)
    if not np.allclose(linear, np.diag(scales), atol=1e-6) or np.any(np.abs(scales) < 1e-6):
        raise ValueError(f"the grid with affine {np.round(target_affine, 3).tolist()} is rotated relative to "
                         f"MNI152 ({np.round(affine, 3).tolist()}): resample the images to an MNI152 grid")
    out = np.ascontiguousarray(volume, dtype=np.float32)
    for axis in range(3):
        # Resample the leading axis, then rotate it to the back: after three turns the axes are in order
        # again, with one copy per axis.
        weights = _axis_weights(int(shape[axis]), out.shape[0], scales[axis], to_source[axis, 3])
        resampled = weights.astype(np.float32) @ out.reshape(out.shape[0], -1)
        out = np.ascontiguousarray(resampled.reshape((int(shape[axis]), *out.shape[1:])).transpose(1, 2, 0))
    return out


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
