"""How much of the simulated truth an embedding carries (demo only)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from vitudip.io.stage_tables import TRUTH_LOCI, TRUTH_MEASURES, read_udips, udip_matrix

log = logging.getLogger("vitudip.embed")


def cross_validated_r2(features: np.ndarray, target: np.ndarray, folds: int = 5, ridge: float = 1.0,
                       seed: int = 0) -> float:
    """Out-of-fold R² of a ridge regression of ``target`` on standardised ``features``.

    Args:
        features: ``(n, d)``.
        target: ``(n,)``.
        folds: cross-validation folds.
        ridge: penalty on the standardised coefficients (keeps 128 dimensions on ~1,000 subjects stable).
        seed: seeds the fold assignment.
    """
    n = len(target)
    fold = np.random.default_rng(seed).permutation(n) % folds
    predicted = np.empty(n)
    for f in range(folds):
        train, test = fold != f, fold == f
        mu, sd = features[train].mean(0), features[train].std(0)
        sd[sd == 0] = 1.0
        x = (features[train] - mu) / sd
        y0 = target[train].mean()
        coef = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (target[train] - y0))
        predicted[test] = y0 + ((features[test] - mu) / sd) @ coef
    return float(1 - np.sum((target - predicted) ** 2) / np.sum((target - target.mean()) ** 2))


def embedding_vs_truth(measures_path: str | os.PathLike, truth_loci_path: str | os.PathLike,
                       embeddings: dict[str, str | os.PathLike]) -> pd.DataFrame:
    """For each planted measure and embedding: the best single dimension's |r| and the cross-validated R².

    Args:
        measures_path: ``demo/truth/measures.tsv``.
        truth_loci_path: ``demo/truth/loci.tsv`` (names the planted measures).
        embeddings: method name -> UDIP table.

    Returns:
        ``measure, method, n, max_abs_r, best_dimension, cv_r2``.
    """
    measures = TRUTH_MEASURES.read(measures_path)
    planted = list(TRUTH_LOCI.read(truth_loci_path)["effect"])
    # the whole-brain and ventricle volumes too, unless a planted measure already is one of them
    names = planted + [c for c in ("ventricle_volume_ml", "brain_volume_ml")
                       if not any(np.allclose(measures[c], measures[p]) for p in planted)]
    rows = []
    for method, path in embeddings.items():
        udips = read_udips(path)
        joined = udips.merge(measures, left_on="IID", right_on="subject_id", how="inner")
        features = udip_matrix(joined)
        centred = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1.0)
        for name in names:
            y = joined[name].to_numpy(float)
            if np.unique(y).size < 2:
                rows.append({"measure": name, "method": method, "n": len(y), "max_abs_r": np.nan,
                             "best_dimension": "", "cv_r2": np.nan})
                continue
            r = centred.T @ ((y - y.mean()) / y.std()) / len(y)
            best = int(np.argmax(np.abs(r)))
            rows.append({"measure": name, "method": method, "n": len(y), "max_abs_r": float(abs(r[best])),
                         "best_dimension": udips.columns[2 + best], "cv_r2": cross_validated_r2(features, y)})
    table = pd.DataFrame(rows)
    for row in table.itertuples():
        log.info("%s carried by %s: best dimension %s |r| %.3f, cross-validated R² %.3f (n %d)",
                 row.measure, row.method, row.best_dimension or "-", row.max_abs_r, row.cv_r2, row.n)
    return table
