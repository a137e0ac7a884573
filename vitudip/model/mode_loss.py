"""A reconstruction term that weighs the images' leading principal modes equally.

Gradient descent on a squared reconstruction error learns the modes of the images in order of
their variance, each at a rate proportional to it (linear autoencoders, Saxe et al. 2014). On the
demo cohort the planted thalamus and hippocampus effects sit in principal modes 4 to 10 of the
centred training images, which hold 0.4 to 2.7 % of the variance each, while the first mode holds
46 %; a CPU budget of a few epochs learns the first few modes and overwrites what the randomly
initialised encoder carried of the rest (issue 12: thalamus CV R² 0.82 before training, 0.43 after).

This term adds, per subject, the fraction of each of the ``k`` leading modes' variance that the
reconstruction leaves unexplained, averaged over the modes: 1 for predicting the mean image, 0 for a
perfect reconstruction, and the same for a mode of 0.4 % of the variance as for one of 46 %. The
plain error still weighs everything else (the modes beyond ``k``, the noise) by variance. The
modes are fitted once, before training, on the training split's prepared (centred and scaled)
volumes by randomised subspace iteration (:mod:`vitudip.model.principal`), streamed in batches, so memory
grows with voxels times ``k``, not with subjects.

:class:`LatentModeAnchor` uses the same modes on the encoder's side: latent dimension ``j`` is asked
for the whitened score of mode ``j`` of the subject's own image. The mode loss only tells the encoder
about a small mode through the decoder, and in a few epochs the decoder does not learn to draw it; the
anchor is a direct target, which a pooling that weighs each patch on its own (``per_patch``) meets in
one epoch (validation R² 0.74 over 32 modes, against 0.03 through the mean of the tokens). The
remaining dimensions are left to the reconstruction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from vitudip.model.principal import principal_subspace
from vitudip.model.shard import BatchShard, batch_mean

log = logging.getLogger("vitudip.train")

#: Penalties :func:`ridge_patch_maps` chooses from: on the demo, the 128 modes' validation R² is the same from 1e-4 to
#: 1e-2, and the largest ones shrink a mode the tokens do not carry to nearly its mean.
POOL_RIDGES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class PrincipalModes:
    """The leading principal modes of patch-space volumes.

    Attributes:
        tokens: int64 ``(T,)`` sorted patch indices the basis covers.
        basis: ``(T, P, k)``, orthonormal over the flattened ``T * P`` voxels.
        variance: ``(k,)`` each mode's score variance over the fitted subjects, largest first.
        total_variance: the summed variance of every voxel (all modes), for reporting shares.
    """

    tokens: torch.Tensor
    basis: torch.Tensor
    variance: torch.Tensor
    total_variance: float

    @property
    def shares(self) -> torch.Tensor:
        """Each mode's fraction of the total variance."""
        return self.variance / self.total_variance

    def scores(self, patches: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Each subject's score on each mode, ``(B, k)``.

        Args:
            patches: ``(B, K, P)`` centred patches (or residuals), zero outside the brain.
            index: int64 ``(K,)`` patch indices of ``patches``' second axis, all among :attr:`tokens`.

        Raises:
            ValueError: a patch of ``index`` is not covered by the modes.
        """
        rows = torch.searchsorted(self.tokens, index).clamp_max(len(self.tokens) - 1)
        if not bool((self.tokens[rows] == index).all()):
            raise ValueError("the modes got patches outside the brain tokens they were fitted on")
        return torch.einsum("bkp,kpm->bm", patches.float(), self.basis[rows])

    def whitened_scores(self, patches: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` divided by each mode's SD: variance 1 over the fitted subjects, every mode alike."""
        return self.scores(patches, index) / self.variance.sqrt()


def fit_principal_modes(batches: Callable[[], Iterable[torch.Tensor]], tokens: torch.Tensor, k: int,
                        iterations: int = 3, oversample: int = 16, seed: int = 0) -> PrincipalModes:
    """Leading principal modes of centred patch batches, without holding the data matrix.

    Args:
        batches: called once per pass; yields centred ``(B, T, P)`` float patch batches (the
            same subjects every pass).
        tokens: int64 ``(T,)`` sorted patch indices of those batches' second axis.
        k: modes to keep.
        iterations: power iterations (passes over the data, besides the last).
        oversample: extra directions carried for accuracy.
        seed: seeds the random start.

    Returns:
        the modes; ``k`` is cut to the number of subjects minus one.

    Raises:
        ValueError: fewer than 3 subjects, or ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"the mode loss needs at least 1 mode, got {k}")
    fitted = principal_subspace(batches, k, iterations, oversample, seed)
    basis = fitted.basis.reshape(len(tokens), -1, fitted.basis.shape[1])
    modes = PrincipalModes(tokens, basis.contiguous(), fitted.variance, fitted.total_variance)
    shares = modes.shares
    log.info("mode loss: %d leading modes of %d training subjects hold %.1f %% of the variance (first %.2f %%, "
             "last %.3f %%)", len(fitted.variance), fitted.subjects, 100 * float(shares.sum()),
             100 * float(shares[0]), 100 * float(shares[-1]))
    return modes


def ridge_patch_maps(tokens: torch.Tensor, targets: torch.Tensor,
                     ridges: tuple[float, ...] = POOL_RIDGES) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch linear maps from tokens to targets, by ridge regression in its dual form.

    Finds ``W`` ``(K, D, k)`` and ``b`` ``(k,)`` with ``sum_p tokens[:, p] @ W[p] + b ≈ targets``. Each
    target gets the penalty of ``ridges`` with the least leave-one-out error, so that a target the
    tokens carry is fitted closely and one they do not (a mode of noise) is shrunk towards its mean
    instead of being interpolated. The dual form costs ``N² K D`` for ``N`` subjects, far fewer than
    the ``K D`` features; one eigendecomposition serves every penalty.

    Args:
        tokens: ``(N, K, D)``, ``N >= 3``.
        targets: ``(N, k)``.
        ridges: penalties to choose from, relative to the mean squared norm of a subject's centred tokens.

    Raises:
        ValueError: the shapes disagree or there are fewer than 3 subjects.
    """
    n, n_tokens, dim = tokens.shape
    if n < 3 or targets.shape[0] != n:
        raise ValueError(f"ridge_patch_maps needs >= 3 subjects and one target row each, got {n} and "
                         f"{targets.shape[0]}")
    flat = tokens.reshape(n, -1).double()
    mean = flat.mean(dim=0)
    flat -= mean
    target_mean = targets.double().mean(dim=0)
    centred = targets.double() - target_mean
    kernel = flat @ flat.T
    eigenvalues, eigenvectors = torch.linalg.eigh(kernel)
    eigenvalues = eigenvalues.clamp_min(0)
    projected = eigenvectors.T @ centred
    scale = float(kernel.diagonal().mean())
    best_error = torch.full((centred.shape[1],), torch.inf, dtype=torch.float64)
    dual = torch.zeros_like(centred)
    for ridge in ridges:
        # leave-one-out residuals of kernel ridge: (y - H y) / (1 - H_ii), H = K (K + λI)^-1 plus the
        # intercept's 1/N (the fit centres tokens and targets)
        shrink = eigenvalues / (eigenvalues + ridge * scale)
        residual = centred - eigenvectors @ (shrink[:, None] * projected)
        leverage = (eigenvectors.pow(2) * shrink).sum(dim=1) + 1 / n
        error = (residual / (1 - leverage)[:, None]).pow(2).mean(dim=0)
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        candidate = eigenvectors @ (projected / (eigenvalues + ridge * scale)[:, None])
        dual[:, better] = candidate[:, better]
    weight = flat.T @ dual
    bias = target_mean - mean @ weight
    return weight.reshape(n_tokens, dim, -1).float(), bias.float()


class ModeTerm(nn.Module):
    """A training term on the fitted modes, worth ``weight * unit`` per unit of its unweighted value.

    Args:
        modes: the fitted modes.
        weight: the term's weight.
        unit: what 1 of the unweighted term is worth in the plain loss's units (the reconstruction
            error of the mean image, so that a weight of 1 makes all modes missed cost as much).
    """

    #: the term's name in errors
    name: ClassVar[str] = "mode term"

    def __init__(self, modes: PrincipalModes, weight: float, unit: float) -> None:
        super().__init__()
        if weight <= 0 or unit <= 0:
            raise ValueError(f"the {self.name} needs a weight > 0 and a unit > 0")
        self.modes = modes
        self.weight = weight
        self.unit = unit


class ModeLoss(ModeTerm):
    """Mean unexplained fraction of each leading mode's variance in the reconstruction (:class:`ModeTerm`)."""

    name = "mode loss"

    def unexplained(self, residual: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Each subject's mean unexplained fraction over the modes, ``(B,)``.

        Args:
            residual: ``(B, K, P)`` prediction minus target, zero outside the brain.
            index: int64 ``(K,)`` patch indices of ``residual``'s second axis, all among the modes' tokens.

        Raises:
            ValueError: a patch of ``index`` is not covered by the modes.
        """
        return (self.modes.scores(residual, index).pow(2) / self.modes.variance).mean(dim=1)

    def forward(self, residual: torch.Tensor, index: torch.Tensor, shard: BatchShard | None = None) -> torch.Tensor:
        """The weighted term of a batch (scalar; with a ``shard``, this process's share of the global batch's)."""
        return self.weight * self.unit * batch_mean(self.unexplained(residual, index), shard)


class LatentModeAnchor(ModeTerm):
    """Mean squared gap between latent dimension ``j`` and the whitened score of mode ``j``, ``j < k``.

    A whitened score has variance 1 over the fitted subjects, so a latent that ignores the modes
    (predicts 0) costs 1 per mode and a perfect one 0: each mode counts the same, as in
    :class:`ModeLoss`. ``k`` must not exceed the latent's width (:class:`ModeTerm` for the arguments).
    """

    name = "latent mode anchor"

    def gap(self, latent: torch.Tensor, patches: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Each subject's mean squared gap over the anchored dimensions, ``(B,)``.

        Args:
            latent: ``(B, D)`` with ``D >= k``.
            patches: ``(B, K, P)`` the model's centred input patches, zero outside the brain.
            index: int64 ``(K,)`` their patch indices.
        """
        k = self.modes.basis.shape[-1]
        if latent.shape[1] < k:
            raise ValueError(f"the latent mode anchor needs at least {k} latent dimensions, got {latent.shape[1]}")
        return (latent[:, :k].float() - self.modes.whitened_scores(patches, index)).pow(2).mean(dim=1)

    def forward(self, latent: torch.Tensor, patches: torch.Tensor, index: torch.Tensor,
                shard: BatchShard | None = None) -> torch.Tensor:
        """The weighted term of a batch (scalar; with a ``shard``, this process's share of the global batch's)."""
        return self.weight * self.unit * batch_mean(self.gap(latent, patches, index), shard)
