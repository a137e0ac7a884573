"""Turn a cohort of T1 NIfTIs into one float16 cache, a brain mask, a QC table and data splits.

Reading a gzip NIfTI costs a good fraction of a second per volume; training
reads every volume hundreds of times. The cohort is therefore decompressed,
checked, z-scored and padded once into a single ``.npy`` memmap that a data
loader slices in about a millisecond.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from vitudip.config import input_table
from vitudip.imaging import grid
from vitudip.imaging.nifti import ImageCheckError, image_grid, load_checked_t1
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import QC, SPLIT_NAMES, SPLITS
from vitudip.io.tables import Table, line_number

logger = logging.getLogger("vitudip.preprocess")

QC_COLUMNS: list[str] = ["subject_id", "path", "status", "reason", "row", "brain_voxels", "mean", "sd"]
CACHE_DTYPE = np.float16
#: Subjects per worker task: small enough to balance load, large enough to amortise IPC.
_SUBJECTS_PER_CHUNK = 4


@dataclass
class PreprocessSettings:
    """How :func:`preprocess_cohort` reads, normalises, caches and splits the images.

    Attributes:
        input_voxel_mm: voxel size of the input MNI grid (1 for UK Biobank, 2 for the demo grid).
        input_grid: ``auto`` (recognise the grid of that voxel size from the images' affines) or a
            name in :data:`~vitudip.imaging.grid.STANDARD_GRIDS` (``fsl_2mm``, ``block_2mm``, ``mni152_1mm``).
        check_affine: refuse images whose affine is not the input grid's.
        downsample: integer block-averaging factor applied after the z-score (1: none).
        pad_to: shape the (downsampled) volume is zero-padded to, centred.
        on_bad_image: ``"exclude"`` records a bad image in the QC table; ``"fail"`` stops at the first.
        split_fractions: train, validation and test fractions of the subjects that pass QC.
        splits_file: TSV (subject_id, split) that replaces the random split when given.
        seed: seed of the random split.
        threads: worker processes converting images.
    """

    input_voxel_mm: int
    input_grid: str
    check_affine: bool
    downsample: int
    pad_to: tuple[int, int, int]
    on_bad_image: str
    split_fractions: tuple[float, float, float]
    splits_file: str | os.PathLike | None
    seed: int
    threads: int

    #: The config keys the settings come from (the preprocess script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("preprocess", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], threads: int) -> PreprocessSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
            threads: worker processes converting images.
        """
        section, splits = config["preprocess"], config["preprocess"]["splits"]
        return cls(
            input_voxel_mm=section["input_voxel_mm"],
            input_grid=section["input_grid"],
            check_affine=section["check_affine"],
            downsample=section["downsample"],
            pad_to=tuple(section["pad_to"]),
            on_bad_image=section["on_bad_image"],
            split_fractions=(splits["train"], splits["val"], splits["test"]),
            splits_file=splits["file"],
            seed=config["seed"],
            threads=threads,
        )


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


#: The file beside ``images.npy`` that says how the cache maps back to the input grid.
GRID_FILE = "grid.json"
_GRID_FIELDS = ("input_shape", "input_affine", "downsample", "coarse_shape", "coarse_affine", "pad_to", "pad_offsets")


@dataclass(frozen=True)
class CacheGrid:
    """How a cache row maps back to the input grid: downsampled by blocks, then padded.

    Attributes:
        input_grid: name of the input images' grid (:data:`~vitudip.imaging.grid.STANDARD_GRIDS`, or
            ``unchecked`` when the affine was not checked).
        input_shape: the input images' shape.
        input_affine: the input images' own affine (voxel → MNI mm).
        downsample: block-averaging factor.
        coarse_shape: shape after the block averaging.
        coarse_affine: affine after the block averaging.
        pad_to: the cache volumes' shape.
        pad_offsets: leading zero-padding per axis.
    """

    input_grid: str
    input_shape: tuple[int, int, int]
    input_affine: np.ndarray
    downsample: int
    coarse_shape: tuple[int, int, int]
    coarse_affine: np.ndarray
    pad_to: tuple[int, int, int]
    pad_offsets: tuple[int, int, int]

    def cache_affine(self) -> np.ndarray:
        """Affine of the padded cache grid: the coarse grid shifted by the leading padding."""
        shift = np.eye(4)
        shift[:3, 3] = -np.asarray(self.pad_offsets, dtype=float)
        return self.coarse_affine @ shift

    def to_json(self) -> dict:
        """The grid as a JSON-ready record (what ``grid.json`` and the trained model hold)."""
        return {
            "input_grid": self.input_grid,
            "input_shape": list(self.input_shape),
            "input_affine": self.input_affine.tolist(),
            "downsample": self.downsample,
            "coarse_shape": list(self.coarse_shape),
            "coarse_affine": self.coarse_affine.tolist(),
            "pad_to": list(self.pad_to),
            "pad_offsets": list(self.pad_offsets),
            "cache_affine": self.cache_affine().tolist(),
        }

    def write(self, cache_dir: str | os.PathLike, n_rows: int) -> Path:
        """Write ``cache_dir/grid.json`` for a cache of ``n_rows`` rows; read it back with :meth:`read`.

        Args:
            cache_dir: the cache folder.
            n_rows: rows of ``images.npy``.

        Returns:
            The file written.
        """
        path = Path(cache_dir) / GRID_FILE
        record = {**self.to_json(), "dtype": np.dtype(CACHE_DTYPE).name, "n_rows": n_rows}
        path.write_text(json.dumps(record, indent=2))
        return path

    @classmethod
    def from_json(cls, record: dict, source: str) -> CacheGrid:
        """The grid of a :meth:`to_json` record.

        A record written before grids were named has no ``input_grid``: its affine was then always
        a standard grid's, which names it.

        Args:
            record: the parsed record.
            source: where it came from, for messages (a file).

        Raises:
            ValueError: a missing or malformed field, naming ``source``.
        """
        try:
            values = {name: record[name] for name in _GRID_FIELDS}
            input_affine = np.asarray(values["input_affine"], dtype=float)
            coarse_affine = np.asarray(values["coarse_affine"], dtype=float)
            if input_affine.shape != (4, 4) or coarse_affine.shape != (4, 4):
                raise ValueError("an affine is not 4 x 4")
            input_shape = tuple(int(n) for n in values["input_shape"])
            name = record.get("input_grid")
            if name is None:
                known = grid.recognise_grid(input_shape, input_affine)
                name = known.name if known is not None else grid.UNCHECKED_GRID
            return cls(
                input_grid=str(name),
                input_shape=input_shape,
                input_affine=input_affine,
                downsample=int(values["downsample"]),
                coarse_shape=tuple(int(n) for n in values["coarse_shape"]),
                coarse_affine=coarse_affine,
                pad_to=tuple(int(n) for n in values["pad_to"]),
                pad_offsets=tuple(int(n) for n in values["pad_offsets"]),
            )
        except KeyError as err:
            raise ValueError(f"{source} lacks the field {err}: rerun the preprocess stage") from None
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source} is not a cache grid description ({err}): rerun the preprocess stage") from None

    @classmethod
    def read(cls, cache_dir: str | os.PathLike) -> CacheGrid:
        """The grid the preprocess stage wrote beside its cache (``cache_dir/grid.json``, by :meth:`write`).

        Args:
            cache_dir: the cache folder.

        Raises:
            FileNotFoundError: no ``grid.json``.
            ValueError: it is not JSON or lacks a field, naming the file.
        """
        path = Path(cache_dir) / GRID_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the preprocessing cache describes its grid there "
                                    "(rerun the preprocess stage)")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}): rerun the preprocess stage") from None
        return cls.from_json(record, str(path))


# ---------------------------------------------------------------------------
# Tables


#: The user's samples table (``inputs.samples``): one T1 image per subject.
SAMPLES = input_table("samples")
#: A user's fixed split (``preprocess.splits.file``), the same contract as the stage's own splits table.
SPLITS_FILE = Table("splits file", required=SPLITS.required, text=SPLITS.text, unique="subject_id")


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
    samples = SAMPLES.read(path, allow_empty=False)[["subject_id", "path"]]
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


# ---------------------------------------------------------------------------
# Splits


def check_split_fractions(fractions: Sequence[float]) -> None:
    """Refuse split fractions that are not three non-negative numbers summing to 1."""
    values = np.asarray(fractions, dtype=float)
    if values.shape != (3,) or not np.isfinite(values).all() or (values < 0).any() or abs(values.sum() - 1) > 1e-6:
        raise ValueError(
            f"preprocess.split_fractions must be three non-negative fractions (train, val, test) "
            f"summing to 1, got {tuple(fractions)}"
        )


def split_counts(n_subjects: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Subjects per split: each within one of its exact share, always summing to ``n_subjects``.

    Args:
        n_subjects: subjects to share out.
        fractions: train, val and test fractions (checked by :func:`check_split_fractions`).

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
        fractions: train, val and test fractions.
        seed: seed of the shuffle; the same IDs, fractions and seed give the same split.

    Returns:
        Frame with ``subject_id`` (in input order) and ``split``.
    """
    check_split_fractions(fractions)
    ids = list(subject_ids)
    labels = np.repeat(np.array(SPLIT_NAMES, dtype=object), split_counts(len(ids), fractions))
    assigned = np.empty(len(ids), dtype=object)
    assigned[np.random.default_rng(seed).permutation(len(ids))] = labels
    return pd.DataFrame({"subject_id": ids, "split": assigned})


def _user_splits(subject_ids: Sequence[str], splits: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    """Take the split of each subject from a user's table, which must list every one of them."""
    lookup = dict(zip(splits["subject_id"], splits["split"]))
    missing = [subject_id for subject_id in subject_ids if subject_id not in lookup]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ValueError(f"subject '{missing[0]}'{more} passed the image checks but is missing from splits file {path}")
    return pd.DataFrame({"subject_id": list(subject_ids), "split": [lookup[s] for s in subject_ids]})


# ---------------------------------------------------------------------------
# One image


def _zscore_brain(volume: np.ndarray, brain: np.ndarray, brain_voxels: int) -> tuple[np.ndarray, float, float]:
    """Z-score the brain voxels with their own mean and SD; the background stays exactly 0.

    Whole-volume passes with the background zeroed are several times faster than
    gathering the brain voxels with a boolean index.
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
    """Block-average the image; a coarse voxel is brain when more than half of its block is."""
    coarse_brain = grid.block_mean(brain.astype(np.float32), factor) > 0.5
    coarse = grid.block_mean(image, factor).astype(np.float32, copy=False)
    np.copyto(coarse, 0, where=~coarse_brain)
    return coarse, coarse_brain


#: A brain-extracted image on the MNI grid has about a quarter of its voxels non-zero (the FSL template's
#: brain: 25 %); one whose background was kept (noise, scalp, neck) has nearly all of them.
MAX_BRAIN_FRACTION = 0.5


def preprocess_image(volume: np.ndarray, downsample: int, pad_to: Sequence[int]) -> PreprocessedImage:
    """Z-score a brain-extracted volume, optionally downsample it, and zero-pad it centred.

    Args:
        volume: 3-D brain-extracted T1; its non-zero voxels are the brain.
        downsample: block-averaging factor (1: none).
        pad_to: final shape, at least the (downsampled) volume's shape on every axis.

    Returns:
        The float16 image, its brain mask, the brain voxel count, and the mean and SD used.

    Raises:
        ImageCheckError: an empty brain, a brain of constant intensity, or an image that is not
            brain-extracted (more than ``MAX_BRAIN_FRACTION`` of its voxels non-zero).
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
    image, mean, sd = _zscore_brain(volume, brain, brain_voxels)
    if downsample > 1:
        image, brain = _block_downsample(image, brain, downsample)
    target = tuple(int(s) for s in pad_to)
    # Cast first, then reorder: casting while transposing a Fortran-ordered nibabel volume is 2x slower.
    padded = grid.pad_to(np.ascontiguousarray(image.astype(CACHE_DTYPE)), target)
    # The mask keeps the input's memory order: it is only OR-ed into a union of the same order.
    mask = grid.pad_to(brain, target)
    return PreprocessedImage(padded, mask, brain_voxels, mean, sd)


# ---------------------------------------------------------------------------
# The cohort


def check_settings(settings: PreprocessSettings) -> None:
    """Refuse settings that cannot work and that the config schema does not check, naming the key."""
    if int(settings.threads) != settings.threads or settings.threads < 1:
        raise ValueError(f"preprocess.threads must be a positive integer, got {settings.threads}")
    grid.grid_choices(settings.input_grid, settings.input_voxel_mm)
    # the schema checks each fraction; their sum is checked here for callers without a config
    check_split_fractions(settings.split_fractions)


def cache_grid(input_grid: grid.StandardGrid, downsample: int, pad_to: Sequence[int]) -> CacheGrid:
    """The grids a cache goes through: input grid, block-downsampled grid, padded grid.

    Args:
        input_grid: the input images' grid.
        downsample: block-averaging factor.
        pad_to: the padded shape.

    Returns:
        The cache's grid description.

    Raises:
        ValueError: ``pad_to`` smaller than the downsampled grid.
    """
    factor = int(downsample)
    coarse_shape = tuple(s // factor for s in input_grid.shape)
    target = tuple(int(p) for p in pad_to)
    if any(p < c for p, c in zip(target, coarse_shape)):
        raise ValueError(
            f"preprocess.pad_to {target} is smaller than the image grid {coarse_shape} "
            f"({input_grid.name} grid downsampled by {factor})"
        )
    return CacheGrid(
        input_grid=input_grid.name,
        input_shape=input_grid.shape,
        input_affine=np.asarray(input_grid.affine, dtype=float),
        downsample=factor,
        coarse_shape=coarse_shape,
        coarse_affine=grid.block_affine(input_grid.affine, factor),
        pad_to=target,
        pad_offsets=grid.pad_offsets(coarse_shape, target),
    )


def _on_grids(first: tuple[str, str], count: int, known: grid.StandardGrid) -> str:
    """``subject '1' (a.nii.gz) and 9 more are on fsl_2mm (FSL's ...)``."""
    more = f" and {count - 1} more" if count > 1 else ""
    verb = "are" if count > 1 else "is"
    return f"subject '{first[0]}' ({first[1]}){more} {verb} on {known.name} ({known.description})"


def cohort_grid(samples: pd.DataFrame, settings: PreprocessSettings) -> grid.StandardGrid:
    """The one grid all the cohort's images are on, from their headers (the data stays compressed).

    With the affine check, each image's affine is matched to the standard grids of its shape;
    an image that is unreadable, of another shape or on no standard grid is left to the
    conversion, which excludes it with its reason. Without the check, the grid is the first
    readable image's own.

    Args:
        samples: ``subject_id`` and ``path`` (:func:`read_samples`).
        settings: ``input_voxel_mm``, ``input_grid`` and ``check_affine``.

    Returns:
        The grid; the first allowed one when no image was recognised (then every image is excluded).

    Raises:
        ValueError: images on two grids (naming a subject and file on each), or on a grid other than
            the one ``preprocess.input_grid`` names.
    """
    choices = grid.grid_choices(settings.input_grid, settings.input_voxel_mm)
    # The other standard grids too, so that an image on one of them is named, not just refused.
    known_grids = {g.name: g for g in (*choices, *grid.STANDARD_GRIDS.values())}
    shape = choices[0].shape
    started = time.perf_counter()
    first: dict[str, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    for subject_id, path in zip(samples["subject_id"], samples["path"]):
        try:
            image_shape, affine = image_grid(path)
        except ImageCheckError:
            continue
        if image_shape != shape:
            continue
        known = grid.recognise_grid(image_shape, affine, tuple(known_grids.values()))
        if not settings.check_affine:
            return known or grid.StandardGrid(grid.UNCHECKED_GRID, shape, affine,
                                              f"the affine of subject '{subject_id}' ({path}), not checked")
        if known is not None:
            first.setdefault(known.name, (subject_id, path))
            counts[known.name] = counts.get(known.name, 0) + 1
    logger.info("read %d image headers in %.1f s: %s", len(samples), time.perf_counter() - started,
                ", ".join(f"{n} on {name}" for name, n in counts.items()) or "none on a standard grid")
    if len(counts) > 1:
        (major, _), (minor, _) = sorted(counts.items(), key=lambda item: -item[1])[:2]
        on = [_on_grids(first[name], counts[name], known_grids[name]) for name in (minor, major)]
        raise ValueError(
            f"the images of {len(samples)} subjects are on more than one grid: {on[0]}, but {on[1]}; one cohort "
            f"must share one grid: resample the odd ones onto the other (e.g. flirt -in <image> -ref <an image on "
            f"{major}> -applyxfm -usesqform -out <image>) or drop them from the samples table")
    if not counts:
        return choices[0]
    (name,) = counts
    if name not in {choice.name for choice in choices}:
        raise ValueError(
            f"preprocess.input_grid is {settings.input_grid}, but "
            f"{_on_grids(first[name], counts[name], known_grids[name])}: set preprocess.input_grid to "
            f"{name} (or {grid.AUTO_GRID})")
    return known_grids[name]


@dataclass(frozen=True)
class _ConversionJob:
    """What a worker needs to turn image files into cache rows."""

    cache_path: Path
    input_shape: tuple[int, int, int]
    input_affine: np.ndarray | None
    downsample: int
    pad_to: tuple[int, int, int]


class _ChunkResult(NamedTuple):
    records: list[dict]
    packed_brain_union: np.ndarray


def _qc_record(row: int, subject_id: str, path: str, reason: str = "", result: PreprocessedImage | None = None) -> dict:
    measured = result is not None
    return {
        "subject_id": subject_id,
        "path": path,
        "status": "ok" if measured else "excluded",
        "reason": reason,
        "row": row,
        "brain_voxels": result.brain_voxels if measured else None,
        "mean": result.mean if measured else None,
        "sd": result.sd if measured else None,
    }


def _convert_chunk(job: _ConversionJob, subjects: Sequence[tuple[int, str, str]]) -> _ChunkResult:
    """Convert a few subjects into their cache rows; runs in a worker process."""
    cache = np.load(job.cache_path, mmap_mode="r+")
    # Fortran order like nibabel's volumes and hence their masks: OR-ing same-ordered arrays is 20x faster.
    union = np.zeros(job.pad_to, dtype=bool, order="F")
    records = []
    for row, subject_id, path in subjects:
        try:
            volume = load_checked_t1(path, job.input_shape, job.input_affine)
            result = preprocess_image(volume, job.downsample, job.pad_to)
        except ImageCheckError as err:
            records.append(_qc_record(row, subject_id, path, reason=err.reason))
            continue
        # A shared mapping: the parent sees the row without a flush (msync would only add disk waits).
        cache[row] = result.image
        union |= result.brain_mask
        records.append(_qc_record(row, subject_id, path, result=result))
    # Packed bits are 8x smaller to send back than a bool volume.
    return _ChunkResult(records, np.packbits(union))


@contextlib.contextmanager
def _chunk_results(
    job: _ConversionJob, chunks: list[list[tuple[int, str, str]]], threads: int
) -> Iterator[Iterator[_ChunkResult]]:
    """Results of the chunks in order, from a fork pool or, for one thread, from this process."""
    convert = partial(_convert_chunk, job)
    processes = min(threads, len(chunks))
    if processes <= 1:
        yield map(convert, chunks)
        return
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        yield pool.imap(convert, chunks)


def _on_bad_image(record: dict, policy: str) -> None:
    if policy == "fail":
        raise ValueError(
            f"subject '{record['subject_id']}' ({record['path']}): {record['reason']} "
            f"(preprocess.on_bad_image is 'fail')"
        )
    logger.warning("excluded subject '%s' (%s): %s", record["subject_id"], record["path"], record["reason"])


def _convert_cohort(
    samples: pd.DataFrame, cache_path: Path, layout: CacheGrid, settings: PreprocessSettings
) -> tuple[pd.DataFrame, np.ndarray]:
    """Fill the cache rows of all subjects; return the QC table and the union of the ok brains."""
    job = _ConversionJob(
        cache_path=cache_path,
        input_shape=layout.input_shape,
        input_affine=layout.input_affine if settings.check_affine else None,
        downsample=layout.downsample,
        pad_to=layout.pad_to,
    )
    subjects = list(zip(range(len(samples)), samples["subject_id"], samples["path"]))
    per_chunk = max(1, min(_SUBJECTS_PER_CHUNK, math.ceil(len(subjects) / settings.threads)))
    chunks = [subjects[i : i + per_chunk] for i in range(0, len(subjects), per_chunk)]
    union = np.zeros(layout.pad_to, dtype=bool)
    records: list[dict] = []
    started = time.perf_counter()
    with (
        _chunk_results(job, chunks, settings.threads) as results,
        logging_redirect_tqdm(),
        tqdm(total=len(subjects), desc="preprocess", unit="img", file=sys.stderr) as progress,
    ):
        for result in results:
            for record in result.records:
                if record["status"] != "ok":
                    _on_bad_image(record, settings.on_bad_image)
            union |= np.unpackbits(result.packed_brain_union, count=union.size).reshape(union.shape).astype(bool)
            records.extend(result.records)
            progress.update(len(result.records))
    seconds = time.perf_counter() - started
    qc = pd.DataFrame.from_records(records, columns=QC_COLUMNS).astype({"brain_voxels": "Int64"})
    n_ok = int(qc["status"].eq("ok").sum())
    logger.info(
        "converted %d images in %.1f s (%.2f images/s, %d process(es)): %d ok, %d excluded",
        len(qc), seconds, len(qc) / max(seconds, 1e-9), min(settings.threads, len(chunks)), n_ok, len(qc) - n_ok,
    )
    return qc, union


def _no_subject_passed(qc: pd.DataFrame, samples_path: str | os.PathLike) -> ValueError:
    reasons = qc["reason"].value_counts()
    summary = "; ".join(f"{count} x {reason}" for reason, count in reasons.head(3).items())
    return ValueError(f"none of the {len(qc)} subjects in {samples_path} passed the image checks ({summary})")


def _save_npy(path: Path, array: np.ndarray) -> None:
    # Through a handle: np.save would append ".npy" to a path named otherwise.
    with open(path, "wb") as handle:
        np.save(handle, array)


def preprocess_cohort(
    samples_path: str | os.PathLike,
    qc_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    brain_mask_path: str | os.PathLike,
    splits_path: str | os.PathLike,
    settings: PreprocessSettings,
) -> pd.DataFrame:
    """Check, z-score and cache every subject's T1, and write the QC table, brain mask and splits.

    Outputs, all moved into place together only when everything succeeded:

    - ``cache_dir/images.npy``: float16 ``(n_subjects, *pad_to)``; row i is the i-th subject of the
      samples table, all zeros when excluded. ``cache_dir/grid.json`` maps it back to the input grid
      (:meth:`CacheGrid.read`), whose affine is the images' own.
    - ``qc_path``: TSV with :data:`QC_COLUMNS`.
    - ``brain_mask_path``: ``.npy`` bool ``pad_to``, the union of the ok subjects' brains.
    - ``splits_path``: TSV (subject_id, split) over the ok subjects, in samples order.

    Args:
        samples_path: TSV with ``subject_id`` and ``path`` (see :func:`read_samples`).
        qc_path: QC table to write.
        cache_dir: folder to write the cache into (replaced as a whole).
        brain_mask_path: union brain mask to write.
        splits_path: split table to write.
        settings: preprocessing settings (:meth:`PreprocessSettings.from_config`).

    Returns:
        The QC table.

    Raises:
        ValueError: bad settings or tables, images on more than one grid (:func:`cohort_grid`), a bad
            image under ``on_bad_image="fail"``, or no usable subject.
    """
    check_settings(settings)
    samples = read_samples(samples_path)
    user_splits = read_splits(settings.splits_file) if settings.splits_file is not None else None
    layout = cache_grid(cohort_grid(samples, settings), settings.downsample, settings.pad_to)
    logger.info(
        "%d subjects from %s: %s grid (%s), downsample %d, padded to %s, %d process(es)",
        len(samples), samples_path, layout.input_grid, "x".join(map(str, layout.input_shape)), layout.downsample,
        "x".join(map(str, layout.pad_to)), settings.threads,
    )
    targets = {"qc": qc_path, "cache": cache_dir, "brain_mask": brain_mask_path, "splits": splits_path}
    with staged_outputs(targets) as staged:
        staged["cache"].mkdir()
        cache_path = staged["cache"] / "images.npy"
        # Allocated once (sparse, all zeros) so workers write rows in place and excluded rows stay zero.
        np.lib.format.open_memmap(cache_path, mode="w+", dtype=CACHE_DTYPE, shape=(len(samples), *layout.pad_to))
        qc, union = _convert_cohort(samples, cache_path, layout, settings)
        ok_ids = qc.loc[qc["status"].eq("ok"), "subject_id"].tolist()
        if not ok_ids:
            raise _no_subject_passed(qc, samples_path)
        if user_splits is None:
            splits = random_splits(ok_ids, settings.split_fractions, settings.seed)
        else:
            splits = _user_splits(ok_ids, user_splits, settings.splits_file)
        logger.info("splits: %s", ", ".join(f"{n} {name}" for name, n in splits["split"].value_counts().items()))
        layout.write(staged["cache"], len(samples))
        _save_npy(staged["brain_mask"], union)
        QC.write(qc, staged["qc"])
        SPLITS.write(splits, staged["splits"])
    return qc
