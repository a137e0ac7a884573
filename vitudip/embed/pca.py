"""The PCA baseline: principal components of the brain voxels, in the same table format as the UDIPs.

If a deep model cannot beat a linear one on what it carries, users should see that.
The components are fitted on the training split only, through the subjects' Gram
matrix (n x n), so memory grows with subjects, not with voxels squared.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from vitudip.data.volumes import CachedVolumes
from vitudip.io.stage_tables import passed_subjects

log = logging.getLogger("vitudip.embed")


def _brain_rows(volumes: CachedVolumes, brain: np.ndarray, desc: str) -> np.ndarray:
    """(n, brain voxels) float32 matrix of the served rows, read one subject at a time."""
    out = np.empty((len(volumes), int(brain.sum())), np.float32)
    for i in tqdm(range(len(volumes)), desc=desc, unit="subject", mininterval=10):
        out[i] = volumes.images[volumes.rows[i]][brain]
    return out


def embed_pca(cache_dir: str | os.PathLike, qc_path: str | os.PathLike, splits_path: str | os.PathLike,
              brain_mask_path: str | os.PathLike, splits: Sequence[str], n_components: int = 128,
              max_fit_subjects: int = 5000, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Project subjects on the leading principal components of the training split's brain voxels.

    Args:
        cache_dir, qc_path, splits_path, brain_mask_path: the preprocess stage's outputs.
        splits: which splits to embed.
        n_components: components kept (at most the number of fitted subjects - 1).
        max_fit_subjects: fit on a seeded subsample of at most this many training subjects.
        seed: seeds that subsample.

    Returns:
        subject ids, scores ``(n, k)`` (unit variance over the fitted subjects), and each subject's
        reconstruction MSE over its brain voxels from the k components.
    """
    brain = np.load(brain_mask_path)
    table = passed_subjects(qc_path, splits_path)
    fit_rows = table.loc[table["split"] == "train", "row"].to_numpy()
    if len(fit_rows) < 3:
        raise ValueError(f"PCA needs at least 3 training subjects, found {len(fit_rows)}")
    if len(fit_rows) > max_fit_subjects:
        fit_rows = np.sort(np.random.default_rng(seed).choice(fit_rows, max_fit_subjects, replace=False))
    fit = _brain_rows(CachedVolumes(cache_dir, fit_rows), brain, "PCA fit")
    mean = fit.mean(0)
    fit -= mean
    gram = fit.astype(np.float64) @ fit.T.astype(np.float64)
    eigval, eigvec = np.linalg.eigh(gram)
    k = min(n_components, len(fit_rows) - 1)
    order = np.argsort(eigval)[::-1][:k]
    eigval, eigvec = eigval[order], eigvec[:, order]
    # voxel loadings with unit norm: V = X' U / sqrt(lambda)
    loadings = (fit.T @ eigvec.astype(np.float32)) / np.sqrt(eigval).astype(np.float32)
    scale = np.sqrt(eigval / (len(fit_rows) - 1)).astype(np.float32)
    del fit
    log.info("PCA on %d training subjects x %d brain voxels: %d components explain %.1f %% of the variance",
             len(fit_rows), int(brain.sum()), k, 100 * eigval.sum() / np.trace(gram))

    subjects = passed_subjects(qc_path, splits_path, splits)
    volumes = CachedVolumes(cache_dir, subjects["row"].to_numpy())
    scores = np.empty((len(volumes), k), np.float32)
    errors = np.empty(len(volumes), np.float32)
    for i in tqdm(range(len(volumes)), desc="PCA project", unit="subject", mininterval=10):
        image = volumes.images[volumes.rows[i]]
        x = image[brain].astype(np.float32) - mean
        proj = x @ loadings
        scores[i] = proj / scale
        own = image[brain] != 0
        errors[i] = float(np.mean((x - loadings @ proj)[own] ** 2)) if own.any() else np.nan
    return list(subjects["subject_id"]), scores, errors
