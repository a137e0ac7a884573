"""Leading principal directions of data streamed in batches, without holding the data matrix.

Randomised subspace iteration (Halko, Martinsson & Tropp 2011, SIAM Review 53:217): a random start of
``k + oversample`` directions is multiplied by ``X'X`` a chunk of rows at a time and re-orthonormalised, and
the leading directions come from a small SVD of the scores in the final subspace. Memory is the width
times ``k + oversample`` (twice) plus a chunk of :data:`CHUNK_BYTES` (twice while it is joined), whatever
the number of subjects; each iteration is one pass over the data. Both the mode loss's modes
(:mod:`vitudip.model.mode_loss`) and the PCA baseline of the embed
stage (:mod:`vitudip.embed.pca`) are fitted here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from tqdm import tqdm

#: Subjects a fit needs at the least (k is cut to subjects - 1).
MIN_SUBJECTS = 3

#: Rows are multiplied with the subspace in chunks of about this many bytes (but at least one batch): each product
#: reads and writes the whole ``(W, k + oversample)`` subspace, so a training batch of 8 rows at a time made a pass
#: memory-bound: the products of a pass over the demo's 840 subjects took 15.8 s on 2 Xeon cores, 2.4 s in chunks
#: of 192 rows (bench/principal_chunks.py).
CHUNK_BYTES = 256 * 2**20


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


def _chunks(flats: Iterable[torch.Tensor], rows: int) -> Iterator[torch.Tensor]:
    """The rows of ``flats`` in order, regrouped into chunks of at least ``rows`` (the last one may be smaller)."""
    held: list[torch.Tensor] = []
    count = 0
    for flat in flats:
        held.append(flat)
        count += len(flat)
        if count >= rows:
            yield torch.cat(held) if len(held) > 1 else held[0]
            held, count = [], 0
    if held:
        yield torch.cat(held) if len(held) > 1 else held[0]


def _passes(batches: Callable[[], Iterable[torch.Tensor]], desc: str | None, rows: int) -> Iterable[torch.Tensor]:
    flat = _chunks((batch.reshape(len(batch), -1).float() for batch in batches()), rows)
    return tqdm(flat, desc=desc, unit="chunk", mininterval=10) if desc else flat


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
    rows = max(1, CHUNK_BYTES // (4 * width))
    device = first.device
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(width, k + oversample, generator=generator).to(device))[0]
    for iteration in range(iterations):
        product = torch.zeros_like(q)
        for flat in _passes(batches, desc and f"{desc} (pass {iteration + 1} of {iterations + 1})", rows):
            product += flat.T @ (flat @ q)
        q = torch.linalg.qr(product)[0]
    scores, total, n = [], 0.0, 0
    for flat in _passes(batches, desc and f"{desc} (pass {iterations + 1} of {iterations + 1})", rows):
        scores.append(flat @ q)
        total += float(flat.pow(2).sum())
        n += len(flat)
    if n < MIN_SUBJECTS:
        raise ValueError(f"principal directions need at least {MIN_SUBJECTS} subjects, got {n}")
    _, singular, right = torch.linalg.svd(torch.cat(scores), full_matrices=False)
    k = min(k, n - 1)
    return PrincipalSubspace(q @ right.T[:, :k], singular[:k].pow(2) / (n - 1), total / (n - 1), n)
