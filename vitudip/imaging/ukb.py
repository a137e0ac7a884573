"""Find UK Biobank T1 images (field 20252) in an unpacked bulk download."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

#: The brain-extracted, bias-corrected, linearly MNI-registered T1 inside each subject's folder.
T1_IN_SUBJECT_FOLDER = Path("T1") / "T1_unbiased_brain_linear.nii.gz"
T1_FIELD = 20252


def _subject_folder_pattern(instance: int) -> re.Pattern[str]:
    """``<eid>_20252_<instance>_0``: one folder per subject and imaging visit."""
    return re.compile(rf"(\d+)_{T1_FIELD}_{instance}_0")


def ukb_samples(bulk_dir: str | os.PathLike, instance: int = 2) -> pd.DataFrame:
    """List the subjects of a UK Biobank bulk folder that have a T1 image.

    Args:
        bulk_dir: folder holding the unpacked ``<eid>_20252_<instance>_0`` subject folders.
        instance: imaging visit (2: first imaging visit, 3: repeat imaging).

    Returns:
        Frame with string ``subject_id`` (the eid) and absolute ``path``, sorted by eid.
        Subject folders without the image are logged as warnings and skipped.

    Raises:
        ValueError: the folder does not exist or holds no matching image.
    """
    bulk = Path(bulk_dir).absolute()
    if not bulk.is_dir():
        raise ValueError(f"UK Biobank bulk folder {bulk} not found")
    pattern = _subject_folder_pattern(instance)
    found: list[tuple[str, str]] = []
    for folder in bulk.iterdir():
        match = pattern.fullmatch(folder.name)
        if match is None or not folder.is_dir():
            continue
        image = folder / T1_IN_SUBJECT_FOLDER
        if image.is_file():
            found.append((match.group(1), str(image)))
        else:
            logger.warning("%s has no %s; skipped", folder, T1_IN_SUBJECT_FOLDER)
    if not found:
        raise ValueError(
            f"no T1 images matching <eid>_{T1_FIELD}_{instance}_0/{T1_IN_SUBJECT_FOLDER.as_posix()} under {bulk}"
        )
    # Numeric order, so eids of different lengths still sort as numbers; the IDs stay strings.
    found.sort(key=lambda subject: (int(subject[0]), subject[0]))
    return pd.DataFrame(found, columns=["subject_id", "path"])
