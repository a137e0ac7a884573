"""The ViT-UDIP autoencoder: transformer blocks, patch transforms, the assembled model and its loss."""

from vitudip.model.blocks import (
    Mlp,
    MultiHeadSelfAttention,
    RunningStandardize,
    TransformerBlock,
    sincos_position_embedding_3d,
)
from vitudip.model.patches import nonempty_patches, patch_grid, patchify, unpatchify
from vitudip.model.vit_autoencoder import PRESETS, ModelConfig, ViTAutoEncoder, masked_patch_mse, preset

__all__ = [
    "PRESETS",
    "Mlp",
    "ModelConfig",
    "MultiHeadSelfAttention",
    "RunningStandardize",
    "TransformerBlock",
    "ViTAutoEncoder",
    "masked_patch_mse",
    "nonempty_patches",
    "patch_grid",
    "patchify",
    "preset",
    "sincos_position_embedding_3d",
    "unpatchify",
]
