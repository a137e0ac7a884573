"""Move latents along directions (one dimension, or a locus's lead-variant effects) and run only the decoder.

A *direction* is one latent shift vector ``(D,)`` added to every subject's latent:
``+k SD`` of one dimension is the one-hot direction ``k * SD_d * e_d``
(:func:`dimension_directions`), a locus's is its lead variant's effect on every
dimension (:mod:`vitudip.perdi.locus`). The loop runs over subject batches on the
outside and directions on the inside: each batch's unperturbed reconstruction is
decoded once and reused for every direction, and only per-direction running
statistics are kept, never the subjects' volumes.
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


def dimension_directions(dims: Sequence[int], shifts: torch.Tensor, n_dims: int) -> torch.Tensor:
    """One-hot directions: row ``j`` moves dimension ``dims[j]`` by ``shifts[j]`` and nothing else.

    Args:
        dims: dimensions to move.
        shifts: ``(len(dims),)`` amounts, e.g. k times each dimension's SD.
        n_dims: latent width ``D``.

    Returns:
        ``(len(dims), D)`` in the dtype and on the device of ``shifts``.
    """
    out = shifts.new_zeros(len(dims), n_dims)
    out[torch.arange(len(dims), device=out.device), torch.as_tensor(list(dims), dtype=torch.long,
                                                                    device=out.device)] = shifts
    return out


def perturbed_latents(latents: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Copies of the latents, copy ``j`` moved by ``directions[j]``.

    Args:
        latents: ``(B, D)``.
        directions: ``(C, D)`` latent shifts.

    Returns:
        ``(C, B, D)``.
    """
    return latents.unsqueeze(0) + directions[:, None, :].to(latents)


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
    """Per direction and voxel, ``(n_directions, n_voxels)`` float32 each.

    Attributes:
        t: paired t of perturbed minus original reconstruction across subjects (the published map).
        change: mean of that difference over the subjects, in the decoder's output units.
    """

    t: torch.Tensor
    change: torch.Tensor


@torch.no_grad()
def perturbation_maps(decode: Decoder, latents: torch.Tensor, directions: torch.Tensor, n_voxels: int,
                      batch_size: int = 64) -> PerturbationMaps:
    """Voxel-wise paired t and mean change (perturbed minus original reconstruction) per direction.

    Args:
        decode: latents ``(B, D)`` → voxels ``(B, n_voxels)``, on the device of ``latents``.
        latents: ``(N, D)`` the subjects' latents.
        directions: ``(C, D)`` latent shifts, one map each (:func:`dimension_directions` for dimensions).
        n_voxels: voxels ``decode`` returns.
        batch_size: latents per decoder call; a call holds several directions' copies of a
            subject batch when there are fewer subjects than this.

    Returns:
        both maps, on the device of ``latents``.
    """
    n = len(latents)
    subjects = max(1, min(n, batch_size))
    per_call = max(1, batch_size // subjects)
    directions = directions.to(latents)
    stats = PairedDifferenceStats(len(directions), n_voxels, latents.device)
    steps = math.ceil(n / subjects) * math.ceil(len(directions) / per_call)
    with tqdm(total=steps, desc="perdi decode", unit="call", mininterval=10) as progress:
        for start in range(0, n, subjects):
            batch = latents[start:start + subjects]
            original = decode(batch).float()
            for first in range(0, len(directions), per_call):
                chunk = slice(first, first + per_call)
                moved = perturbed_latents(batch, directions[chunk])
                reconstructed = decode(moved.flatten(0, 1)).float().view(*moved.shape[:2], -1)
                stats.update(chunk, reconstructed.sub_(original))
                progress.update()
    return PerturbationMaps(stats.t(), stats.mean.clone())
