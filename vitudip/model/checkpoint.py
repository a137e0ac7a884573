"""Checkpoints that know which model they belong to, written atomically, and the trained model read back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vitudip.model.config import ModelConfig
from vitudip.model.vit_autoencoder import ViTAutoEncoder


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, or made for another model."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def config_differences(saved: dict[str, Any], expected: ModelConfig) -> list[str]:
    """Fields where a saved model config differs from the expected one, as ``name: saved -> expected``."""
    want = expected.to_dict()
    # compared as saved, not rebuilt: a config an older version wrote may no longer be valid
    have = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    return [f"{k}: {have.get(k)} -> {want[k]}" for k in sorted(set(want) | set(have)) if have.get(k) != want.get(k)]


def load_checkpoint(path: str | os.PathLike, expected: ModelConfig | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint and, when ``expected`` is given, refuse one made for another model.

    Args:
        path: a file written by :func:`save_checkpoint`.
        expected: the model config it must match.
        map_location: device for the tensors.

    Raises:
        CheckpointError: the file is missing, unreadable (truncated, corrupt, not a checkpoint),
            or its model config differs (the message lists the fields).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - garbage bytes fail anywhere inside the unpickler
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt): {err}") from None
    if not isinstance(payload, dict) or "model_config" not in payload or "model" not in payload:
        raise CheckpointError(f"{path} is not a ViT-UDIP checkpoint (no model config or weights)")
    if expected is not None:
        diff = config_differences(payload["model_config"], expected)
        if diff:
            raise CheckpointError(f"checkpoint {path} was made for another model config ({'; '.join(diff)})")
    return payload


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[ViTAutoEncoder, dict]:
    """The trained model in eval mode, and its checkpoint (token set, grid)."""
    state = load_checkpoint(path, map_location=device)
    try:
        config = ModelConfig.from_dict(state["model_config"])
    except ValueError as err:
        raise ValueError(f"{path} was made for a model this version cannot build ({err}); retrain it") from None
    model = ViTAutoEncoder(config).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state
