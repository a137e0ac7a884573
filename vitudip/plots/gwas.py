"""GWAS figures: QQ plots of every dimension."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vitudip.genetics.pvalue_sketch import PValueSketch  # noqa: E402


def plot_qq(sketches: dict[str, PValueSketch], lambdas: dict[str, float], path: str | os.PathLike,
            max_points: int = 20000) -> None:
    """Observed vs expected -log10 p for every dimension on one axis, the most inflated labelled.

    Args:
        sketches: dimension -> its p-values' sketch (:meth:`PValueSketch.of` for an array).
        lambdas: dimension -> λGC.
        path: PNG to write.
        max_points: points kept per dimension (the smallest 1,000 p-values are always kept).
    """
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = 0.0
    for sketch in sketches.values():
        expected, observed = sketch.qq_points(max_points)
        if expected.size == 0:
            continue
        ax.plot(expected, observed, ".", ms=2, alpha=0.4)
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
