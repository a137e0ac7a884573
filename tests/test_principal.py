"""The streamed principal-direction fit that the mode loss and the PCA baseline share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitudip.model.principal import principal_subspace


def decaying_data(n: int, width: int, rank: int, seed: int = 0) -> np.ndarray:
    """Centred rows with a spectrum decaying like an image cohort's (variance ~ 1/j), plus noise."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((width, rank)))[0]
    scores = rng.standard_normal((n, rank)) / np.sqrt(np.arange(1, rank + 1))
    data = scores @ directions.T + 0.05 * rng.standard_normal((n, width))
    return data - data.mean(0)


def batches(data: np.ndarray, size: int = 25):
    tensor = torch.from_numpy(data).float()
    return lambda: (tensor[i:i + size] for i in range(0, len(tensor), size))


def test_the_streamed_fit_finds_the_exact_leading_directions_of_a_decaying_spectrum():
    data = decaying_data(n=300, width=1500, rank=200)
    fitted = principal_subspace(batches(data), k=12, seed=3)
    _, singular, right = np.linalg.svd(data, full_matrices=False)
    # the leading directions one by one up to sign (the 9th and 10th have nearly equal variance: only their
    # plane is defined), and the variance all 12 capture, against the exact SVD's
    cosines = np.abs(np.sum(fitted.basis.numpy() * right[:12].T, axis=0))
    assert cosines[:8].min() > 0.99
    captured = float(((data @ fitted.basis.numpy()) ** 2).sum())
    assert captured > 0.995 * float((singular[:12] ** 2).sum())
    np.testing.assert_allclose(fitted.variance.numpy()[:6], singular[:6] ** 2 / 299, rtol=0.01)
    assert fitted.total_variance == pytest.approx(float((data ** 2).sum()) / 299, rel=1e-4)
    assert fitted.subjects == 300 and np.allclose(fitted.basis.T @ fitted.basis, np.eye(12), atol=1e-4)


def test_no_more_directions_than_subjects_minus_one_and_too_few_subjects_refused():
    data = decaying_data(n=8, width=50, rank=5)
    assert principal_subspace(batches(data, 3), k=20).basis.shape == (50, 7)
    with pytest.raises(ValueError, match="at least 3 subjects, got 2"):
        principal_subspace(batches(data[:2]), k=2)
    with pytest.raises(ValueError, match="k must be at least 1"):
        principal_subspace(batches(data), k=0)


def test_rows_are_multiplied_in_chunks_of_the_byte_budget_with_the_same_fit(monkeypatch):
    from vitudip.model import principal

    data = decaying_data(n=90, width=400, rank=40)
    seen = []
    real_chunks = principal._chunks

    def recording(flats, rows):
        for chunk in real_chunks(flats, rows):
            seen.append(len(chunk))
            yield chunk

    monkeypatch.setattr(principal, "_chunks", recording)
    # 40 rows of 400 float32 columns per chunk, from batches of 7: chunks of 42 rows, the last one what is left
    monkeypatch.setattr(principal, "CHUNK_BYTES", 40 * 400 * 4)
    chunked = principal_subspace(batches(data, 7), k=10, seed=1)
    assert seen[:3] == [42, 42, 6]
    monkeypatch.setattr(principal, "CHUNK_BYTES", 1)
    seen.clear()
    batchwise = principal_subspace(batches(data, 7), k=10, seed=1)
    assert seen[:13] == [7] * 12 + [6]
    np.testing.assert_allclose(np.abs(chunked.basis.numpy()), np.abs(batchwise.basis.numpy()), atol=1e-4)
    np.testing.assert_allclose(chunked.variance.numpy(), batchwise.variance.numpy(), rtol=1e-5)
