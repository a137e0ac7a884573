"""The ViT-UDIP autoencoder: model config and presets, transformer blocks, patch transforms, the model and its loss.

:mod:`vitudip.model.config` needs no torch (the workflow checks configs with it when it starts);
the rest is imported on first use.
"""

from importlib import import_module

from vitudip.model.config import PRESETS, ModelConfig, configured, preset

_LAZY = {
    "Mlp": "blocks", "MultiHeadSelfAttention": "blocks", "RunningStandardize": "blocks", "AttentivePool": "blocks",
    "TransformerBlock": "blocks", "sincos_position_embedding_3d": "blocks",
    "nonempty_patches": "patches", "patch_grid": "patches", "patchify": "patches", "unpatchify": "patches",
    "ViTAutoEncoder": "vit_autoencoder", "masked_patch_mse": "vit_autoencoder",
}

__all__ = ["PRESETS", "ModelConfig", "configured", "preset", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"vitudip.model.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vitudip.model' has no attribute {name!r}")
