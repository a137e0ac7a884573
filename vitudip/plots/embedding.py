"""Embedding health figure: the correlation spectrum (scree) of each embedding, with its warning."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_scree(spectra: dict[str, tuple[pd.DataFrame, dict]], path: str | os.PathLike) -> None:
    """Eigenvalues (log scale) and cumulative variance of each embedding's correlation matrix.

    Args:
        spectra: embedding name -> (its ``spectrum.tsv`` table, its ``health.tsv`` row as a dict).
        path: PNG to write.
    """
    fig, (ax, cum) = plt.subplots(1, 2, figsize=(11, 4.5))
    warnings = []
    for name, (table, health) in spectra.items():
        label = f"{name}: participation ratio {health['participation_ratio']:.1f} of {health['dimensions']}"
        positive = table[table["eigenvalue"] > 0]
        ax.plot(positive["component"], positive["eigenvalue"], ".-", label=label)
        cum.plot(table["component"], table["cumulative_fraction"], "-", label=f"{name}: 90 % in "
                 f"{health['dims_90pct']} components")
        if health["status"] != "ok":
            warnings.append(f"{name} {health['status'].split(';')[0]}")
    ax.set_yscale("log")
    ax.set_xlabel("component")
    ax.set_ylabel("eigenvalue of the correlation matrix")
    ax.legend(fontsize=8)
    cum.axhline(0.9, color="grey", ls="--", lw=0.8)
    cum.set_xlabel("components")
    cum.set_ylabel("share of the variance")
    cum.set_ylim(0, 1.02)
    cum.legend(fontsize=8, loc="lower right")
    title = "Embedding spectrum"
    if warnings:
        title += "\nWARNING: " + "; ".join(warnings) + ": a few traits in disguise"
    fig.suptitle(title, color="firebrick" if warnings else "black", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
