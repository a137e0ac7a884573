"""One forward pass and its loss: what training, evaluation and embedding share."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from vitudip.model.config import ModelConfig
from vitudip.model.mode_loss import LatentModeAnchor, ModeLoss
from vitudip.model.patches import nonempty_patches, patchify
from vitudip.model.shard import BatchShard
from vitudip.model.vit_autoencoder import ViTAutoEncoder, patch_mse


def load_brain_tokens(brain_mask_path: str | os.PathLike, config: ModelConfig) -> torch.Tensor:
    """Patches holding brain anywhere in the cohort's union mask: the fixed token set of ``union``."""
    mask = torch.from_numpy(np.load(brain_mask_path))
    if tuple(mask.shape) != config.image_size:
        raise ValueError(f"brain mask {brain_mask_path} has shape {tuple(mask.shape)} but the model expects "
                         f"{config.image_size}: set model.image_size to preprocess.pad_to")
    return nonempty_patches(mask, config.patch_size)


class StepOutput(NamedTuple):
    """What one forward pass gives.

    Attributes:
        loss: the batch's reconstruction error over brain voxels, in the images' units (scalar).
        per_subject: each subject's error ``(B,)``, detached.
        latent: ``(B, encoder_dim)`` float32.
        modes: the mode terms, :class:`ModeLoss` plus :class:`LatentModeAnchor` (scalar; 0 without either).
    """

    loss: torch.Tensor
    per_subject: torch.Tensor
    latent: torch.Tensor
    modes: torch.Tensor


class Step:
    """One forward pass and its loss, shared by training, evaluation and embedding.

    Args:
        model: the autoencoder.
        brain_tokens: the fixed token set (``union``).
        token_selection: ``union`` or ``batch``.
        mean_image: ``(X, Y, Z)`` mean training image to subtract (None: no centring).
        scale: what the centred images are divided by; losses are multiplied back by its square.
        mode_loss: adds the leading modes' unexplained variance to what a pass returns (None: off).
        latent_anchor: adds the gap between the first latent dimensions and the input's whitened mode
            scores (None: off).
    """

    def __init__(self, model: ViTAutoEncoder, brain_tokens: torch.Tensor, token_selection: str,
                 mean_image: torch.Tensor | None = None, scale: float = 1.0,
                 mode_loss: ModeLoss | None = None, latent_anchor: LatentModeAnchor | None = None) -> None:
        self.model = model
        self.brain_tokens = brain_tokens
        self.token_selection = token_selection
        self.mean_image = mean_image
        self.scale = scale
        self.mode_loss = mode_loss
        self.latent_anchor = latent_anchor
        self.autocast = next(model.parameters()).device.type == "cuda"

    def tokens(self, mask: torch.Tensor, shard: BatchShard | None = None) -> torch.Tensor:
        """The patches a batch is encoded from: the union's, or those holding brain in any of the batch's subjects
        (with a ``shard``, of the global batch's)."""
        if self.token_selection == "union":
            return self.brain_tokens
        touched = nonempty_patches(mask, self.model.config.patch_size)
        if shard is None:
            return touched
        flags = torch.zeros(self.model.config.n_tokens, device=mask.device)
        flags[touched] = 1.0
        return shard.total(flags).nonzero().flatten()

    def prepare(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 model input ``(B, X, Y, Z)`` (centred and scaled when asked) and each subject's brain mask."""
        x = batch.float()
        mask = x != 0
        if self.mean_image is not None:
            x = torch.where(mask, x - self.mean_image, 0.0) / self.scale
        return x, mask

    def __call__(self, batch: torch.Tensor, shard: BatchShard | None = None,
                 network: nn.Module | None = None) -> StepOutput:
        """One forward pass of a float16 batch ``(B, X, Y, Z)``.

        Args:
            batch: the subjects.
            shard: in data-parallel training, which rows of the global batch ``batch`` holds; the losses are
                then this process's shares of the global batch's, which sum over the processes to what one
                process gives on the whole batch (None: ``batch`` is the batch).
            network: what runs the model (its DistributedDataParallel wrapper in data-parallel training;
                None: the model).
        """
        x, mask = self.prepare(batch)
        index = self.tokens(mask, shard)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            prediction, latent = (self.model if network is None else network)(x, index, shard=shard)
        patch_size = self.model.config.patch_size
        target = patchify(x, patch_size)[:, index]
        voxel_mask = patchify(mask, patch_size)[:, index]
        # one per-patch pass gives both the batch loss and each subject's loss
        per_patch, brain_patches = patch_mse(prediction.float(), target, voxel_mask)
        per_patch = per_patch * self.scale**2  # in the images' units whatever the scaling
        if shard is None:
            loss = per_patch.sum() / brain_patches.sum().clamp_min(1)
        else:
            weights = shard.weights(per_patch.device)[:, None]
            loss = (per_patch * weights).sum() / shard.total((brain_patches * weights).sum()).clamp_min(1)
        per_subject = per_patch.sum(dim=1) / brain_patches.sum(dim=1).clamp_min(1)
        modes = loss.new_zeros(())
        if self.mode_loss is not None:
            modes = modes + self.mode_loss(torch.where(voxel_mask, prediction.float() - target, 0.0), index, shard)
        if self.latent_anchor is not None:
            modes = modes + self.latent_anchor(latent, target, index, shard)
        return StepOutput(loss, per_subject.detach(), latent.float(), modes)
