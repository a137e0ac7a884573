"""One subject's volume made into a cache row: z-scored over the brain, block-downsampled, padded."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from vitudip.imaging import grid
from vitudip.imaging.cache_grid import CACHE_DTYPE
from vitudip.imaging.nifti import ImageCheckError


class PreprocessedImage(NamedTuple):
    """One subject's cache row and what was measured on the way.

    Attributes:
        image: float16 volume of shape ``pad_to``; z-scored brain, exact zeros elsewhere.
        brain_mask: bool volume of shape ``pad_to``.
        brain_voxels: non-zero voxels of the input volume.
        mean: mean of the input's brain voxels used for the z-score.
        sd: standard deviation of the input's brain voxels used for the z-score.
    """

    image: np.ndarray
    brain_mask: np.ndarray
    brain_voxels: int
    mean: float
    sd: float


def _zscore_brain(volume: np.ndarray, brain: np.ndarray, brain_voxels: int) -> tuple[np.ndarray, float, float]:
    """Z-score the brain voxels with their own mean and SD; the background stays exactly 0.

    Whole-volume passes with the background zeroed are several times faster than
    gathering the brain voxels with a boolean index.

    Args:
        volume: float32 brain-extracted volume.
        brain: its non-zero voxels.
        brain_voxels: how many there are.

    Returns:
        The float32 z-scored image, and the mean and SD used.

    Raises:
        ImageCheckError: the brain's intensity is constant.
    """
    # The background is 0, so the sum over the volume is the sum over the brain.
    mean = float(volume.sum(dtype=np.float64)) / brain_voxels
    image = np.subtract(volume, np.float32(mean), dtype=np.float32)
    # The subtraction moved the background to -mean; put it back to 0 (not -0).
    np.copyto(image, 0, where=~brain)
    sd = math.sqrt(float(np.square(image).sum(dtype=np.float64)) / brain_voxels)
    if sd == 0:
        raise ImageCheckError("constant brain intensity (SD 0)")
    image *= np.float32(1.0 / sd)
    return image, mean, sd


def _block_downsample(image: np.ndarray, brain: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-average the image; a coarse voxel is brain when more than half of its block is.

    Args:
        image: the z-scored image, 0 outside the brain.
        brain: its brain mask.
        factor: block edge in voxels.

    Returns:
        The float32 coarse image, 0 outside the coarse brain, and the coarse brain mask.
    """
    coarse_brain = grid.block_mean(brain.astype(np.float32), factor) > 0.5
    coarse = grid.block_mean(image, factor).astype(np.float32, copy=False)
    np.copyto(coarse, 0, where=~coarse_brain)
    return coarse, coarse_brain


#: A brain-extracted image on the MNI grid has about a quarter of its voxels non-zero (the FSL template's
#: brain: 25 %); one whose background was kept (noise, scalp, neck) has nearly all of them.
MAX_BRAIN_FRACTION = 0.5
#: A head whose background is 0 but whose skull or scalp was kept (a shell around the brain) passes the fraction
#: check; its volume does not. FSL's MNI152 brain is 1,830 mL and linear registration scales every brain to it
#: (within about 15 %); a thick skull-and-scalp shell makes it 1.5-2x that. A thin shell stays below: not caught.
MAX_BRAIN_ML = 2700.0


def preprocess_image(volume: np.ndarray, downsample: int, pad_to: Sequence[int], voxel_ml: float) -> PreprocessedImage:
    """Z-score a brain-extracted volume, optionally downsample it, and zero-pad it centred.

    Args:
        volume: 3-D brain-extracted T1; its non-zero voxels are the brain.
        downsample: block-averaging factor (1: none).
        pad_to: final shape, at least the (downsampled) volume's shape on every axis.
        voxel_ml: the volume of one input voxel in mL.

    Returns:
        The float16 image, its brain mask, the brain voxel count, and the mean and SD used.

    Raises:
        ImageCheckError: an empty brain, a brain of constant intensity, or an image that is not
            brain-extracted (more than ``MAX_BRAIN_FRACTION`` of its voxels, or more than ``MAX_BRAIN_ML`` of
            volume, non-zero).
    """
    volume = np.asarray(volume, dtype=np.float32)
    brain = volume != 0
    brain_voxels = int(np.count_nonzero(brain))
    if brain_voxels == 0:
        raise ImageCheckError("empty brain (all voxels zero)")
    if brain_voxels > MAX_BRAIN_FRACTION * brain.size:
        raise ImageCheckError(
            f"not brain-extracted: {100 * brain_voxels / brain.size:.0f} % of the voxels are non-zero (a "
            f"brain-extracted MNI image has about 25 %); use the skull-stripped T1 (UK Biobank: "
            f"T1_brain_to_MNI / T1_unbiased_brain_linear), whose background is 0")
    if brain_voxels * voxel_ml > MAX_BRAIN_ML:
        raise ImageCheckError(
            f"not brain-extracted: {brain_voxels * voxel_ml:,.0f} mL of non-zero voxels, more than any brain "
            f"registered to MNI152 (at most {MAX_BRAIN_ML:,.0f} mL; the template's is 1,830 mL): is the skull or "
            f"scalp still around it? Use the skull-stripped T1, whose background is 0 up to the brain")
    image, mean, sd = _zscore_brain(volume, brain, brain_voxels)
    if downsample > 1:
        image, brain = _block_downsample(image, brain, downsample)
    target = tuple(int(s) for s in pad_to)
    # Cast first, then reorder: casting while transposing a Fortran-ordered nibabel volume is 2x slower.
    padded = grid.pad_to(np.ascontiguousarray(image.astype(CACHE_DTYPE)), target)
    # The mask keeps the input's memory order: it is only OR-ed into a union of the same order.
    mask = grid.pad_to(brain, target)
    return PreprocessedImage(padded, mask, brain_voxels, mean, sd)
