"""The ViT-UDIP autoencoder: a 3-D ViT encoder pooled to one latent vector, and a ViT decoder.

The encoder sees only the patches that hold brain (``token_index``); the mean of
its output tokens is the subject's UDIP vector (one value per encoder channel).
The decoder receives that single latent token followed by one content-free
token per kept patch, made of the decoder's fixed position embedding, and
predicts every kept patch's voxels from the latent alone. Two options, off in
the published model and on in the CPU demo, make the latent easier for the
decoder to read: standardising it, and adding it (projected once for all
patches, or once per patch) to every patch query.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from vitudip.model.blocks import RunningStandardize, TransformerBlock, sincos_position_embedding_3d
from vitudip.model.patches import patch_grid, patchify, unpatchify

#: Std of the truncated-normal initialisation of every Linear weight.
INIT_STD = 0.02

#: Ways the latent reaches the decoder's patch queries (see :class:`ModelConfig`).
LATENT_TO_QUERIES = ("none", "shared", "per_patch")


@dataclass
class ModelConfig:
    """Sizes of a :class:`ViTAutoEncoder`.

    Attributes:
        image_size: padded volume shape ``(X, Y, Z)``.
        patch_size: patch shape; divides ``image_size`` on every axis.
        encoder_dim: encoder width, which is also the number of UDIPs.
        encoder_depth: encoder transformer blocks.
        encoder_heads: encoder attention heads; divides ``encoder_dim``.
        decoder_dim: decoder width.
        decoder_depth: decoder transformer blocks.
        decoder_heads: decoder attention heads; divides ``decoder_dim``.
        mlp_ratio: MLP hidden width as a multiple of the block width.
        qkv_bias: give the query/key/value projections a bias.
        latent_norm: standardise the latent (running per-dimension mean and SD) before the
            decoder reads it. The mean over hundreds of tokens is nearly the same vector for
            every subject, so the published decoder sees subject differences of well under 1 %
            of its input and takes very long to learn to use them. Not in the published model.
        latent_to_queries: also add the latent to every patch query, so each patch hears the
            subject directly instead of only through attention to one token among hundreds.
            ``none`` (published): not at all; ``shared``: the decoder's latent token, the same
            for every patch; ``per_patch``: that token plus a linear projection of the latent
            of the patch's own, so that each patch can read the latent dimensions that describe
            it. A few CPU epochs teach the shared form only broad, brain-wide changes.
    """

    image_size: tuple[int, int, int]
    patch_size: tuple[int, int, int]
    encoder_dim: int = 128
    encoder_depth: int = 12
    encoder_heads: int = 8
    decoder_dim: int = 64
    decoder_depth: int = 12
    decoder_heads: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    latent_norm: bool = False
    latent_to_queries: str = "none"

    def __post_init__(self) -> None:
        # JSON turns tuples into lists; normalise so that a round trip compares equal.
        for name in ("image_size", "patch_size"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) <= 0:
                raise ValueError(f"ModelConfig.{name} must be 3 positive integers, got {value}")
            setattr(self, name, value)
        if any(s % p for s, p in zip(self.image_size, self.patch_size)):
            raise ValueError(
                f"ModelConfig.image_size {self.image_size} is not divisible by "
                f"ModelConfig.patch_size {self.patch_size} on every axis"
            )
        for part in ("encoder", "decoder"):
            dim, depth, heads = (getattr(self, f"{part}_{what}") for what in ("dim", "depth", "heads"))
            if depth < 1 or heads < 1:
                raise ValueError(f"ModelConfig.{part}_depth and {part}_heads must be >= 1, got {depth}, {heads}")
            # the 3-D sin-cos position embedding needs a sin and a cos channel per axis
            if dim < 6:
                raise ValueError(f"ModelConfig.{part}_dim must be >= 6, got {dim}")
            if dim % heads:
                raise ValueError(f"ModelConfig.{part}_dim ({dim}) must be divisible by {part}_heads ({heads})")
        if self.latent_to_queries not in LATENT_TO_QUERIES:
            raise ValueError(f"ModelConfig.latent_to_queries must be one of {', '.join(LATENT_TO_QUERIES)}, "
                             f"got {self.latent_to_queries!r}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"ModelConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patches along each axis."""
        return patch_grid(self.image_size, self.patch_size)

    @property
    def n_tokens(self) -> int:
        """Patches in a whole volume."""
        return math.prod(self.grid)

    @property
    def patch_voxels(self) -> int:
        """Voxels in one patch."""
        return math.prod(self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (tuples stay tuples; JSON may turn them into lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from :meth:`to_dict` output, also after a JSON round trip.

        Raises:
            ValueError: a key is not a field of ModelConfig.
        """
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {sorted(unknown)}")
        return cls(**values)


PRESETS: dict[str, ModelConfig] = {
    # the published model on UK Biobank's 1 mm MNI grid padded to 182 x 224 x 182
    "reference": ModelConfig(image_size=(182, 224, 182), patch_size=(14, 16, 14)),
    # a CPU-sized model on a 2 mm grid; the width stays 128 so that there are still 128 UDIPs
    "demo": ModelConfig(
        image_size=(96, 112, 96),
        patch_size=(8, 8, 8),
        encoder_dim=128,
        encoder_depth=4,
        encoder_heads=8,
        decoder_dim=64,
        decoder_depth=2,
        decoder_heads=8,
        # a few CPU epochs are far too few for the published decoder to learn to read its latent
        latent_norm=True,
        latent_to_queries="per_patch",
    ),
}


def preset(name: str) -> ModelConfig:
    """A fresh copy of a named configuration.

    Raises:
        ValueError: ``name`` is not in :data:`PRESETS`.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; presets: {sorted(PRESETS)}")
    return ModelConfig.from_dict(PRESETS[name].to_dict())


class ViTAutoEncoder(nn.Module):
    """3-D ViT autoencoder whose bottleneck is the mean of the encoder tokens.

    Args:
        config: model sizes.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        patch_voxels = config.patch_voxels
        # a Linear on gathered patches equals a Conv3d with kernel = stride = patch,
        # but spends nothing on the dropped patches
        self.patch_embed = nn.Linear(patch_voxels, config.encoder_dim)
        self.encoder_blocks = nn.ModuleList(
            TransformerBlock(config.encoder_dim, config.encoder_heads, config.mlp_ratio, config.qkv_bias)
            for _ in range(config.encoder_depth)
        )
        self.encoder_norm = nn.LayerNorm(config.encoder_dim)
        self.latent_norm = RunningStandardize(config.encoder_dim) if config.latent_norm else nn.Identity()
        self.decoder_embed = nn.Linear(config.encoder_dim, config.decoder_dim)
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(config.decoder_dim, config.decoder_heads, config.mlp_ratio, config.qkv_bias)
            for _ in range(config.decoder_depth)
        )
        # (n_tokens, encoder_dim, decoder_dim): 16.5 M values on the demo grid, at no measurable cost per step
        self.patch_latent = (nn.Parameter(torch.empty(config.n_tokens, config.encoder_dim, config.decoder_dim))
                             if config.latent_to_queries == "per_patch" else None)
        self.decoder_norm = nn.LayerNorm(config.decoder_dim)
        self.decoder_head = nn.Linear(config.decoder_dim, patch_voxels)
        # fixed, and recomputed from the config, so they need not be in checkpoints
        self.register_buffer(
            "encoder_pos", sincos_position_embedding_3d(config.grid, config.encoder_dim), persistent=False
        )
        self.register_buffer(
            "decoder_pos", sincos_position_embedding_3d(config.grid, config.decoder_dim), persistent=False
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # bounds of +-2 (absolute), as in the published code: at std 0.02 practically a plain normal
                nn.init.trunc_normal_(module.weight, std=INIT_STD, a=-2.0, b=2.0)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.patch_latent is not None:
            nn.init.trunc_normal_(self.patch_latent, std=INIT_STD, a=-2.0, b=2.0)
        # keep the residual stream's variance from growing with depth
        with torch.no_grad():
            for blocks in (self.encoder_blocks, self.decoder_blocks):
                for depth, block in enumerate(blocks, start=1):
                    block.attn.proj.weight.div_(math.sqrt(2.0 * depth))
                    block.mlp.fc2.weight.div_(math.sqrt(2.0 * depth))

    def encode(self, x: torch.Tensor, token_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the kept patches and pool them.

        Args:
            x: volumes ``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)``.
            token_index: int64 ``(K,)`` indices of the patches to encode, shared by the batch.

        Returns:
            tokens ``(B, K, encoder_dim)`` and latent ``(B, encoder_dim)``, the UDIP vectors.
        """
        patches = patchify(x, self.config.patch_size)[:, token_index]
        tokens = self.patch_embed(patches) + self.encoder_pos[token_index]
        for block in self.encoder_blocks:
            tokens = block(tokens)
        tokens = self.encoder_norm(tokens)
        return tokens, tokens.mean(dim=1)

    def decode(self, latent: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
        """Predict the voxels of the kept patches from the latent vector alone.

        Args:
            latent: ``(B, encoder_dim)``.
            token_index: int64 ``(K,)`` patches to predict.

        Returns:
            ``(B, K, patch_voxels)``.
        """
        latent = self.latent_norm(latent)
        latent_token = self.decoder_embed(latent)[:, None]
        queries = self.decoder_pos[token_index].expand(latent.shape[0], -1, -1)
        if self.config.latent_to_queries != "none":
            queries = queries + latent_token
        if self.patch_latent is not None:
            queries = queries + torch.einsum("bd,kde->bke", latent, self.patch_latent[token_index])
        tokens = torch.cat([latent_token, queries], dim=1)
        for block in self.decoder_blocks:
            tokens = block(tokens)
        return self.decoder_head(self.decoder_norm(tokens))[:, 1:]

    def forward(self, x: torch.Tensor, token_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and decode.

        Args:
            x: volumes ``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)``.
            token_index: int64 ``(K,)`` patches kept.

        Returns:
            prediction ``(B, K, patch_voxels)`` and latent ``(B, encoder_dim)``.
        """
        _, latent = self.encode(x, token_index)
        return self.decode(latent, token_index), latent

    def to_volume(self, prediction: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
        """Place predicted patches in a volume; patches not in ``token_index`` are zero.

        Args:
            prediction: ``(B, K, patch_voxels)``.
            token_index: int64 ``(K,)`` the patches ``prediction`` holds.

        Returns:
            ``(B, 1, X, Y, Z)``.
        """
        full = prediction.new_zeros(prediction.shape[0], self.config.n_tokens, prediction.shape[2])
        full[:, token_index] = prediction
        return unpatchify(full, self.config.image_size, self.config.patch_size)

    def reconstruct(self, x: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
        """Autoencode volumes.

        Args:
            x: volumes ``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)``.
            token_index: int64 ``(K,)`` patches kept.

        Returns:
            ``(B, 1, X, Y, Z)``, zero in the dropped patches.
        """
        prediction, _ = self(x, token_index)
        return self.to_volume(prediction, token_index)


def patch_mse(prediction: torch.Tensor, target: torch.Tensor,
              voxel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch's MSE over its brain voxels, and which patches hold brain.

    Args:
        prediction: ``(B, K, P)``.
        target: ``(B, K, P)``.
        voxel_mask: bool ``(B, K, P)``, True at brain voxels.

    Returns:
        per-patch MSE ``(B, K)`` (0 for empty patches) and bool ``(B, K)`` brain patches.
    """
    # select before squaring, not multiply by the mask: background voxels then get
    # exactly zero gradient even where the prediction is not finite
    squared = torch.where(voxel_mask, prediction - target, 0.0) ** 2
    brain_voxels = voxel_mask.sum(dim=-1)
    return squared.sum(dim=-1) / brain_voxels.clamp_min(1), brain_voxels > 0


def masked_patch_mse(prediction: torch.Tensor, target: torch.Tensor, voxel_mask: torch.Tensor) -> torch.Tensor:
    """Per-patch MSE over brain voxels, averaged over the patches that hold brain.

    Args:
        prediction: ``(B, K, P)``.
        target: ``(B, K, P)``.
        voxel_mask: bool ``(B, K, P)``, True at brain voxels.

    Returns:
        scalar; 0 (still attached to ``prediction``) when no voxel is brain.
    """
    per_patch, brain_patches = patch_mse(prediction, target, voxel_mask)
    return per_patch.sum() / brain_patches.sum().clamp_min(1)


def per_subject_patch_mse(prediction: torch.Tensor, target: torch.Tensor,
                          voxel_mask: torch.Tensor) -> torch.Tensor:
    """:func:`masked_patch_mse` of each subject of a batch, ``(B,)``."""
    per_patch, brain_patches = patch_mse(prediction, target, voxel_mask)
    return per_patch.sum(dim=1) / brain_patches.sum(dim=1).clamp_min(1)
