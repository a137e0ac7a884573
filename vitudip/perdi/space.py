"""From the model's padded (possibly downsampled) grid back to the input images' grid, and what lives there.

The preprocessing cache records how its volumes were made from the inputs
(``grid.json``: block-downsampled by an integer factor, then zero-padded). A
PerDI map is brought back by cropping the padding and repeating each coarse
voxel over its block, so that it overlays the input T1s (and the MNI template)
voxel for voxel. The Harvard-Oxford label map and the template are built on the
same grid; the label map is cached on disk because building it takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from vitudip.imaging import grid
from vitudip.imaging.atlas import harvard_oxford, harvard_oxford_names, load_mni_template
from vitudip.imaging.preprocess import CacheGrid
from vitudip.io.atomic import staged_outputs

log = logging.getLogger("vitudip.perdi")

#: NIfTI xform code of MNI152 space: FSLeyes then labels the world coordinates as MNI.
NIFTI_MNI_CODE = 4


def read_cache_grid(cache_dir: str | os.PathLike) -> CacheGrid:
    """The grid description the preprocess stage wrote beside the cache (``grid.json``).

    Raises:
        FileNotFoundError: no ``grid.json``.
        ValueError: it lacks a field.
    """
    path = Path(cache_dir) / "grid.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the preprocessing cache describes its grid there")
    record = json.loads(path.read_text())
    try:
        return CacheGrid(
            input_shape=tuple(record["input_shape"]),
            input_affine=np.asarray(record["input_affine"], dtype=float),
            downsample=int(record["downsample"]),
            coarse_shape=tuple(record["coarse_shape"]),
            coarse_affine=np.asarray(record["coarse_affine"], dtype=float),
            pad_to=tuple(record["pad_to"]),
            pad_offsets=tuple(record["pad_offsets"]),
        )
    except KeyError as err:
        raise ValueError(f"{path} lacks the field {err}: rerun the preprocess stage") from None


def to_input_grid(volume: np.ndarray, layout: CacheGrid) -> np.ndarray:
    """Undo the cache's padding and block downsampling.

    Each coarse voxel is repeated over the ``downsample``-cubed block it averaged;
    input voxels that no whole block covered (the remainder of an axis not divisible
    by the factor, dropped by the downsampling) are 0.

    Args:
        volume: ``(*pad_to)`` on the cache grid.
        layout: the cache's grid description.

    Returns:
        ``(*input_shape)`` on the input grid, the dtype of ``volume``.
    """
    if tuple(volume.shape) != tuple(layout.pad_to):
        raise ValueError(f"volume of shape {tuple(volume.shape)} is not on the cache grid {tuple(layout.pad_to)}")
    coarse = grid.unpad(volume, layout.coarse_shape)
    fine = coarse
    for axis in range(3):
        fine = np.repeat(fine, layout.downsample, axis=axis)
    out = np.zeros(layout.input_shape, dtype=volume.dtype)
    out[tuple(slice(0, s) for s in fine.shape)] = fine
    return out


def smooth_in_brain(volume: np.ndarray, brain: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth a map (``sigma`` in voxels of its grid) and zero it outside the brain.

    The map is zeroed outside the brain before smoothing (no background leaks in) and
    after (nothing leaks out).

    Args:
        volume: ``(X, Y, Z)`` map.
        brain: bool ``(X, Y, Z)``.
        sigma: Gaussian SD in voxels; 0 leaves the map unsmoothed.

    Returns:
        float32 ``(X, Y, Z)``.
    """
    masked = np.multiply(volume, brain, dtype=np.float32)
    if sigma > 0:
        masked = ndimage.gaussian_filter(masked, sigma, mode="constant")
    masked *= brain
    return masked


def save_map(volume: np.ndarray, affine: np.ndarray, path: str | os.PathLike, description: str = "") -> None:
    """Write a float32 NIfTI whose qform and sform are ``affine`` in MNI152 space.

    Args:
        volume: ``(X, Y, Z)`` map on the input grid.
        affine: the input grid's voxel → MNI mm affine.
        path: ``.nii.gz`` to write.
        description: header ``descrip`` (at most 80 characters are kept).
    """
    image = nib.Nifti1Image(np.asarray(volume, dtype=np.float32), affine)
    image.set_qform(affine, code=NIFTI_MNI_CODE)
    image.set_sform(affine, code=NIFTI_MNI_CODE)
    image.header["descrip"] = description[:79].encode()
    nib.save(image, path)


def mni_voxel_size(shape: tuple[int, int, int], affine: np.ndarray) -> int:
    """The integer voxel size (mm) at which ``(shape, affine)`` is the MNI152 grid.

    Raises:
        ValueError: the grid is no MNI152 grid of the pipeline (the atlas would not fit).
    """
    voxel_mm = int(round(abs(float(affine[0, 0]))))
    if voxel_mm >= 1:
        expected_shape, expected_affine = grid.mni_grid(voxel_mm)
        if tuple(shape) == expected_shape and np.allclose(affine, expected_affine, atol=1e-3):
            return voxel_mm
    raise ValueError(f"the input grid {tuple(shape)} with affine {np.round(affine, 3).tolist()} is not the "
                     "MNI152 grid at an integer voxel size: the Harvard-Oxford atlas cannot be placed on it")


def atlas_labels(shape: tuple[int, int, int], affine: np.ndarray, threshold: float = 25.0,
                 cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Harvard-Oxford cortical + subcortical max-probability labels on the input grid.

    The labels come from :func:`vitudip.imaging.atlas.harvard_oxford` at the grid's
    voxel size: at 1 mm the atlas's own grid; on a coarser MNI grid each region's
    probability is block-averaged before the arg-max, which keeps small regions
    that nearest-neighbour sampling of the 1 mm labels would drop or shift by half
    a voxel. The result is cached as a NIfTI named by the grid and threshold.

    Args:
        shape: input grid shape.
        affine: input grid affine.
        threshold: minimum probability (percent) for a voxel to get a label.
        cache_dir: folder of the cached label maps (None: no cache).

    Returns:
        int16 label volume (0 = none, ``k`` = ``names[k - 1]``) and the region names.
    """
    names = harvard_oxford_names()
    voxel_mm = mni_voxel_size(shape, affine)
    if cache_dir is None:
        return harvard_oxford(voxel_mm, threshold).labels, names
    path = atlas_cache_path(cache_dir, shape, affine, threshold)
    if path.is_file():
        cached = np.asarray(nib.load(path).dataobj, dtype=np.int16)
        if cached.shape == tuple(shape) and cached.max() <= len(names):
            log.info("Harvard-Oxford labels from the cache %s", path)
            return cached, names
        log.warning("ignoring the cached labels %s: they do not fit the grid or the atlas", path)
    labels = harvard_oxford(voxel_mm, threshold).labels
    with staged_outputs({"labels": path}) as staged:
        image = nib.Nifti1Image(labels.astype(np.int16), affine)
        image.set_qform(affine, code=NIFTI_MNI_CODE)
        image.set_sform(affine, code=NIFTI_MNI_CODE)
        nib.save(image, staged["labels"])
    log.info("Harvard-Oxford labels (threshold %g%%) cached in %s", threshold, path)
    return labels, names


def atlas_cache_path(cache_dir: str | os.PathLike, shape: tuple[int, int, int], affine: np.ndarray,
                     threshold: float) -> Path:
    """Where :func:`atlas_labels` caches the label map of one grid and threshold."""
    key = json.dumps([[int(s) for s in shape], np.round(affine, 6).tolist(), float(threshold)])
    return Path(cache_dir) / f"harvard_oxford_{hashlib.sha1(key.encode()).hexdigest()[:12]}.nii.gz"


def template_on_grid(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """FSL's MNI152 1 mm brain template on the input grid (block mean on a coarser MNI grid)."""
    template, _ = load_mni_template()
    return grid.block_mean(template, mni_voxel_size(shape, affine))
