"""Training figures: the loss curve and a reconstruction beside its input."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_loss(metrics: pd.DataFrame, mean_image_loss: float, path: str | os.PathLike) -> None:
    """Train and validation loss per epoch, with the loss of predicting the mean training image.

    Args:
        metrics: ``epoch``, ``train_loss``, ``val_loss`` columns.
        mean_image_loss: the validation loss of the mean-image baseline.
        path: PNG to write.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(metrics["epoch"], metrics["train_loss"], "o-", label="train")
    if metrics["val_loss"].notna().any():
        ax.plot(metrics["epoch"], metrics["val_loss"], "s-", label="validation")
    ax.axhline(mean_image_loss, color="grey", ls="--", label="mean training image (validation)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("masked MSE (z-score units²)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("ViT autoencoder training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reconstruction(volume: np.ndarray, reconstruction: np.ndarray, path: str | os.PathLike,
                        title: str = "", mean_image: np.ndarray | None = None) -> None:
    """Orthogonal mid-brain slices: input (top) and reconstruction (below), on one grey scale.

    With the mean training image, two more rows show input and reconstruction minus it, on one
    diverging scale: what is the subject's own, which the whole images hide.

    Args:
        volume: ``(X, Y, Z)`` input, background 0.
        reconstruction: same shape, background masked to 0.
        path: PNG to write.
        title: figure title (e.g. the subject id).
        mean_image: ``(X, Y, Z)`` mean training image, or None.
    """
    brain = volume != 0
    voxels = np.argwhere(brain)
    centre = voxels.mean(0).round().astype(int) if len(voxels) else np.array(volume.shape) // 2
    lo, hi = np.percentile(volume[brain], [1, 99]) if len(voxels) else (-1, 1)
    rows = [("input", volume, "gray", lo, hi), ("reconstruction", reconstruction, "gray", lo, hi)]
    if mean_image is not None:
        own, recon_own = (np.where(brain, v - mean_image, 0.0) for v in (volume, reconstruction))
        limit = float(np.percentile(np.abs(own[brain]), 99)) if len(voxels) else 1.0
        rows += [("input - mean", own, "RdBu_r", -limit, limit),
                 ("reconstruction - mean", recon_own, "RdBu_r", -limit, limit)]
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)))
    for row, (name, data, cmap, vmin, vmax) in enumerate(rows):
        slices = (data[centre[0]], data[:, centre[1]], data[:, :, centre[2]])
        for col, s in enumerate(slices):
            ax = axes[row, col]
            ax.imshow(s.T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
