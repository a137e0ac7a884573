"""The untrained reference: a run's network as initialised, before any training step."""

from __future__ import annotations

import os

import torch

from vitudip.model.checkpoint import load_checkpoint, save_checkpoint
from vitudip.model.config import ModelConfig
from vitudip.model.vit_autoencoder import ViTAutoEncoder


def untrained_model(trained_path: str | os.PathLike, seed: int, out_path: str | os.PathLike) -> None:
    """Write a model file like ``trained_path`` whose weights are those its training started from.

    The weights are drawn as the trainer draws them (``torch.manual_seed(seed)``, then the model built on the
    CPU), before any step and before the pool's start from the principal modes (``pool_from_modes``), which is
    fitted to the images: the randomly initialised network the stability literature compares against. The
    token set, the mean image and the input scale stay the trained model's, so both embed the same inputs.

    Args:
        trained_path: a trained model.pt (train_model).
        seed: the seed its training ran with.
        out_path: model.pt to write, which the embed stage reads.
    """
    payload = load_checkpoint(trained_path)
    torch.manual_seed(seed)
    payload["model"] = ViTAutoEncoder(ModelConfig.from_dict(payload["model_config"])).state_dict()
    payload["epoch"] = 0
    save_checkpoint(out_path, payload)
