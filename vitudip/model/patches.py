"""Cut volumes into non-overlapping 3-D patches and back; find the patches a mask touches.

Pure tensor functions, kept apart from the model so that data loading, the loss
and decoder interpretation use the same token order as the network. Tokens are
numbered in C order over the patch grid: token ``t`` is grid cell
``np.unravel_index(t, grid)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def patch_grid(image_size: Sequence[int], patch_size: Sequence[int]) -> tuple[int, int, int]:
    """Number of patches along each axis.

    Args:
        image_size: volume shape ``(X, Y, Z)``.
        patch_size: patch shape ``(px, py, pz)``.

    Returns:
        ``(X // px, Y // py, Z // pz)``.

    Raises:
        ValueError: an axis of ``image_size`` is not a multiple of ``patch_size``.
    """
    image_size, patch_size = tuple(int(s) for s in image_size), tuple(int(p) for p in patch_size)
    if len(image_size) != 3 or len(patch_size) != 3:
        raise ValueError(f"image_size {image_size} and patch_size {patch_size} must both have 3 axes")
    if any(p <= 0 for p in patch_size) or any(s % p for s, p in zip(image_size, patch_size)):
        raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size} on every axis")
    return tuple(s // p for s, p in zip(image_size, patch_size))


def _volumes(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)`` → ``(B, X, Y, Z)``."""
    if x.ndim == 5:
        if x.shape[1] != 1:
            raise ValueError(f"expected a single channel, got input of shape {tuple(x.shape)}")
        return x[:, 0]
    if x.ndim != 4:
        raise ValueError(f"expected (B, 1, X, Y, Z) or (B, X, Y, Z), got shape {tuple(x.shape)}")
    return x


def patchify(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Cut volumes into patches.

    Args:
        x: ``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)``, any dtype (bool masks too).
        patch_size: ``(px, py, pz)``.

    Returns:
        ``(B, n_tokens, px * py * pz)``; voxels of a patch in C order.
    """
    x = _volumes(x)
    gx, gy, gz = patch_grid(x.shape[1:], patch_size)
    px, py, pz = patch_size
    blocks = x.reshape(x.shape[0], gx, px, gy, py, gz, pz).permute(0, 1, 3, 5, 2, 4, 6)
    return blocks.reshape(x.shape[0], gx * gy * gz, px * py * pz)


def unpatchify(patches: torch.Tensor, image_size: Sequence[int], patch_size: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        patches: ``(B, n_tokens, px * py * pz)``.
        image_size: ``(X, Y, Z)``.
        patch_size: ``(px, py, pz)``.

    Returns:
        ``(B, 1, X, Y, Z)``.
    """
    gx, gy, gz = patch_grid(image_size, patch_size)
    px, py, pz = patch_size
    if patches.ndim != 3 or patches.shape[1:] != (gx * gy * gz, px * py * pz):
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit image_size {tuple(image_size)} "
            f"with patch_size {tuple(patch_size)}: expected (B, {gx * gy * gz}, {px * py * pz})"
        )
    blocks = patches.reshape(patches.shape[0], gx, gy, gz, px, py, pz).permute(0, 1, 4, 2, 5, 3, 6)
    return blocks.reshape(patches.shape[0], 1, gx * px, gy * py, gz * pz)


def nonempty_patches(mask: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Tokens whose patch holds at least one True voxel.

    Args:
        mask: boolean ``(X, Y, Z)``, or ``(B, X, Y, Z)`` for the union over a batch.
        patch_size: ``(px, py, pz)``.

    Returns:
        sorted int64 token indices ``(K,)``.
    """
    if mask.ndim == 3:
        mask = mask[None]
    if mask.ndim != 4:
        raise ValueError(f"expected a mask (X, Y, Z) or (B, X, Y, Z), got shape {tuple(mask.shape)}")
    touched = patchify(mask.bool(), patch_size).any(dim=2).any(dim=0)
    return touched.nonzero().flatten()
