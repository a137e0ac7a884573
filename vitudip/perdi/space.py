"""From the model's padded (possibly downsampled) grid back to the input images' grid, and what lives there.

The preprocessing cache records how its volumes were made from the inputs
(``grid.json``, read by :meth:`~vitudip.imaging.cache_grid.CacheGrid.read`:
block-downsampled by an integer factor, then zero-padded, and the inputs' own
affine). A PerDI map is brought back by cropping the padding and repeating each
coarse voxel over its block, so that it overlays the input T1s voxel for voxel.
The Harvard-Oxford label map and the MNI template are resampled in mm onto that
grid, whichever MNI152 grid it is (FSL's 2 mm grid sits half a voxel from the
block-averaged 1 mm grid); the label map is cached on disk because building it
takes seconds.
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
from vitudip.imaging.atlas import harvard_oxford_names, harvard_oxford_on, load_mni_template
from vitudip.imaging.cache_grid import CacheGrid
from vitudip.io.atomic import staged_outputs

log = logging.getLogger("vitudip.perdi")

#: NIfTI xform code of MNI152 space: FSLeyes then labels the world coordinates as MNI.
NIFTI_MNI_CODE = 4


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


def atlas_labels(shape: tuple[int, int, int], affine: np.ndarray, threshold: float = 25.0,
                 cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Harvard-Oxford cortical + subcortical max-probability labels on the input grid.

    The labels come from :func:`vitudip.imaging.atlas.harvard_oxford_on`: each region's
    probability is averaged over every voxel's extent in mm before the arg-max, which keeps
    small regions that nearest-neighbour sampling of the 1 mm labels would drop or shift by
    half a voxel. The result is cached as a NIfTI named by the grid and threshold.

    Args:
        shape: input grid shape.
        affine: input grid affine.
        threshold: minimum probability (percent) for a voxel to get a label.
        cache_dir: folder of the cached label maps (None: no cache).

    Returns:
        int16 label volume (0 = none, ``k`` = ``names[k - 1]``) and the region names.

    Raises:
        ValueError: a grid rotated relative to MNI152 (the atlas cannot be placed on it).
    """
    names = harvard_oxford_names()
    if cache_dir is None:
        return harvard_oxford_on(shape, affine, threshold).labels, names
    path = atlas_cache_path(cache_dir, shape, affine, threshold)
    if path.is_file():
        cached = np.asarray(nib.load(path).dataobj, dtype=np.int16)
        if cached.shape == tuple(shape) and cached.max() <= len(names):
            log.info("Harvard-Oxford labels from the cache %s", path)
            return cached, names
        log.warning("ignoring the cached labels %s: they do not fit the grid or the atlas", path)
    labels = harvard_oxford_on(shape, affine, threshold).labels
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
    """FSL's MNI152 1 mm brain template on the input grid, averaged over each voxel's extent in mm.

    Args:
        shape: input grid shape.
        affine: input grid affine.
    """
    template, template_affine = load_mni_template()
    return grid.resample_box(template, template_affine, shape, affine)
