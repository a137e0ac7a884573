"""GWAS figures: QQ plots of every dimension."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_qq(p_values: dict[str, np.ndarray], lambdas: dict[str, float], path: str | os.PathLike,
            max_points: int = 20000) -> None:
    """Observed vs expected -log10 p for every dimension on one axis, the most inflated labelled.

    Args:
        p_values: dimension -> p-values.
        lambdas: dimension -> λGC.
        path: PNG to write.
        max_points: points kept per dimension (the smallest p-values are always kept).
    """
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = 0.0
    for p in p_values.values():
        p = np.sort(p[np.isfinite(p) & (p > 0)])
        if p.size == 0:
            continue
        expected = -np.log10((np.arange(1, p.size + 1) - 0.5) / p.size)
        observed = -np.log10(p)
        keep = np.unique(np.concatenate([np.arange(min(1000, p.size)),
                                         np.linspace(0, p.size - 1, min(max_points, p.size)).astype(int)]))
        ax.plot(expected[keep], observed[keep], ".", ms=2, alpha=0.4)
        top = max(top, expected[0], observed[0])
    ax.plot([0, top], [0, top], "k--", lw=1)
    if lambdas:
        values = np.array(list(lambdas.values()))
        worst = max(lambdas, key=lambdas.get)
        ax.set_title(f"{len(lambdas)} dimensions: λGC median {np.median(values):.3f}, max {values.max():.3f} ({worst})",
                     fontsize=9)
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
