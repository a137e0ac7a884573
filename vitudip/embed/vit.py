"""ViT-UDIPs: the trained encoder's mean token per subject, and its reconstruction error."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from vitudip.data.volumes import BatchSource, CachedVolumes
from vitudip.io.stage_tables import passed_subjects
from vitudip.model.checkpoint import load_model
from vitudip.model.device import pick_device, set_cpu_threads
from vitudip.model.step import Step
from vitudip.model.vit_autoencoder import ViTAutoEncoder

log = logging.getLogger("vitudip.embed")


@torch.no_grad()
def embed_vit(model_path: str | os.PathLike, cache_dir: str | os.PathLike, qc_path: str | os.PathLike,
              splits_path: str | os.PathLike, splits: Sequence[str], batch_size: int = 16,
              device: str = "auto", threads: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Encode every QC-passed subject of the chosen splits.

    Args:
        model_path: ``train/model.pt``.
        cache_dir, qc_path, splits_path: the preprocess stage's outputs.
        splits: which splits to embed.
        batch_size: subjects per forward pass.
        device: ``auto``, ``cuda`` or ``cpu``.
        threads: CPU threads for torch (None: torch's default).

    Returns:
        subject ids, latents ``(n, encoder_dim)`` and per-subject reconstruction MSE over brain voxels.
    """
    set_cpu_threads(threads)
    dev = pick_device(device, "train.device")
    model, state = load_model(model_path, dev)
    subjects = passed_subjects(qc_path, splits_path, splits)
    if subjects.empty:
        raise ValueError(f"no QC-passed subject in splits {list(splits)}")
    volumes = CachedVolumes(cache_dir, subjects["row"].to_numpy())
    if volumes.volume_shape != model.config.image_size:
        raise ValueError(f"cache volumes are {volumes.volume_shape} but the model was trained on "
                         f"{model.config.image_size}")
    source = BatchSource(volumes, batch_size, dev, resident=False)
    union = state["token_selection"] == "union"
    brain_tokens = state["brain_tokens"].to(dev)
    mean_image = state.get("mean_image")
    # the training step's input preparation, so embedding centres exactly as training did
    step = Step(model, brain_tokens, state["token_selection"],
                mean_image.to(dev).float() if mean_image is not None else None, state.get("input_scale", 1.0))
    log.info("embedding %d subjects on %s with %s tokens", len(volumes), dev, state["token_selection"])
    latents, errors = [], []
    for batch in tqdm(source.batches(torch.arange(len(volumes))), total=len(source), desc="embed", unit="batch",
                      mininterval=10):
        x, mask = step.prepare(batch)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            if union:
                latent, recon = _autoencode(model, x, brain_tokens)
            else:
                # one subject at a time, so a subject's UDIPs never depend on its batch mates
                pairs = [_autoencode(model, x[i:i + 1], step.tokens(mask[i]))
                         for i in range(len(x))]
                latent, recon = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        # in the images' units, as the training loss
        sq = (torch.where(mask, recon.float() - x, 0.0) * step.scale) ** 2
        errors.append((sq.sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1)).cpu())
        latents.append(latent.float().cpu())
    return list(subjects["subject_id"]), torch.cat(latents).numpy(), torch.cat(errors).numpy()


def _autoencode(model: ViTAutoEncoder, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent ``(B, D)`` and reconstruction ``(B, X, Y, Z)`` of volumes through the kept patches ``index``."""
    _, latent = model.encode(x, index)
    return latent, model.to_volume(model.decode(latent, index), index)[:, 0]
