"""The PCA baseline: principal components of the brain voxels, in the same table format as the UDIPs.

If a deep model cannot beat a linear one on what it carries, users should see that.
The components are fitted on the training split only, by the randomised subspace iteration the mode
loss uses (:func:`vitudip.model.principal.principal_subspace`), streamed from the cache a batch of
subjects at a time: memory grows with brain voxels times components, never with subjects times voxels
(at 1 mm, 2.3 M voxels x 144 directions x 4 bytes is 1.3 GB, twice, where the data matrix of 5,000
subjects would be 46 GB).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from vitudip.data.volumes import CachedVolumes
from vitudip.io.stage_tables import passed_subjects
from vitudip.model.principal import MIN_SUBJECTS, principal_subspace

log = logging.getLogger("vitudip.embed")

#: Subjects read from the cache at a time: 32 x 2.3 M brain voxels in float32 is 0.3 GB at 1 mm.
BATCH_SUBJECTS = 32


def _brain_batches(cache_dir: str | os.PathLike, rows: np.ndarray, brain: np.ndarray,
                   mean: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """``(B, brain voxels)`` float32 batches of the cache's ``rows`` in order, minus ``mean`` when given.

    The cache's reader maps no pages, so resident memory stays a batch (a map's would grow by every subject
    read: 23 GB for 5,000 subjects at 1 mm).
    """
    volumes = CachedVolumes(cache_dir, rows)
    for start in range(0, len(rows), BATCH_SUBJECTS):
        block = np.stack([volumes.read(i)[brain] for i in range(start, min(start + BATCH_SUBJECTS, len(rows)))])
        block = block.astype(np.float32)
        if mean is not None:
            block -= mean
        yield block


def _mean_image(cache_dir: str | os.PathLike, rows: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The rows' mean brain voxels (accumulated in float64), one pass."""
    total = np.zeros(int(brain.sum()), np.float64)
    for block in tqdm(_brain_batches(cache_dir, rows, brain), desc="PCA mean", unit="batch", mininterval=10):
        total += block.sum(0, dtype=np.float64)
    return (total / len(rows)).astype(np.float32)


def embed_pca(cache_dir: str | os.PathLike, qc_path: str | os.PathLike, splits_path: str | os.PathLike,
              brain_mask_path: str | os.PathLike, splits: Sequence[str], n_components: int = 128,
              max_fit_subjects: int = 5000, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Project subjects on the leading principal components of the training split's brain voxels.

    Args:
        cache_dir, qc_path, splits_path, brain_mask_path: the preprocess stage's outputs.
        splits: which splits to embed.
        n_components: components kept (at most the number of fitted subjects - 1).
        max_fit_subjects: fit on a seeded subsample of at most this many training subjects (each costs
            five reads: the mean and four passes of the subspace iteration).
        seed: seeds that subsample and the iteration's random start.

    Returns:
        subject ids, scores ``(n, k)`` (unit variance over the fitted subjects), and each subject's
        reconstruction MSE over its brain voxels from the k components.

    Raises:
        ValueError: fewer than 3 training subjects.
    """
    brain = np.load(brain_mask_path)
    table = passed_subjects(qc_path, splits_path)
    fit_rows = table.loc[table["split"] == "train", "row"].to_numpy()
    if len(fit_rows) < MIN_SUBJECTS:
        raise ValueError(f"PCA needs at least {MIN_SUBJECTS} training subjects, found {len(fit_rows)}")
    if len(fit_rows) > max_fit_subjects:
        fit_rows = np.sort(np.random.default_rng(seed).choice(fit_rows, max_fit_subjects, replace=False))
    mean = _mean_image(cache_dir, fit_rows, brain)

    def centred() -> Iterator[torch.Tensor]:
        return (torch.from_numpy(block) for block in _brain_batches(cache_dir, fit_rows, brain, mean))

    fitted = principal_subspace(centred, n_components, seed=seed, desc="PCA fit")
    loadings = fitted.basis.numpy()
    scale = fitted.variance.sqrt().numpy()
    log.info("PCA on %d training subjects x %d brain voxels: %d components explain %.1f %% of the variance",
             len(fit_rows), int(brain.sum()), loadings.shape[1], 100 * float(fitted.shares.sum()))

    subjects = passed_subjects(qc_path, splits_path, splits)
    rows = subjects["row"].to_numpy()
    scores = np.empty((len(rows), loadings.shape[1]), np.float32)
    errors = np.empty(len(rows), np.float32)
    done = 0
    for block in tqdm(_brain_batches(cache_dir, rows, brain), desc="PCA project", unit="batch", mininterval=10):
        centred = block - mean
        proj = centred @ loadings
        scores[done:done + len(block)] = proj / scale
        residual = centred - proj @ loadings.T
        for i, (own, left) in enumerate(zip(block != 0, residual)):
            errors[done + i] = float(np.mean(left[own] ** 2)) if own.any() else np.nan
        done += len(block)
    return list(subjects["subject_id"]), scores, errors
