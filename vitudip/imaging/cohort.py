"""Turn a cohort of T1 NIfTIs into one float16 cache, a brain mask, a QC table and data splits.

Reading a gzip NIfTI costs a good fraction of a second per volume; training
reads every volume hundreds of times. The cohort is therefore decompressed,
checked, z-scored and padded once into a single ``.npy`` memmap that a data
loader slices in about a millisecond. A pool of forked workers converts the
images, each writing its rows of the shared memmap in place.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from vitudip.imaging import grid
from vitudip.imaging.cache_grid import CACHE_DTYPE, CacheGrid, cache_grid
from vitudip.imaging.image import PreprocessedImage, preprocess_image
from vitudip.imaging.nifti import ImageCheckError, image_grid, load_checked_t1
from vitudip.imaging.samples import read_samples
from vitudip.imaging.settings import PreprocessSettings
from vitudip.imaging.splits import assign_splits, read_splits
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import QC, SPLITS

logger = logging.getLogger("vitudip.preprocess")

QC_COLUMNS: list[str] = ["subject_id", "path", "status", "reason", "row", "brain_voxels", "mean", "sd"]
#: Subjects per worker task: small enough to balance load, large enough to amortise IPC.
_SUBJECTS_PER_CHUNK = 4


def _on_grids(first: tuple[str, str], count: int, known: grid.StandardGrid) -> str:
    """``subject '1' (a.nii.gz) and 9 more are on fsl_2mm (FSL's ...)``.

    Args:
        first: subject ID and image path of the first image on the grid.
        count: images on the grid.
        known: the grid.
    """
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
    voxel_ml: float


class _ChunkResult(NamedTuple):
    """What a worker sends back for one chunk.

    Attributes:
        records: one QC record per subject (:data:`QC_COLUMNS`).
        packed_brain_union: :func:`numpy.packbits` of the union of the chunk's ok brain masks.
    """

    records: list[dict]
    packed_brain_union: np.ndarray


def _qc_record(row: int, subject_id: str, path: str, reason: str = "", result: PreprocessedImage | None = None) -> dict:
    """One row of the QC table: ok with the measurements when ``result`` is given, else excluded.

    Args:
        row: the subject's cache row.
        subject_id: the subject.
        path: the subject's image.
        reason: why the image was excluded.
        result: the converted image, for an ok subject.
    """
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
    """Convert a few subjects into their cache rows; runs in a worker process.

    Args:
        job: the cache and the grid the images must be on.
        subjects: (cache row, subject ID, image path) of each subject.
    """
    cache = np.load(job.cache_path, mmap_mode="r+")
    # Fortran order like nibabel's volumes and hence their masks: OR-ing same-ordered arrays is 20x faster.
    union = np.zeros(job.pad_to, dtype=bool, order="F")
    records = []
    for row, subject_id, path in subjects:
        try:
            volume = load_checked_t1(path, job.input_shape, job.input_affine)
            result = preprocess_image(volume, job.downsample, job.pad_to, job.voxel_ml)
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
    """Results of the chunks in order, from a fork pool or, for one thread, from this process.

    Args:
        job: what each worker needs.
        chunks: the subjects of each task (:func:`_convert_chunk`).
        threads: worker processes at most.
    """
    convert = partial(_convert_chunk, job)
    processes = min(threads, len(chunks))
    if processes <= 1:
        yield map(convert, chunks)
        return
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        yield pool.imap(convert, chunks)


def _on_bad_image(record: dict, policy: str) -> None:
    """Log an excluded subject, or stop at it under ``on_bad_image="fail"``.

    Args:
        record: the subject's QC record.
        policy: ``preprocess.on_bad_image``.

    Raises:
        ValueError: ``policy`` is ``"fail"``, naming the subject, image and reason.
    """
    if policy == "fail":
        raise ValueError(
            f"subject '{record['subject_id']}' ({record['path']}): {record['reason']} "
            f"(preprocess.on_bad_image is 'fail')"
        )
    logger.warning("excluded subject '%s' (%s): %s", record["subject_id"], record["path"], record["reason"])


def _convert_cohort(
    samples: pd.DataFrame, cache_path: Path, layout: CacheGrid, settings: PreprocessSettings
) -> tuple[pd.DataFrame, np.ndarray]:
    """Fill the cache rows of all subjects; return the QC table and the union of the ok brains.

    Args:
        samples: ``subject_id`` and ``path``, in cache row order.
        cache_path: the allocated ``images.npy``.
        layout: the cache's grid.
        settings: ``check_affine``, ``threads`` and ``on_bad_image``.
    """
    job = _ConversionJob(
        cache_path=cache_path,
        input_shape=layout.input_shape,
        input_affine=layout.input_affine if settings.check_affine else None,
        downsample=layout.downsample,
        pad_to=layout.pad_to,
        voxel_ml=grid.voxel_volume_ml(layout.input_affine),
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
    """The error for a cohort with no usable subject, naming the commonest reasons.

    Args:
        qc: the QC table.
        samples_path: the samples table, for the message.
    """
    reasons = qc["reason"].value_counts()
    summary = "; ".join(f"{count} x {reason}" for reason, count in reasons.head(3).items())
    return ValueError(f"none of the {len(qc)} subjects in {samples_path} passed the image checks ({summary})")


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` to ``path`` as ``.npy``, whatever the name ends with.

    Args:
        path: the file to write.
        array: what to save.
    """
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
        settings: preprocessing settings (:meth:`PreprocessSettings.from_config`), checked when they were made.

    Returns:
        The QC table.

    Raises:
        ValueError: bad tables, a ``pad_to`` smaller than the images (:func:`cache_grid`), images on more
            than one grid (:func:`cohort_grid`), a bad image under ``on_bad_image="fail"``, or no usable subject.
    """
    samples = read_samples(samples_path)
    # Read before the long conversion, so a bad splits file fails fast.
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
        splits = assign_splits(ok_ids, user_splits, settings)
        logger.info("splits: %s", ", ".join(f"{n} {name}" for name, n in splits["split"].value_counts().items()))
        layout.write(staged["cache"], len(samples))
        _save_npy(staged["brain_mask"], union)
        QC.write(qc, staged["qc"])
        SPLITS.write(splits, staged["splits"])
    return qc
