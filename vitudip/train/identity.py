"""What a training run learns from, recorded in its checkpoints so that a rerun resumes only into the same run.

Settings alone do not say whether a checkpoint belongs to this run: after a cohort change (a subject added
back, one excluded, the images preprocessed again) the settings are the same but the model of the old split
is not the model of the new one. The identity is cheap to compute at UK Biobank's size (no image is read):
the training and validation subjects in cache order, each one's QC row (its cache row and the image
statistics the preprocess stage measured, which change when its image does), the cache's volume shape,
type and grid, and the brain mask that fixes the tokens.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd

from vitudip.io.stage_tables import read_qc

#: QC columns left out of the identity: where an image was read from says nothing about its content.
_QC_COLUMNS_NOT_COMPARED = ("path",)
#: Subject IDs quoted when a split changed.
_EXAMPLES = 3


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def training_data_identity(subjects: pd.DataFrame, qc_path: str | os.PathLike, images: np.ndarray,
                           grid: dict, brain_mask_path: str | os.PathLike) -> dict:
    """The identity of the data a run trains and validates on.

    Args:
        subjects: the QC-passed subjects with ``subject_id``, ``split`` and ``row``, in cache order.
        qc_path: ``preprocess/qc.tsv`` (its rows of the training and validation subjects are hashed).
        images: the cache's image array (memory-mapped; only its shape and type are read).
        grid: the cache's grid record (``grid.json``).
        brain_mask_path: the union brain mask (hashed whole: a few MB).

    Returns:
        a JSON-ready record: ``train_subjects`` and ``val_subjects`` (IDs in cache order), ``subject_qc``,
        ``cache`` and ``brain_mask`` (SHA-256 digests of their content).
    """
    used = subjects[subjects["split"].isin(["train", "val"])]
    qc = read_qc(qc_path).set_index("subject_id")
    rows = qc.loc[used["subject_id"]].drop(columns=[c for c in _QC_COLUMNS_NOT_COMPARED if c in qc.columns])
    cache = {"volume_shape": list(images.shape[1:]), "dtype": str(images.dtype), "grid": grid}
    mask = np.load(brain_mask_path)
    return {
        "train_subjects": used.loc[used["split"] == "train", "subject_id"].tolist(),
        "val_subjects": used.loc[used["split"] == "val", "subject_id"].tolist(),
        "subject_qc": _sha256(rows.sort_index(axis=1).to_csv(sep="\t").encode()),
        "cache": _sha256(json.dumps(cache, sort_keys=True).encode()),
        "brain_mask": _sha256(repr((mask.shape, str(mask.dtype))).encode() + mask.tobytes()),
    }


def _split_change(name: str, old: list[str], new: list[str]) -> str:
    added = [s for s in new if s not in set(old)]
    removed = [s for s in old if s not in set(new)]
    if not added and not removed:
        return f"the {name} subjects are the same {len(new)} in another cache order"
    parts = [f"{len(items)} {what}" + (f" (e.g. {', '.join(items[:_EXAMPLES])})" if items else "")
             for what, items in (("added", added), ("removed", removed))]
    return f"{name} subjects {len(old)} -> {len(new)}: {'; '.join(parts)}"


def identity_differences(saved: dict | None, current: dict) -> list[str]:
    """How the data a checkpoint was trained on differs from this run's, in words (empty: the same).

    Args:
        saved: the checkpoint's :func:`training_data_identity` (None: a checkpoint that records none).
        current: this run's.
    """
    if saved is None:
        return ["it does not record the data it was trained on (written by an older version)"]
    diff = [_split_change(name, saved[f"{name}_subjects"], current[f"{name}_subjects"])
            for name in ("train", "val") if saved[f"{name}_subjects"] != current[f"{name}_subjects"]]
    if not diff and saved["subject_qc"] != current["subject_qc"]:
        diff.append("the QC rows of the same subjects differ (cache rows or image statistics): the images were "
                    "preprocessed again")
    if saved["cache"] != current["cache"]:
        diff.append("the cache's volume shape, type or grid differs")
    if saved["brain_mask"] != current["brain_mask"]:
        diff.append("the brain mask differs")
    return diff
