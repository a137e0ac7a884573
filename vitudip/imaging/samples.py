"""The user's samples table: one brain-extracted T1 image per subject."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from vitudip.config import input_table
from vitudip.io.tables import line_number


def read_samples(path: str | os.PathLike) -> pd.DataFrame:
    """Read the samples table: a TSV with a header holding ``subject_id`` and ``path``.

    Args:
        path: the table; a relative image path is taken relative to the table's folder.

    Returns:
        Frame with string ``subject_id`` and absolute ``path``, in file order.

    Raises:
        ValueError: missing or empty file, missing column, empty or duplicate subject ID, empty path.
    """
    path = Path(path)
    # The contract comes from the table's schema file, read now rather than when this module is imported.
    samples = input_table("samples").read(path, allow_empty=False)[["subject_id", "path"]]
    folder = path.parent.absolute()
    absolute = []
    for position, (subject_id, image) in enumerate(zip(samples["subject_id"], samples["path"])):
        if not image:
            raise ValueError(
                f"samples table {path} line {line_number(position)}: empty path for subject '{subject_id}'"
            )
        absolute.append(os.path.normpath(folder / Path(image).expanduser()))
    samples["path"] = absolute
    return samples
