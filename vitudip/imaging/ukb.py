"""Find UK Biobank T1 images (field 20252) in an unpacked bulk download."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

#: The folder inside each subject's folder that holds the T1 images.
T1_FOLDER = "T1"
#: The brain-extracted, bias-corrected, linearly MNI-registered T1: the image the published model used.
DEFAULT_T1_IMAGE = "T1_unbiased_brain_linear.nii.gz"
T1_FIELD = 20252


def _subject_folder_pattern(instance: int) -> re.Pattern[str]:
    """``<eid>_20252_<instance>_0``: one folder per subject and imaging visit."""
    return re.compile(rf"(\d+)_{T1_FIELD}_{instance}_0")


def checked_image_name(image: str) -> str:
    """Check that ``image`` names a NIfTI file directly inside the subject's T1 folder.

    Args:
        image: file name such as ``T1_brain_to_MNI.nii.gz``.

    Returns:
        ``image`` unchanged.

    Raises:
        ValueError: the name holds a path separator, or is not a file name ending in .nii or .nii.gz.
    """
    # Backslash too, so a Windows-style path is not taken for an odd file name on Linux.
    separators = {"/", "\\", os.sep, *([os.altsep] if os.altsep else [])}
    if any(separator in image for separator in separators):
        raise ValueError(
            f"T1 image name {image!r} holds a path separator: give a file name inside each "
            f"subject's {T1_FOLDER}/ folder, such as {DEFAULT_T1_IMAGE}"
        )
    stem = image.removesuffix(".gz").removesuffix(".nii")
    if not image.endswith((".nii", ".nii.gz")) or not stem:
        raise ValueError(
            f"T1 image name {image!r} is not a NIfTI file name ending in .nii or .nii.gz, "
            f"such as {DEFAULT_T1_IMAGE}"
        )
    return image


def ukb_samples(bulk_dir: str | os.PathLike, instance: int = 2, image: str = DEFAULT_T1_IMAGE) -> pd.DataFrame:
    """List the subjects of a UK Biobank bulk folder that have the chosen T1 image.

    Args:
        bulk_dir: folder holding the unpacked ``<eid>_20252_<instance>_0`` subject folders.
        instance: imaging visit (2: first imaging visit, 3: repeat imaging).
        image: file name of the image inside each subject's ``T1`` folder (default the
            brain-extracted, bias-corrected, linearly registered ``T1_unbiased_brain_linear.nii.gz``;
            ``T1_brain_to_MNI.nii.gz`` is the non-linearly registered one).

    Returns:
        Frame with string ``subject_id`` (the eid) and absolute ``path``, sorted by eid.
        Subject folders without the image are logged as warnings and skipped.

    Raises:
        ValueError: ``image`` is not a NIfTI file name, the folder does not exist, or it holds no matching image.
    """
    in_subject_folder = Path(T1_FOLDER) / checked_image_name(image)
    bulk = Path(bulk_dir).absolute()
    if not bulk.is_dir():
        raise ValueError(f"UK Biobank bulk folder {bulk} not found")
    pattern = _subject_folder_pattern(instance)
    found: list[tuple[str, str]] = []
    for folder in bulk.iterdir():
        match = pattern.fullmatch(folder.name)
        if match is None or not folder.is_dir():
            continue
        path = folder / in_subject_folder
        if path.is_file():
            found.append((match.group(1), str(path)))
        else:
            logger.warning("%s has no %s; skipped", folder, in_subject_folder.as_posix())
    if not found:
        raise ValueError(
            f"no T1 images matching <eid>_{T1_FIELD}_{instance}_0/{in_subject_folder.as_posix()} under {bulk}"
        )
    # Numeric order, so eids of different lengths still sort as numbers; the IDs stay strings.
    found.sort(key=lambda subject: (int(subject[0]), subject[0]))
    logger.info("found %s in %d subject folders of %s", in_subject_folder.as_posix(), len(found), bulk)
    return pd.DataFrame(found, columns=["subject_id", "path"])
