"""The ViT-UDIP autoencoder: position embedding, patch transforms, model, loss, init and config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitudip.model import (
    ModelConfig,
    RunningStandardize,
    ViTAutoEncoder,
    masked_patch_mse,
    nonempty_patches,
    patch_grid,
    patchify,
    preset,
    sincos_position_embedding_3d,
    unpatchify,
)

SMALL = dict(
    image_size=(32, 32, 32),
    patch_size=(8, 8, 8),
    encoder_dim=32,
    encoder_depth=2,
    encoder_heads=4,
    decoder_dim=16,
    decoder_depth=2,
    decoder_heads=4,
)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run on one intra-op thread: the tensors here are tiny, and on a busy machine
    synchronising two threads per op made the training test ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- position embedding ---------------------------------------------------------------------------


def test_position_embedding_shape_deterministic_distinct():
    grid = (3, 4, 5)
    emb = sincos_position_embedding_3d(grid, 48)
    assert emb.shape == (60, 48)
    assert emb.dtype == torch.float32
    assert torch.equal(emb, sincos_position_embedding_3d(grid, 48))
    assert torch.unique(emb, dim=0).shape[0] == 60
    # token 0 sits at the origin: sin 0 = 0, cos 0 = 1 on every axis
    n = 48 // 6
    expected_origin = torch.tensor(([0.0] * n + [1.0] * n) * 3)
    assert torch.allclose(emb[0], expected_origin)


def test_position_embedding_pads_with_zero_channels():
    emb = sincos_position_embedding_3d((2, 3, 4), 128)  # 3 axes x 2 x 21 = 126 channels used
    assert torch.all(emb[:, 126:] == 0)
    assert torch.all(emb[:, :126].abs().sum(dim=0) > 0)
    with pytest.raises(ValueError, match="dim"):
        sincos_position_embedding_3d((2, 2, 2), 5)


# --- patches ----------------------------------------------------------------------------------------


def test_patchify_unpatchify_are_inverse():
    x = torch.randn(2, 1, 8, 12, 6)
    patches = patchify(x, (4, 3, 2))
    assert patches.shape == (2, 2 * 4 * 3, 4 * 3 * 2)
    assert torch.equal(unpatchify(patches, (8, 12, 6), (4, 3, 2)), x)
    # a channel-less batch gives the same patches
    assert torch.equal(patchify(x[:, 0], (4, 3, 2)), patches)
    with pytest.raises(ValueError, match=r"image_size.*patch_size"):
        patch_grid((8, 12, 7), (4, 3, 2))


def test_patch_order_matches_position_embedding_grid():
    image_size, patch_size = (6, 8, 10), (2, 4, 5)
    grid = patch_grid(image_size, patch_size)
    # label every voxel with the C-order index of the patch it falls in
    ix, iy, iz = np.meshgrid(*(np.arange(s) // p for s, p in zip(image_size, patch_size)), indexing="ij")
    labels = torch.from_numpy(np.ravel_multi_index((ix, iy, iz), grid))[None]
    patches = patchify(labels, patch_size)[0]
    for t in range(math.prod(grid)):
        assert torch.all(patches[t] == t)
    # and the embedding's row t is the one of grid cell unravel_index(t, grid)
    emb = sincos_position_embedding_3d(grid, 12)
    freq0_sin = emb[:, [0, 4, 8]]  # first-frequency sine of each axis = sin(coordinate)
    coords = np.stack(np.unravel_index(np.arange(math.prod(grid)), grid), axis=1)
    assert torch.allclose(freq0_sin, torch.sin(torch.from_numpy(coords).float()))


def test_nonempty_patches_known_mask_and_batch_union():
    patch_size = (2, 2, 2)
    mask = torch.zeros(4, 4, 4, dtype=torch.bool)  # grid 2x2x2
    mask[0, 0, 0] = True  # patch (0,0,0) -> 0
    mask[3, 2, 1] = True  # patch (1,1,0) -> 6
    assert nonempty_patches(mask, patch_size).tolist() == [0, 6]
    other = torch.zeros_like(mask)
    other[1, 3, 3] = True  # patch (0,1,1) -> 3
    union = nonempty_patches(torch.stack([mask, other]), patch_size)
    assert union.dtype == torch.int64
    assert union.tolist() == [0, 3, 6]


# --- model shapes and sizes -------------------------------------------------------------------------


def test_small_model_shapes():
    config = ModelConfig(**SMALL)
    model = ViTAutoEncoder(config)
    token_index = torch.tensor([0, 5, 17, 63])
    x = torch.randn(3, 1, 32, 32, 32)
    tokens, latent = model.encode(x, token_index)
    assert tokens.shape == (3, 4, 32) and latent.shape == (3, 32)
    prediction, latent2 = model(x, token_index)
    assert prediction.shape == (3, 4, 512)
    assert torch.equal(latent, latent2)
    volume = model.reconstruct(x, token_index)
    assert volume.shape == (3, 1, 32, 32, 32)
    dropped = torch.ones(64, dtype=torch.bool)
    dropped[token_index] = False
    assert torch.all(patchify(volume, config.patch_size)[:, dropped] == 0)
    assert torch.equal(patchify(volume, config.patch_size)[:, token_index], prediction)


def test_demo_preset_shapes():
    config = preset("demo")
    assert config.grid == (12, 14, 12) and config.n_tokens == 2016 and config.patch_voxels == 512
    model = ViTAutoEncoder(config)
    token_index = torch.arange(0, 2016, 50)
    with torch.no_grad():
        prediction, latent = model(torch.randn(1, 1, 96, 112, 96), token_index)
    assert prediction.shape == (1, len(token_index), 512)
    assert latent.shape == (1, 128)
    # 0 pos + embed 512*128+128 + 4 enc blocks (12*128^2+13*128) + norm 2*128
    # + Linear 128*64+64 + 2 dec blocks (12*64^2+13*64) + norm 2*64 + head 64*512+512
    # + per-patch latent projections 2016*128*64 + the per-patch pool 2016*128*128+128
    expected = 65_664 + 4 * 198_272 + 256 + 8_256 + 2 * 49_984 + 128 + 33_280 + 16_515_072 + 33_030_272
    assert n_parameters(model) == expected == 50_545_984


def test_reference_preset_grid_and_parameter_count():
    config = preset("reference")
    assert config.image_size == (182, 224, 182) and config.patch_size == (14, 16, 14)
    assert config.grid == (13, 14, 13) and config.n_tokens == 2366
    assert config.patch_voxels == 3136
    model = ViTAutoEncoder(config)
    # A pre-norm block of width d, MLP 4d: 2 LayerNorms 4d, qkv 3d^2+3d, proj d^2+d,
    # fc1 4d^2+4d, fc2 4d^2+d  ->  12 d^2 + 13 d.
    encoder_block = 12 * 128**2 + 13 * 128  # 198,272
    decoder_block = 12 * 64**2 + 13 * 64  # 49,984
    expected = (
        3136 * 128 + 128  # patch embedding   401,536
        + 12 * encoder_block  # 2,379,264
        + 2 * 128  # encoder norm
        + 128 * 64 + 64  # latent -> decoder width   8,256
        + 12 * decoder_block  # 599,808
        + 2 * 64  # decoder norm
        + 64 * 3136 + 3136  # head   203,840
    )
    assert expected == 3_593_088
    assert n_parameters(model) == expected
    # the position embeddings are fixed buffers, not parameters and not in the state dict
    assert not any("pos" in name for name in model.state_dict())
    assert model.encoder_pos.shape == (2366, 128) and model.decoder_pos.shape == (2366, 64)


def test_encoder_ignores_dropped_patches():
    torch.manual_seed(0)
    config = ModelConfig(**SMALL)
    model = ViTAutoEncoder(config).eval()
    token_index = torch.tensor([1, 2, 9, 40, 41])
    x = torch.randn(2, 1, 32, 32, 32)
    changed = x.clone()
    changed[:, :, :8, :8, :8] = 100.0  # patch 0, not kept
    with torch.no_grad():
        tokens, latent = model.encode(x, token_index)
        tokens2, latent2 = model.encode(changed, token_index)
        # the same change inside a kept patch (patch 1 = x[:8, :8, 8:16]) must matter
        changed[:, :, :8, :8, 8:16] = 100.0
        _, latent3 = model.encode(changed, token_index)
    assert torch.equal(tokens, tokens2) and torch.equal(latent, latent2)
    assert not torch.allclose(latent, latent3)


# --- loss ---------------------------------------------------------------------------------------------


def test_loss_ignores_background_voxels_and_empty_patches():
    torch.manual_seed(0)
    target = torch.randn(2, 3, 8)
    voxel_mask = torch.zeros(2, 3, 8, dtype=torch.bool)
    voxel_mask[0, 0, :2] = True  # 2 brain voxels
    voxel_mask[1, 2, :] = True  # 8 brain voxels; the other 4 patches are empty
    prediction = torch.randn(2, 3, 8, requires_grad=True)
    loss = masked_patch_mse(prediction, target, voxel_mask)
    squared = (prediction - target).detach() ** 2
    expected = (squared[0, 0, :2].mean() + squared[1, 2].mean()) / 2
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(prediction.grad[~voxel_mask] == 0)
    assert torch.all(prediction.grad[voxel_mask] != 0)
    # changing the prediction (even to inf) at background voxels changes nothing
    altered = prediction.detach().clone()
    altered[~voxel_mask] = float("inf")
    altered.requires_grad_(True)
    loss2 = masked_patch_mse(altered, target, voxel_mask)
    assert torch.equal(loss.detach(), loss2.detach())
    loss2.backward()
    assert torch.all(altered.grad[~voxel_mask] == 0)


def test_loss_without_brain_is_zero_with_gradient():
    prediction = torch.randn(2, 3, 8, requires_grad=True)
    loss = masked_patch_mse(prediction, torch.randn(2, 3, 8), torch.zeros(2, 3, 8, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(prediction.grad == 0)


def test_tiny_model_overfits_small_batch():
    torch.manual_seed(0)
    config = ModelConfig(**{**SMALL, "image_size": (16, 16, 16), "patch_size": (4, 4, 4)})
    # 4 smooth volumes inside a spherical "brain"
    volumes = F.interpolate(torch.randn(4, 1, 4, 4, 4), size=(16, 16, 16), mode="trilinear", align_corners=True)
    volumes = (volumes - volumes.mean()) / volumes.std()
    centre = torch.arange(16.0) - 7.5
    radius2 = sum(torch.meshgrid(centre**2, centre**2, centre**2, indexing="ij"))
    brain = radius2 < 49
    x = volumes * brain
    token_index = nonempty_patches(brain, config.patch_size)
    target = patchify(x, config.patch_size)[:, token_index]
    voxel_mask = patchify(brain.expand(4, -1, -1, -1), config.patch_size)[:, token_index]
    model = ViTAutoEncoder(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(400):
        prediction, _ = model(x, token_index)
        loss = masked_patch_mse(prediction, target, voxel_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


# --- initialisation --------------------------------------------------------------------------------


def test_initialisation_as_published():
    torch.manual_seed(0)
    model = ViTAutoEncoder(preset("demo"))
    # weights not rescaled: plain std 0.02
    plain = [model.patch_embed, model.decoder_embed, model.decoder_head]
    plain += [b.attn.qkv for b in model.encoder_blocks] + [b.mlp.fc1 for b in model.decoder_blocks]
    for layer in plain:
        assert layer.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert torch.all(layer.bias == 0)
    for blocks in (model.encoder_blocks, model.decoder_blocks):
        for i, block in enumerate(blocks, start=1):
            for layer in (block.attn.proj, block.mlp.fc2):
                assert layer.weight.std().item() == pytest.approx(0.02 / math.sqrt(2 * i), rel=0.08)
                assert torch.all(layer.bias == 0)
            assert torch.all(block.norm1.weight == 1) and torch.all(block.norm1.bias == 0)
    assert torch.all(model.encoder_norm.weight == 1) and torch.all(model.decoder_norm.bias == 0)


# --- config -----------------------------------------------------------------------------------------


def test_config_round_trip_through_json():
    config = ModelConfig(**SMALL)
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert isinstance(restored.image_size, tuple) and isinstance(restored.patch_size, tuple)
    assert preset("reference") == ModelConfig.from_dict(preset("reference").to_dict())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image_size": (32, 32, 30)}, "image_size"),
        ({"patch_size": (8, 8)}, "patch_size"),
        ({"encoder_dim": 30}, "encoder_dim"),
        ({"decoder_heads": 3}, "decoder_dim"),
        ({"encoder_depth": 0}, "encoder_depth"),
    ],
)
def test_config_validation_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{**SMALL, **change})


def test_config_rejects_unknown_keys_and_presets():
    with pytest.raises(ValueError, match="encoder_width"):
        ModelConfig.from_dict({**SMALL, "encoder_width": 3})
    with pytest.raises(ValueError, match=r"demo.*reference"):
        preset("huge")



# --- decoder options (not in the published model) -------------------------------------------------


def test_published_preset_reads_the_latent_as_published_and_the_demo_does_not():
    assert not preset("reference").latent_norm and preset("reference").latent_to_queries == "none"
    assert preset("demo").latent_norm and preset("demo").latent_to_queries == "per_patch"
    reference = ViTAutoEncoder(preset("reference"))
    assert isinstance(reference.latent_norm, torch.nn.Identity) and reference.patch_latent is None


def test_latent_to_queries_names_its_choices():
    with pytest.raises(ValueError, match="latent_to_queries must be one of none, shared, per_patch"):
        ModelConfig(**SMALL, latent_to_queries="yes")


def _decoder_without_attention(to_queries: str) -> ViTAutoEncoder:
    torch.manual_seed(0)
    model = ViTAutoEncoder(ModelConfig(**SMALL, latent_to_queries=to_queries)).eval()
    with torch.no_grad():
        for block in model.decoder_blocks:
            block.attn.proj.weight.zero_()  # no token can read another one
    return model


@pytest.mark.parametrize("to_queries", ["none", "shared", "per_patch"])
def test_latent_reaches_patches_without_attention_only_through_the_queries(to_queries):
    model = _decoder_without_attention(to_queries)
    with torch.no_grad():
        outputs = model.decode(torch.randn(2, 32), torch.arange(10))
    differs = not torch.allclose(outputs[0], outputs[1])
    assert differs == (to_queries != "none")


@pytest.mark.parametrize("to_queries", ["shared", "per_patch"])
def test_only_per_patch_queries_let_two_patches_read_different_latent_dimensions(to_queries):
    # with the patch's own projection zeroed for dimension 0, patch 0 must not hear that dimension
    model = _decoder_without_attention(to_queries)
    with torch.no_grad():
        if model.patch_latent is not None:
            model.decoder_embed.weight[:, 0] = 0.0
            model.patch_latent[0, 0] = 0.0
        latent = torch.randn(1, 32)
        moved = latent.clone()
        moved[0, 0] += 3.0
        index = torch.arange(2)
        change = (model.decode(moved, index) - model.decode(latent, index)).abs().amax(dim=-1)[0]
    if to_queries == "per_patch":
        assert change[0] == 0 and change[1] > 1e-4
    else:
        assert change[0] > 1e-4 and change[1] > 1e-4


def test_running_standardize_is_batch_independent_and_tracks_the_data():
    torch.manual_seed(0)
    norm = RunningStandardize(3, momentum=0.5)
    data = torch.randn(64, 3) * torch.tensor([0.01, 1.0, 5.0]) + torch.tensor([2.0, -1.0, 0.0])
    norm.train()
    first = norm(data)
    # seeded by the first batch: that batch comes out standardised
    torch.testing.assert_close(first.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(first.std(0), torch.ones(3), atol=1e-3, rtol=0)
    norm(data + 1.0)
    torch.testing.assert_close(norm.running_mean, data.mean(0) + 0.5, atol=1e-5, rtol=0)
    norm.eval()
    one = norm(data[:1])
    torch.testing.assert_close(one, norm(data)[:1])  # a subject's output does not depend on its batch
    assert int(norm.updates) == 2
    state = norm.state_dict()
    assert {"running_mean", "running_var", "updates"} <= set(state)
