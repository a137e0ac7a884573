"""Leading principal directions of data streamed in batches, without holding the data matrix.

Randomised subspace iteration (Halko, Martinsson & Tropp 2011, SIAM Review 53:217): a random start of
``k + oversample`` directions is multiplied by ``X'X`` one batch at a time and re-orthonormalised, and
the leading directions come from a small SVD of the scores in the final subspace. Memory is the width
times ``k + oversample`` (twice), whatever the number of subjects; each iteration is one pass over the
data. Both the mode loss's modes (:mod:`vitudip.model.mode_loss`) and the PCA baseline of the embed
stage (:mod:`vitudip.embed.pca`) are fitted here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from tqdm import tqdm

#: Subjects a fit needs at the least (k is cut to subjects - 1).
MIN_SUBJECTS = 3


@dataclass
class PrincipalSubspace:
    """The leading principal directions of centred data.

    Attributes:
        basis: ``(W, k)`` orthonormal directions over the ``W`` columns, largest variance first.
        variance: ``(k,)`` the variance of the scores on each direction.
        total_variance: the summed variance of every column (all directions), for reporting shares.
        subjects: the number of rows fitted.
    """

    basis: torch.Tensor
    variance: torch.Tensor
    total_variance: float
    subjects: int

    @property
    def shares(self) -> torch.Tensor:
        """Each direction's fraction of the total variance."""
        return self.variance / self.total_variance


def _passes(batches: Callable[[], Iterable[torch.Tensor]], desc: str | None) -> Iterable[torch.Tensor]:
    flat = (batch.reshape(len(batch), -1).float() for batch in batches())
    return tqdm(flat, desc=desc, unit="batch", mininterval=10) if desc else flat


def principal_subspace(batches: Callable[[], Iterable[torch.Tensor]], k: int, iterations: int = 3,
                       oversample: int = 16, seed: int = 0, desc: str | None = None) -> PrincipalSubspace:
    """The ``k`` leading principal directions of centred data streamed in batches.

    Args:
        batches: called once per pass (``iterations + 1`` passes, plus one to see the width); yields centred
            float batches ``(B, ...)``, flattened to ``(B, W)``, the same rows in the same order every pass.
        k: directions to keep; cut to the number of rows minus one.
        iterations: power iterations; 3 makes the leading directions' error negligible next to sampling noise
            when the spectrum decays, as images' do.
        oversample: extra directions carried for accuracy of the last kept ones.
        seed: seeds the random start.
        desc: a progress-bar label for each pass (none when empty).

    Returns:
        the subspace.

    Raises:
        ValueError: ``k < 1``, or fewer than :data:`MIN_SUBJECTS` rows.
    """
    if k < 1:
        raise ValueError(f"principal directions: k must be at least 1, got {k}")
    first = next(iter(batches()))
    width = first[0].numel()
    device = first.device
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(width, k + oversample, generator=generator).to(device))[0]
    for iteration in range(iterations):
        product = torch.zeros_like(q)
        for flat in _passes(batches, desc and f"{desc} (pass {iteration + 1} of {iterations + 1})"):
            product += flat.T @ (flat @ q)
        q = torch.linalg.qr(product)[0]
    scores, total, n = [], 0.0, 0
    for flat in _passes(batches, desc and f"{desc} (pass {iterations + 1} of {iterations + 1})"):
        scores.append(flat @ q)
        total += float(flat.pow(2).sum())
        n += len(flat)
    if n < MIN_SUBJECTS:
        raise ValueError(f"principal directions need at least {MIN_SUBJECTS} subjects, got {n}")
    _, singular, right = torch.linalg.svd(torch.cat(scores), full_matrices=False)
    k = min(k, n - 1)
    return PrincipalSubspace(q @ right.T[:, :k], singular[:k].pow(2) / (n - 1), total / (n - 1), n)
