"""The ViT-UDIP autoencoder: a 3-D ViT encoder pooled to one latent vector, and a ViT decoder.

The encoder sees only the patches that hold brain (``token_index``), and one of three
poolings (``ModelConfig.pooling``) turns its output tokens into the subject's UDIP
vector (one value per encoder channel):

* ``mean`` (published, the ``reference`` preset): the mean of the tokens.
* ``attentive``: ``pool_queries`` learned queries cross-attend to the tokens and each
  writes its own ``encoder_dim // pool_queries`` channels (:class:`~vitudip.model.blocks.AttentivePool`).
* ``per_patch`` (the ``demo`` and ``informative`` presets): each token through a linear
  map of its patch's own, summed over the tokens, divided by the square root of their
  number, plus a bias (:class:`~vitudip.model.blocks.PatchLinearPool`);
  ``pool_from_modes`` starts those maps in closed form so that latent dimension ``j``
  is the whitened score of the images' principal mode ``j``.

The decoder receives the latent as a single token followed by one content-free
token per kept patch, made of the decoder's fixed position embedding, and
predicts every kept patch's voxels from the latent alone. Two options, off in
the published model and on in the CPU demo, make the latent easier for the
decoder to read: standardising it, and adding it (projected once for all
patches, or once per patch) to every patch query.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vitudip.model.blocks import (
    AttentivePool,
    PatchLinearPool,
    RunningStandardize,
    TransformerBlock,
    sincos_position_embedding_3d,
)
from vitudip.model.config import PRESETS, ModelConfig, configured, preset
from vitudip.model.patches import patchify, unpatchify
from vitudip.model.shard import BatchShard

__all__ = ["PRESETS", "ModelConfig", "ViTAutoEncoder", "configured", "masked_patch_mse", "nested_dropout_mask",
           "patch_mse", "per_subject_patch_mse", "preset"]

#: Std of the truncated-normal initialisation of every Linear weight.
INIT_STD = 0.02


class ViTAutoEncoder(nn.Module):
    """3-D ViT autoencoder whose bottleneck is the encoder tokens pooled by ``config.pooling`` (see the module).

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
        self.pool = token_pool(config)
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
        if isinstance(self.pool, PatchLinearPool):
            nn.init.trunc_normal_(self.pool.weight, std=INIT_STD, a=-2.0, b=2.0)
        if isinstance(self.pool, AttentivePool):
            # distinct queries, so that they can come to attend to different patches
            nn.init.trunc_normal_(self.pool.query, std=1.0, a=-2.0, b=2.0)
            nn.init.trunc_normal_(self.pool.out, std=self.config.encoder_dim**-0.5, a=-2.0, b=2.0)
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
        if self.pool is None:
            return tokens, tokens.mean(dim=1)
        if isinstance(self.pool, PatchLinearPool):
            return tokens, self.pool(tokens, token_index)
        return tokens, self.pool(tokens)

    def decode(self, latent: torch.Tensor, token_index: torch.Tensor,
               shard: BatchShard | None = None) -> torch.Tensor:
        """Predict the voxels of the kept patches from the latent vector alone.

        Args:
            latent: ``(B, encoder_dim)``.
            token_index: int64 ``(K,)`` patches to predict.
            shard: in data-parallel training, which rows of the global batch ``latent`` holds (the running
                statistics and nested dropout's draws are the global batch's); None: ``latent`` is the batch.

        Returns:
            ``(B, K, patch_voxels)``.
        """
        latent = self.latent_norm(latent, shard) if self.config.latent_norm else latent
        if self.training and self.config.nested_dropout:
            latent = latent * nested_dropout_mask(latent, shard)
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

    def forward(self, x: torch.Tensor, token_index: torch.Tensor,
                shard: BatchShard | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and decode.

        Args:
            x: volumes ``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)``.
            token_index: int64 ``(K,)`` patches kept.
            shard: see :meth:`decode`.

        Returns:
            prediction ``(B, K, patch_voxels)`` and latent ``(B, encoder_dim)``.
        """
        _, latent = self.encode(x, token_index)
        return self.decode(latent, token_index, shard), latent

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


def token_pool(config: ModelConfig) -> nn.Module | None:
    """The module that pools the encoder tokens into the latent (``config.pooling``); None for the mean."""
    if config.pooling == "attentive":
        return AttentivePool(config.encoder_dim, config.pool_queries, config.encoder_heads)
    if config.pooling == "per_patch":
        return PatchLinearPool(config.n_tokens, config.encoder_dim)
    return None


def nested_dropout_mask(latent: torch.Tensor, shard: BatchShard | None = None) -> torch.Tensor:
    """``(B, D)`` mask keeping each row's first ``k`` dimensions, ``k`` uniform in ``1 .. D`` per row.

    With a ``shard`` the draws are the global batch's (every process draws them all from the same generator
    state) and this process keeps its rows, so data-parallel training draws what one process would.
    """
    batch, dim = latent.shape
    if shard is None:
        keep = torch.randint(1, dim + 1, (batch, 1), device=latent.device)
    else:
        keep = shard.local_rows(torch.randint(1, dim + 1, (shard.global_rows, 1), device=latent.device))
    return (torch.arange(dim, device=latent.device)[None, :] < keep).to(latent.dtype)


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
