"""Train, validation and test splits: a seeded random split, or a user's splits file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.imaging.settings import PreprocessSettings
from vitudip.io.stage_tables import SPLIT_NAMES, SPLITS
from vitudip.io.tables import Table, line_number

#: A user's fixed split (``preprocess.splits.file``), the same contract as the stage's own splits table.
SPLITS_FILE = Table("splits file", required=SPLITS.required, text=SPLITS.text, unique="subject_id")


def read_splits(path: str | os.PathLike) -> pd.DataFrame:
    """Read a user-given split table: a TSV with ``subject_id`` and ``split`` (train, val or test).

    Args:
        path: the table.

    Returns:
        Frame with string ``subject_id`` and ``split``.

    Raises:
        ValueError: missing or empty file, missing column, empty or duplicate ID, unknown split name.
    """
    path = Path(path)
    splits = SPLITS_FILE.read(path, allow_empty=False)[["subject_id", "split"]]
    unknown = np.flatnonzero(~splits["split"].isin(SPLIT_NAMES).to_numpy())
    if unknown.size:
        position = unknown[0]
        raise ValueError(
            f"splits file {path} line {line_number(position)}: unknown split '{splits['split'].iloc[position]}' "
            f"for subject '{splits['subject_id'].iloc[position]}' (use {', '.join(SPLIT_NAMES)})"
        )
    return splits


def split_counts(n_subjects: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Subjects per split: each within one of its exact share, always summing to ``n_subjects``.

    Args:
        n_subjects: subjects to share out.
        fractions: train, val and test fractions (checked by :class:`~vitudip.imaging.settings.PreprocessSettings`).

    Returns:
        (train, val, test) counts.
    """
    exact = n_subjects * np.asarray(fractions, dtype=float)
    counts = np.floor(exact).astype(int)
    # Largest remainders get the subjects that flooring left over; ties go to the earlier split.
    leftover = n_subjects - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:leftover]] += 1
    return tuple(int(c) for c in counts)


def random_splits(subject_ids: Sequence[str], fractions: Sequence[float], seed: int) -> pd.DataFrame:
    """Assign subjects to train/val/test by a seeded shuffle.

    Args:
        subject_ids: subjects in output order.
        fractions: train, val and test fractions (checked by :class:`~vitudip.imaging.settings.PreprocessSettings`).
        seed: seed of the shuffle; the same IDs, fractions and seed give the same split.

    Returns:
        Frame with ``subject_id`` (in input order) and ``split``.
    """
    ids = list(subject_ids)
    labels = np.repeat(np.array(SPLIT_NAMES, dtype=object), split_counts(len(ids), fractions))
    assigned = np.empty(len(ids), dtype=object)
    assigned[np.random.default_rng(seed).permutation(len(ids))] = labels
    return pd.DataFrame({"subject_id": ids, "split": assigned})


def _user_splits(subject_ids: Sequence[str], splits: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    """Take the split of each subject from a user's table, which must list every one of them.

    Args:
        subject_ids: the subjects, in output order.
        splits: the user's table (:func:`read_splits`).
        path: the table's file, for messages.

    Raises:
        ValueError: a subject the table does not list.
    """
    lookup = dict(zip(splits["subject_id"], splits["split"]))
    missing = [subject_id for subject_id in subject_ids if subject_id not in lookup]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ValueError(f"subject '{missing[0]}'{more} passed the image checks but is missing from splits file {path}")
    return pd.DataFrame({"subject_id": list(subject_ids), "split": [lookup[s] for s in subject_ids]})


def assign_splits(subject_ids: Sequence[str], user_splits: pd.DataFrame | None,
                  settings: PreprocessSettings) -> pd.DataFrame:
    """The split of each subject: the user's splits file when one was given, else the seeded random split.

    Args:
        subject_ids: the subjects that passed the image checks, in output order.
        user_splits: the splits file's table (:func:`read_splits`), or None for the random split.
        settings: ``split_fractions``, ``seed`` and ``splits_file`` (named in messages).

    Returns:
        Frame with ``subject_id`` (in input order) and ``split``.

    Raises:
        ValueError: a subject the splits file does not list.
    """
    if user_splits is None:
        return random_splits(subject_ids, settings.split_fractions, settings.seed)
    return _user_splits(subject_ids, user_splits, settings.splits_file)
