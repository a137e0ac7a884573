"""Heritability figure: h² ± SE of every dimension, and the genetic correlations beside the phenotypic ones."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_heritability(table: pd.DataFrame, rg: np.ndarray, phenotypic_r: np.ndarray, path: str | os.PathLike) -> None:
    """Top: h² with ±1 SE of each dimension, one series per embedding. Bottom: the first embedding's genetic
    correlations (grey where a genetic variance is not positive) beside its phenotypic correlations.

    Args:
        table: ``heritability.tsv`` (embedding, dimension, h2, se).
        rg: (d, d) genetic correlations of the first embedding's dimensions.
        phenotypic_r: (d, d) correlations of its covariate-adjusted dimensions.
        path: PNG to write.
    """
    fig = plt.figure(figsize=(12, 10))
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.4])
    bars = fig.add_subplot(grid[0, :])
    embeddings = list(dict.fromkeys(table["embedding"]))
    for offset, embedding in enumerate(embeddings):
        rows = table[table["embedding"] == embedding].reset_index(drop=True)
        x = np.arange(len(rows)) + 0.3 * (offset - (len(embeddings) - 1) / 2)
        bars.errorbar(x, rows["h2"], yerr=rows["se"], fmt="o", ms=3, lw=0.8, capsize=0,
                      label=f"{embedding}: mean h² {rows['h2'].mean():.3f}")
    bars.axhline(0, color="grey", lw=0.8)
    bars.set_xlabel("dimension")
    bars.set_ylabel("SNP heritability h² (± 1 SE)")
    bars.legend(fontsize=8)
    first = embeddings[0]
    for column, (values, title) in enumerate([(rg, f"genetic correlation r_g ({first})"),
                                              (phenotypic_r, f"phenotypic correlation ({first}, covariate-adjusted)")]):
        ax = fig.add_subplot(grid[1, column])
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
        image = ax.imshow(np.clip(values, -1, 1), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("dimension")
        ax.set_ylabel("dimension")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
