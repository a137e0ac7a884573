"""The mode terms: the fitted modes, the mode loss's equal weighting of modes, the latent anchor, and what
they change in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitudip.embed.truth import cross_validated_r2
from vitudip.embed.vit import embed_vit
from vitudip.model.blocks import PatchLinearPool
from vitudip.model.config import ModelConfig
from vitudip.model.mode_loss import LatentModeAnchor, ModeLoss, fit_principal_modes, ridge_patch_maps

from test_train import run_training, small_config, write_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def low_rank_patches(n: int = 60, tokens: int = 5, voxels: int = 8, sds=(10.0, 3.0, 1.0, 0.3), seed: int = 0):
    """Centred ``(n, tokens, voxels)`` data of known orthonormal modes with the given score SDs, plus noise."""
    rng = np.random.default_rng(seed)
    width = tokens * voxels
    directions = np.linalg.qr(rng.standard_normal((width, len(sds))))[0]
    scores = rng.standard_normal((n, len(sds))) * np.asarray(sds)
    data = scores @ directions.T + 0.01 * rng.standard_normal((n, width))
    data -= data.mean(0)
    return torch.from_numpy(data.reshape(n, tokens, voxels)).float(), directions


def batches_of(data: torch.Tensor, size: int = 16):
    return lambda: (data[i:i + size] for i in range(0, len(data), size))


def test_the_fitted_modes_are_the_data_s_principal_directions_and_variances():
    data, directions = low_rank_patches()
    modes = fit_principal_modes(batches_of(data), torch.arange(5), k=4)
    exact = np.linalg.svd(data.reshape(len(data), -1).numpy().astype(np.float64), full_matrices=False)
    basis = modes.basis.reshape(-1, 4).numpy()
    # the same subspace as the exact SVD's first 4 directions, one by one up to sign
    np.testing.assert_allclose(np.abs(np.sum(basis * exact[2][:4].T, axis=0)), 1.0, atol=1e-4)
    np.testing.assert_allclose(modes.variance.numpy(), exact[1][:4] ** 2 / (len(data) - 1), rtol=1e-4)
    assert abs(float(modes.shares.sum()) - 1.0) < 1e-3  # 4 modes hold all but the noise


def test_every_mode_counts_the_same_however_small():
    data, _ = low_rank_patches()
    modes = fit_principal_modes(batches_of(data), torch.arange(5), k=4)
    loss = ModeLoss(modes, weight=1.0, unit=1.0)
    index = torch.arange(5)
    # predicting the mean (residual = -data) leaves every mode unexplained: 1 on average over the subjects
    assert float(loss.unexplained(-data, index).mean()) == pytest.approx(1.0, rel=0.02)
    assert float(loss.unexplained(torch.zeros_like(data), index).max()) == 0.0
    # missing only the largest or only the smallest mode costs the same: a quarter
    scores = torch.einsum("bkp,kpm->bm", data, modes.basis)
    for m in (0, 3):
        missed = torch.einsum("b,kp->bkp", scores[:, m], modes.basis[..., m])
        assert float(loss.unexplained(missed, index).mean()) == pytest.approx(0.25, rel=0.02)
    # while the plain squared error of those two residuals differs by the modes' variance ratio (~1000x)
    big = torch.einsum("b,kp->bkp", scores[:, 0], modes.basis[..., 0]).pow(2).mean()
    small = torch.einsum("b,kp->bkp", scores[:, 3], modes.basis[..., 3]).pow(2).mean()
    assert float(big / small) > 300


def test_a_patch_outside_the_fitted_tokens_is_refused():
    data, _ = low_rank_patches()
    modes = fit_principal_modes(batches_of(data), torch.tensor([1, 3, 4, 7, 9]), k=2)
    loss = ModeLoss(modes, weight=1.0, unit=1.0)
    assert loss.unexplained(data[:, :2], torch.tensor([3, 7])).shape == (len(data),)
    with pytest.raises(ValueError, match="outside the brain tokens"):
        loss.unexplained(data[:, :2], torch.tensor([3, 5]))


def test_the_mode_loss_needs_centred_images(tmp_path):
    write_cohort(tmp_path, [np.s_[10:20, 10:20, 10:20]])
    with pytest.raises(ValueError, match="train.center"):
        run_training(tmp_path, tmp_path / "run", small_config(mode_loss_weight=1.0), epochs=1, center=False)


def test_the_mode_loss_makes_a_short_run_carry_a_small_factor(tmp_path):
    """One bright large box and one faint small box; with the same budget, the plain error learns the
    large one and little of the small one, and the mode loss teaches both."""
    boxes = [np.s_[6:26, 6:26, 6:16], np.s_[12:18, 12:18, 18:24]]
    factors = write_cohort(tmp_path, boxes, n=80, amplitudes=(1.0, 0.15))
    r2 = {}
    for name, weight in (("plain", 0.0), ("modes", 1.0)):
        config = small_config(latent_norm=True, latent_to_queries="per_patch", mode_loss_weight=weight,
                              mode_loss_modes=4)
        metrics, outputs = run_training(tmp_path, tmp_path / name, config, epochs=6, lr=3e-3, batch_size=8)
        _, latents, _ = embed_vit(outputs["model"], tmp_path / "cache", tmp_path / "qc.tsv",
                                  tmp_path / "splits.tsv", ["train", "val", "test"], device="cpu")
        r2[name] = cross_validated_r2(latents, factors[:, 1])
        assert (metrics["train_mode_loss"] > 0).all() == (weight > 0)
    assert r2["modes"] > r2["plain"] + 0.1, r2


def test_the_latent_anchor_asks_each_dimension_for_its_mode_s_whitened_score():
    data, _ = low_rank_patches()
    modes = fit_principal_modes(batches_of(data), torch.arange(5), k=4)
    anchor = LatentModeAnchor(modes, weight=1.0, unit=1.0)
    index = torch.arange(5)
    whitened = torch.einsum("bkp,kpm->bm", data, modes.basis) / modes.variance.sqrt()
    spare = torch.randn(len(data), 3)  # dimensions beyond the anchored 4 are free
    assert float(anchor.gap(torch.cat([whitened, spare], 1), data, index).max()) < 1e-6
    # a latent that ignores the modes costs 1 per mode, the smallest mode as much as the largest
    assert float(anchor.gap(torch.zeros(len(data), 7), data, index).mean()) == pytest.approx(1.0, rel=0.02)
    for m in (0, 3):
        missed = whitened.clone()
        missed[:, m] = 0
        assert float(anchor.gap(missed, data, index).mean()) == pytest.approx(0.25, rel=0.02)
    # the dimension of each mode is its own: the right scores in the wrong order cost as much as none
    assert float(anchor.gap(whitened.flip(1), data, index).mean()) > 0.9
    with pytest.raises(ValueError, match="at least 4 latent dimensions"):
        anchor.gap(whitened[:, :3], data, index)


def test_the_latent_anchor_needs_a_dimension_per_mode():
    with pytest.raises(ValueError, match="must not exceed encoder_dim"):
        small_config(latent_mode_weight=1.0, mode_loss_modes=25)
    assert small_config(latent_mode_weight=0.0, mode_loss_modes=25).mode_loss_modes == 25
    values = {**small_config(mode_loss_modes=4).to_dict(), "latent_mode_weight": 0.5}
    assert ModelConfig.from_dict(values).latent_mode_weight == 0.5


def test_the_latent_anchor_puts_a_small_factor_in_its_own_dimension(tmp_path):
    """A bright large box and a faint small one: with the anchor, a per-patch pooled latent carries the
    small box in one dimension (as its principal component does) after a short run; without it, not."""
    boxes = [np.s_[6:26, 6:26, 6:16], np.s_[12:18, 12:18, 18:24]]
    factors = write_cohort(tmp_path, boxes, n=80, amplitudes=(1.0, 0.15))
    best = {}
    for name, weight in (("plain", 0.0), ("anchored", 1.0)):
        config = small_config(pooling="per_patch", latent_norm=True, mode_loss_modes=4, latent_mode_weight=weight)
        metrics, outputs = run_training(tmp_path, tmp_path / name, config, epochs=4, lr=3e-3, batch_size=8)
        _, latents, _ = embed_vit(outputs["model"], tmp_path / "cache", tmp_path / "qc.tsv",
                                  tmp_path / "splits.tsv", ["train", "val", "test"], device="cpu")
        r = [abs(np.corrcoef(latents[:, j], factors[:, 1])[0, 1]) for j in range(latents.shape[1])]
        best[name] = max(r)
        assert (metrics["train_mode_loss"] > 0).all() == (weight > 0)
    assert best["anchored"] > 0.8 and best["anchored"] > best["plain"] + 0.2, best


def test_ridge_patch_maps_find_a_linear_map_of_the_tokens():
    rng = np.random.default_rng(1)
    tokens = torch.from_numpy(rng.standard_normal((200, 3, 4))).float() + 5.0  # far from centred
    truth = torch.from_numpy(rng.standard_normal((3, 4, 2))).float()
    targets = torch.einsum("nkd,kde->ne", tokens, truth) + torch.tensor([2.0, -1.0])
    weight, bias = ridge_patch_maps(tokens, targets, ridges=(1e-8,))
    np.testing.assert_allclose(weight.numpy(), truth.numpy(), atol=1e-3)
    np.testing.assert_allclose(bias.numpy(), [2.0, -1.0], atol=1e-2)
    with pytest.raises(ValueError, match="one target row each"):
        ridge_patch_maps(tokens, targets[:10])


def test_ridge_patch_maps_shrink_a_target_the_tokens_do_not_carry():
    """More features than subjects: a target of noise would be interpolated by a small penalty, and
    predict wildly on new subjects; the leave-one-out choice shrinks it, and fits the real target closely."""
    rng = np.random.default_rng(2)
    tokens = torch.from_numpy(rng.standard_normal((120, 10, 8))).float()
    signal = tokens[:, 0, 0] + tokens[:, 3, 2]
    targets = torch.stack([signal, torch.from_numpy(rng.standard_normal(120)).float()], dim=1)
    weight, bias = ridge_patch_maps(tokens[:80], targets[:80])
    predicted = torch.einsum("nkd,kde->ne", tokens[80:], weight) + bias
    assert float(np.corrcoef(predicted[:, 0], targets[80:, 0])[0, 1]) > 0.8
    assert float(predicted[:, 1].std()) < 0.3 * float(targets[80:, 1].std())


def test_a_pool_s_set_maps_give_its_first_channels_and_leave_the_rest():
    pool = PatchLinearPool(n_patches=6, dim=4)
    torch.nn.init.normal_(pool.weight)
    before = pool.weight.detach().clone()
    index = torch.tensor([1, 4, 5])
    weight, bias = torch.randn(3, 4, 2), torch.tensor([0.5, -0.5])
    pool.set_maps(index, weight, bias)
    tokens = torch.randn(7, 3, 4)
    with torch.no_grad():
        pooled = pool(tokens, index)
    np.testing.assert_allclose(pooled[:, :2].numpy(), (torch.einsum("nkd,kde->ne", tokens, weight) + bias).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert torch.equal(pool.weight[:, :, 2:].detach(), before[:, :, 2:])
    assert torch.equal(pool.weight[[0, 2, 3]].detach(), before[[0, 2, 3]])


def test_the_pool_start_needs_per_patch_pooling_and_a_dimension_per_mode():
    with pytest.raises(ValueError, match="pool_from_modes needs pooling: per_patch"):
        small_config(pool_from_modes=True)
    with pytest.raises(ValueError, match="must not exceed encoder_dim"):
        small_config(pooling="per_patch", pool_from_modes=True, mode_loss_modes=25)
    assert small_config(pooling="per_patch", pool_from_modes=True, mode_loss_modes=4).uses_modes


def test_the_pool_start_needs_the_union_s_fixed_tokens(tmp_path):
    write_cohort(tmp_path, [np.s_[10:20, 10:20, 10:20]])
    config = small_config(pooling="per_patch", pool_from_modes=True, mode_loss_modes=4)
    with pytest.raises(ValueError, match="pool_from_modes needs model.token_selection: union, got 'batch'"):
        run_training(tmp_path, tmp_path / "run", config, epochs=1, token_selection="batch")


def test_a_pool_started_from_the_modes_carries_a_small_factor_before_any_learning(tmp_path, caplog):
    """With a learning rate too small to learn anything, only the start can put the faint small box in a
    dimension of its own: with the closed-form start it is there; from the random start it is not."""
    boxes = [np.s_[6:26, 6:26, 6:16], np.s_[12:18, 12:18, 18:24]]
    factors = write_cohort(tmp_path, boxes, n=80, amplitudes=(1.0, 0.15))
    best = {}
    for started in (False, True):
        config = small_config(pooling="per_patch", latent_norm=True, mode_loss_modes=4, pool_from_modes=started)
        with caplog.at_level("INFO", logger="vitudip.train"):
            _, outputs = run_training(tmp_path, tmp_path / str(started), config, epochs=1, lr=1e-9, batch_size=8)
        _, latents, _ = embed_vit(outputs["model"], tmp_path / "cache", tmp_path / "qc.tsv",
                                  tmp_path / "splits.tsv", ["train", "val", "test"], device="cpu")
        best[started] = max(abs(np.corrcoef(latents[:, j], factors[:, 1])[0, 1]) for j in range(latents.shape[1]))
    assert best[True] > 0.7 and best[True] > best[False] + 0.3, best
    assert caplog.text.count("pool started from the modes") == 1
