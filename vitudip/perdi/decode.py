"""Perturb latents along one dimension at a time and run only the decoder, batched.

The loop runs over subject batches on the outside and perturbed dimensions on
the inside: each batch's unperturbed reconstruction is decoded once and reused
for every dimension, and only per-dimension running statistics are kept, never
the subjects' volumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from vitudip.model.patches import patchify
from vitudip.model.vit_autoencoder import ViTAutoEncoder
from vitudip.perdi.stats import PairedDifferenceStats

#: Latents ``(B, D)`` → reconstructed brain voxels ``(B, V)``.
Decoder = Callable[[torch.Tensor], torch.Tensor]


def latent_sd(latents: torch.Tensor) -> torch.Tensor:
    """Sample SD (n - 1 denominator) of every latent dimension over the subjects, ``(D,)``.

    Args:
        latents: ``(N, D)``.

    Returns:
        ``(D,)`` in the dtype of ``latents``.
    """
    return latents.double().std(dim=0, correction=1).to(latents.dtype)


def perturbed_latents(latents: torch.Tensor, dims: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Copies of the latents, copy ``j`` moved by ``shifts[j]`` along dimension ``dims[j]`` only.

    Args:
        latents: ``(B, D)``.
        dims: int64 ``(C,)`` dimensions to move.
        shifts: ``(C,)`` amounts, e.g. k times each dimension's SD.

    Returns:
        ``(C, B, D)``.
    """
    out = latents.unsqueeze(0).repeat(len(dims), 1, 1)
    out[torch.arange(len(dims), device=out.device), :, dims] += shifts[:, None].to(out)
    return out


class BrainDecoder:
    """A :class:`ViTAutoEncoder`'s decoder restricted to the brain voxels of its kept patches.

    Args:
        model: the trained autoencoder (eval mode).
        token_index: int64 ``(K,)`` the patches it decodes (the checkpoint's ``brain_tokens``).
        brain_mask: bool ``(X, Y, Z)`` union brain mask on the model's (padded) grid.
    """

    def __init__(self, model: ViTAutoEncoder, token_index: torch.Tensor, brain_mask: np.ndarray) -> None:
        if tuple(brain_mask.shape) != model.config.image_size:
            raise ValueError(f"brain mask of shape {tuple(brain_mask.shape)} does not fit the model's "
                             f"image size {model.config.image_size}")
        device = next(model.parameters()).device
        self.model = model
        self.token_index = token_index.to(device)
        in_patches = patchify(torch.from_numpy(np.asarray(brain_mask, bool))[None], model.config.patch_size)[0]
        # flat positions in the decoder's (K * patch_voxels) output of the brain voxels
        self.positions = in_patches[self.token_index.cpu()].reshape(-1).nonzero().squeeze(1).to(device)

    @property
    def n_voxels(self) -> int:
        return len(self.positions)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """Brain voxels ``(B, V)`` reconstructed from latents ``(B, D)``."""
        return self.model.decode(latents, self.token_index).flatten(1)[:, self.positions]

    def volume(self, values: torch.Tensor) -> np.ndarray:
        """Place per-voxel values ``(V,)`` back on the model's grid ``(X, Y, Z)``, zero elsewhere."""
        full = values.new_zeros(len(self.token_index) * self.model.config.patch_voxels)
        full[self.positions.to(values.device)] = values
        patches = full.view(1, len(self.token_index), -1)
        return self.model.to_volume(patches, self.token_index.to(values.device))[0, 0].cpu().numpy()


class PerturbationMaps(NamedTuple):
    """Per perturbed dimension and voxel, ``(len(dims), n_voxels)`` float32 each.

    Attributes:
        t: paired t of perturbed minus original reconstruction across subjects (the published map).
        change: mean of that difference over the subjects, in the decoder's output units.
    """

    t: torch.Tensor
    change: torch.Tensor


@torch.no_grad()
def perturbation_maps(decode: Decoder, latents: torch.Tensor, dims: Sequence[int], shifts: torch.Tensor,
                      n_voxels: int, batch_size: int = 64) -> PerturbationMaps:
    """Voxel-wise paired t and mean change (perturbed minus original reconstruction) per perturbed dimension.

    Args:
        decode: latents ``(B, D)`` → voxels ``(B, n_voxels)``, on the device of ``latents``.
        latents: ``(N, D)`` the subjects' latents.
        dims: dimensions to perturb, one map each.
        shifts: ``(len(dims),)`` amount added to each dimension (k SD).
        n_voxels: voxels ``decode`` returns.
        batch_size: latents per decoder call; a call holds several dimensions' copies of a
            subject batch when there are fewer subjects than this.

    Returns:
        both maps, on the device of ``latents``.
    """
    n = len(latents)
    subjects = max(1, min(n, batch_size))
    per_call = max(1, batch_size // subjects)
    dim_index = torch.as_tensor(list(dims), dtype=torch.long, device=latents.device)
    stats = PairedDifferenceStats(len(dim_index), n_voxels, latents.device)
    steps = math.ceil(n / subjects) * math.ceil(len(dim_index) / per_call)
    with tqdm(total=steps, desc="perdi decode", unit="call", mininterval=10) as progress:
        for start in range(0, n, subjects):
            batch = latents[start:start + subjects]
            original = decode(batch).float()
            for first in range(0, len(dim_index), per_call):
                chunk = slice(first, first + per_call)
                moved = perturbed_latents(batch, dim_index[chunk], shifts[chunk])
                reconstructed = decode(moved.flatten(0, 1)).float().view(*moved.shape[:2], -1)
                stats.update(chunk, reconstructed.sub_(original))
                progress.update()
    return PerturbationMaps(stats.t(), stats.mean.clone())
