"""Embedding health: the spectrum, its warning, and the options that keep every dimension informative."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vitudip.embed.spectrum import (
    Spectrum,
    correlation_eigenvalues,
    dims_for_share,
    participation_ratio,
    read_health,
    read_spectrum,
    write_spectrum,
)
from vitudip.embed.vit import embed_vit
from vitudip.model.blocks import AttentivePool, PatchLinearPool
from vitudip.model.latent_penalty import LatentSpreadPenalty
from vitudip.model.patches import patchify
from vitudip.model.vit_autoencoder import ModelConfig, ViTAutoEncoder, preset

from test_train import run_training, small_config, write_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def collapsed(n: int = 500, d: int = 128, rank: int = 2, seed: int = 0) -> np.ndarray:
    """``d`` columns that are ``rank`` traits mixed, plus a trace of noise."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) + 1e-3 * rng.standard_normal((n, d))


def test_a_rank_2_latent_gets_a_low_participation_ratio_and_the_warning(tmp_path, caplog):
    spectrum = Spectrum.of(collapsed())
    assert spectrum.participation_ratio < 2.0 + 1e-6
    assert spectrum.dims_90pct <= 2
    assert spectrum.is_low() and spectrum.status().startswith("low: participation ratio")
    with caplog.at_level(logging.WARNING, logger="vitudip.embed"):
        write_spectrum(collapsed(), "vit", tmp_path / "spectrum.tsv", tmp_path / "health.tsv")
    assert "collapsed" in caplog.text
    health = read_health(tmp_path / "health.tsv").iloc[0]
    assert health["status"].startswith("low") and health["dimensions"] == 128
    table = read_spectrum(tmp_path / "spectrum.tsv")
    assert len(table) == 128 and table["cumulative_fraction"].iloc[-1] == pytest.approx(1.0)
    assert (np.diff(table["eigenvalue"]) <= 1e-9).all()


def test_independent_columns_are_healthy():
    values = np.random.default_rng(1).standard_normal((4000, 128))
    spectrum = Spectrum.of(values)
    # sampling noise alone lowers it a little below 128
    assert 110 < spectrum.participation_ratio <= 128
    assert spectrum.status() == "ok"
    assert spectrum.dims_90pct > 100


def test_participation_ratio_and_share_on_known_spectra():
    assert participation_ratio(np.ones(10)) == pytest.approx(10)
    assert participation_ratio(np.array([5.0, 0, 0])) == pytest.approx(1)
    assert participation_ratio(np.zeros(3)) == 0.0
    assert dims_for_share(np.array([6.0, 3.0, 1.0]), 0.9) == 2
    assert dims_for_share(np.array([6.0, 3.0, 1.0]), 0.95) == 3


def test_constant_columns_count_as_empty_not_as_an_error():
    values = np.random.default_rng(2).standard_normal((50, 4))
    values[:, 2] = 7.0
    eigenvalues, constant = correlation_eigenvalues(values)
    assert constant == 1 and len(eigenvalues) == 4
    assert eigenvalues.sum() == pytest.approx(3.0)


def test_more_dimensions_than_subjects_uses_the_small_side():
    values = np.random.default_rng(3).standard_normal((10, 128))
    eigenvalues, _ = correlation_eigenvalues(values)
    assert len(eigenvalues) == 128 and eigenvalues.sum() == pytest.approx(128)
    assert (eigenvalues[10:] < 1e-8).all()


def test_the_penalty_is_low_for_spread_latents_and_high_for_copies():
    spread = torch.randn(256, 16)
    copies = torch.randn(256, 1).expand(-1, 16) + 0.01 * torch.randn(256, 16)
    penalty = LatentSpreadPenalty(16, variance_weight=0.0, covariance_weight=1.0)
    assert penalty(copies) > 10 * penalty(spread)
    hinge = LatentSpreadPenalty(16, variance_weight=1.0, covariance_weight=0.0)
    assert hinge(0.01 * spread) > 0.9 and hinge(3 * spread) == 0


def test_the_penalty_passes_gradient_and_is_zero_for_one_subject():
    penalty = LatentSpreadPenalty(8, 1.0, 1.0)
    latent = torch.randn(8, 8, requires_grad=True)
    penalty(latent).backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
    assert penalty(torch.randn(1, 8)) == 0


def test_the_penalty_raises_the_participation_ratio_of_a_small_model(tmp_path):
    """Six boxes, each a factor; a short run collapses the plain latent, the penalty keeps it spread."""
    boxes = [np.s_[x:x + 6, y:y + 6, 12:20] for x in (6, 13, 20) for y in (8, 18)]
    write_cohort(tmp_path, boxes, n=80)
    ratios = {}
    for name, weights in (("plain", {}), ("penalty", {"latent_variance_weight": 1.0,
                                                       "latent_covariance_weight": 1.0})):
        config = small_config(encoder_dim=24, latent_norm=True, latent_to_queries="per_patch", **weights)
        _, outputs = run_training(tmp_path, tmp_path / name, config, epochs=6, lr=3e-3, batch_size=8)
        _, latents, _ = embed_vit(outputs["model"], tmp_path / "cache", tmp_path / "qc.tsv",
                                  tmp_path / "splits.tsv", ["train", "val", "test"], device="cpu")
        ratios[name] = Spectrum.of(latents).participation_ratio
    assert ratios["penalty"] > 1.5 * ratios["plain"], ratios


def test_training_metrics_carry_the_latent_participation_ratio(tmp_path):
    write_cohort(tmp_path, [np.s_[10:20, 10:20, 10:20]], n=40)
    metrics, _ = run_training(tmp_path, tmp_path / "run", small_config(latent_covariance_weight=0.1), epochs=2)
    assert {"val_participation_ratio", "train_penalty"} <= set(metrics.columns)
    assert metrics["val_participation_ratio"].between(1.0, 24.0).all()
    assert (metrics["train_penalty"] > 0).all()


@pytest.mark.parametrize("pooling", ["attentive", "per_patch"])
def test_learned_pooling_ignores_dropped_patches_and_differs_from_the_mean(pooling):
    torch.manual_seed(0)
    config = ModelConfig(image_size=(16, 16, 16), patch_size=(4, 4, 4), encoder_dim=32, encoder_depth=1,
                         encoder_heads=4, decoder_dim=16, decoder_depth=1, decoder_heads=4, pooling=pooling,
                         pool_queries=8)
    model = ViTAutoEncoder(config).eval()
    x = torch.randn(2, 16, 16, 16)
    kept = torch.arange(0, 64, 3)
    other = x.clone()
    dropped = torch.ones(64, dtype=torch.bool)
    dropped[kept] = False
    # change every voxel of every dropped patch
    patches = patchify(other, config.patch_size)
    patches[:, dropped] += 5.0
    from vitudip.model.patches import unpatchify
    other = unpatchify(patches, config.image_size, config.patch_size)[:, 0]
    with torch.no_grad():
        tokens, latent = model.encode(x, kept)
        _, latent_other = model.encode(other, kept)
    assert torch.equal(latent, latent_other)
    assert latent.shape == (2, 32)
    assert not torch.allclose(latent, tokens.mean(1))


def test_per_patch_pooling_gives_each_patch_its_own_map():
    """A token moved at one patch moves the latent by that patch's map, not by the shared mean's."""
    torch.manual_seed(0)
    pool = PatchLinearPool(n_patches=6, dim=4)
    with torch.no_grad():
        pool.weight.copy_(torch.randn(6, 4, 4))
    tokens = torch.zeros(1, 3, 4)
    tokens[0, 1, 0] = 1.0
    index = torch.tensor([0, 4, 5])
    expected = pool.weight[4, 0] / 3**0.5
    assert torch.allclose(pool(tokens, index)[0], expected)
    assert not torch.allclose(pool(tokens, torch.tensor([0, 3, 5]))[0], expected)


def test_attentive_pooling_needs_queries_that_divide_the_width():
    with pytest.raises(ValueError, match="pool_queries"):
        small_config(pooling="attentive", pool_queries=5)
    with pytest.raises(ValueError, match="divides the width"):
        AttentivePool(24, 5, 2)


def test_the_reference_preset_is_the_published_model():
    config = preset("reference")
    assert (config.pooling, config.latent_norm, config.latent_to_queries) == ("mean", False, "none")
    torch.manual_seed(0)
    model = ViTAutoEncoder(config).eval()
    assert sum(p.numel() for p in model.parameters()) == 3_593_088
    assert not any("pool" in name for name, _ in model.named_parameters())


def test_the_reference_preset_gives_the_same_outputs_as_before_the_new_options():
    """Golden numbers of the published model on a fixed seed and input, computed at 95b980b (before pooling
    and the latent penalty existed): a change to the reference path changes them."""
    torch.manual_seed(0)
    model = ViTAutoEncoder(preset("reference")).eval()
    x = torch.randn(1, 182, 224, 182, generator=torch.Generator().manual_seed(1))
    index = torch.arange(0, 2366, 37)
    with torch.no_grad():
        prediction, latent = model(x, index)
    assert float(latent.double().abs().sum()) == pytest.approx(44.53451372496784, rel=1e-5)
    assert float(prediction.double().abs().sum()) == pytest.approx(25605.16470474035, rel=1e-5)


def test_nested_dropout_keeps_a_prefix_of_each_latent_and_only_in_training():
    from vitudip.model.vit_autoencoder import nested_dropout_mask

    torch.manual_seed(0)
    mask = nested_dropout_mask(torch.zeros(500, 16))
    kept = mask.sum(1)
    assert ((mask[:, 1:] <= mask[:, :-1]).all() and kept.min() >= 1 and kept.max() == 16
            and (mask[:, 0] == 1).all())
    assert 6 < float(kept.mean()) < 11  # uniform over 1 .. 16
    model = ViTAutoEncoder(small_config(nested_dropout=True, latent_norm=True, latent_to_queries="per_patch"))
    latent = torch.randn(4, 24)
    index = torch.arange(8)
    model.eval()
    assert torch.equal(model.decode(latent, index), model.decode(latent, index))
    model.train()
    outputs = {tuple(model.decode(latent, index)[0, 0, :3].tolist()) for _ in range(8)}
    assert len(outputs) > 1


def test_the_informative_preset_is_the_published_size_with_the_spread_options():
    reference, informative = preset("reference"), preset("informative")
    for name in ("image_size", "patch_size", "encoder_dim", "encoder_depth", "decoder_dim", "decoder_depth"):
        assert getattr(informative, name) == getattr(reference, name), name
    assert informative.nested_dropout and informative.latent_covariance_weight > 0
    assert informative.latent_to_queries == "per_patch" and informative.latent_norm
    assert informative.pooling == "per_patch" and informative.pool_from_modes
    assert informative.latent_mode_weight > 0 and informative.mode_loss_modes == informative.encoder_dim
