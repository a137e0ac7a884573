"""PerDI: streaming paired t, the perturbation, the decoder loop, maps on the input grid, region ranking, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage, stats

from vitudip.genetics.catalog import index_sumstats, write_bgzip
from vitudip.genetics.sumstats import FILE_COLUMNS, SUMSTATS_COLUMNS, sumstats_text
from vitudip.imaging import grid
from vitudip.imaging.atlas import Atlas, harvard_oxford, harvard_oxford_on, load_mni_template
from vitudip.imaging.cache_grid import CacheGrid, cache_grid
from vitudip.io.stage_tables import udip_table
from vitudip.model.checkpoint import save_checkpoint
from vitudip.model.patches import nonempty_patches, patchify
from vitudip.model.vit_autoencoder import ModelConfig, ViTAutoEncoder
from vitudip.perdi.decode import BrainDecoder, dimension_directions, latent_sd, perturbation_maps, perturbed_latents
from vitudip.perdi.inputs import loci_dimensions, mapped_dimensions, subject_latents
from vitudip.perdi.locus import LeadEffects, LocusLead, lead_effects, locus_direction, locus_leads
from vitudip.perdi.regions import REGION_COLUMNS, RegionSets, ks_enrichment, rank_regions
from vitudip.perdi.space import NIFTI_MNI_CODE, atlas_cache_path, atlas_labels, save_map, smooth_in_brain, to_input_grid
from vitudip.perdi.stage import InputSpace
from vitudip.perdi.stats import PairedDifferenceStats, paired_t

ROOT = Path(__file__).resolve().parent.parent


# tiny tensors: one intra-op thread avoids synchronisation costs on a busy machine
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------
# Statistics and perturbation


def test_streamed_paired_t_equals_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    original = rng.standard_normal((2, 11, 40))
    # a change far larger than its spread (|t| in the thousands): float32 sums of raw squares lose the variance
    perturbed = original + 50.0 + rng.standard_normal((2, 11, 40)) * rng.uniform(0.01, 1, 40)
    acc = PairedDifferenceStats(2, 40)
    for start, stop in ((0, 4), (4, 5), (5, 11)):
        acc.update(slice(0, 2), torch.from_numpy(perturbed[:, start:stop] - original[:, start:stop]).float())
    expected = stats.ttest_rel(perturbed, original, axis=1).statistic
    np.testing.assert_allclose(acc.t().numpy(), expected, rtol=1e-4)


def test_constant_change_gets_the_largest_finite_t_and_no_change_gets_zero():
    mean = torch.tensor([[1.0, 2.0, -3.0, 0.0]])
    m2 = torch.tensor([[4.0, 1.0, 0.0, 0.0]])
    t = paired_t(mean, m2, 5.0)
    finite = (mean[0, :2] / (m2[0, :2] / 20).sqrt()).abs().max()
    assert t[0, 2] == pytest.approx(-float(finite))
    assert t[0, 3] == 0


def test_perturbation_moves_only_its_dimension_by_k_sd():
    latents = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))
    sd = latent_sd(latents)
    np.testing.assert_allclose(sd.numpy(), latents.numpy().std(axis=0, ddof=1), rtol=1e-5)
    dims = torch.tensor([4, 1])
    moved = perturbed_latents(latents, dimension_directions(dims.tolist(), 2.0 * sd[dims], 6))
    assert moved.shape == (2, 30, 6)
    change = (moved - latents).numpy()
    for j, dim in enumerate(dims.tolist()):
        np.testing.assert_allclose(change[j, :, dim], 2.0 * sd[dim].item(), rtol=1e-5)
        assert not np.delete(change[j], dim, axis=1).any()


@pytest.mark.parametrize("batch_size", [4, 50])
def test_decoder_loop_equals_decoding_each_dimension_and_ttest_rel(batch_size):
    """Split subject batches (4) and several dimensions per decoder call (50 > 9 subjects) agree with scipy."""
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(5, 30, generator=gen)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ weight)

    latents = torch.randn(9, 5, generator=gen)
    dims = [3, 0, 4]
    shifts = latent_sd(latents)[dims]
    maps = perturbation_maps(decode, latents, dimension_directions(dims, shifts, 5), 30, batch_size)
    for j, dim in enumerate(dims):
        moved = latents.clone()
        moved[:, dim] += shifts[j]
        expected = stats.ttest_rel(decode(moved).numpy(), decode(latents).numpy(), axis=0).statistic
        np.testing.assert_allclose(maps.t[j].numpy(), expected, rtol=2e-3, atol=1e-3)
        np.testing.assert_allclose(maps.change[j].numpy(), (decode(moved) - decode(latents)).mean(0).numpy(),
                                   rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# A decoder whose dimension 2 only changes a box


SHAPE = (16, 16, 16)
BOX = (slice(3, 7), slice(8, 12), slice(4, 8))


def box_model() -> tuple[ViTAutoEncoder, torch.Tensor, np.ndarray]:
    """A tiny autoencoder whose decoder is replaced: latent dim 2 brightens BOX, every dim adds faint noise."""
    config = ModelConfig(image_size=SHAPE, patch_size=(4, 4, 4), encoder_dim=6, encoder_depth=1, encoder_heads=1,
                         decoder_dim=6, decoder_depth=1, decoder_heads=1)
    model = ViTAutoEncoder(config).eval()
    axes = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    brain = sum(((a - 7.5) / 7) ** 2 for a in axes) <= 1
    tokens = nonempty_patches(torch.from_numpy(brain), config.patch_size)
    box = torch.zeros(SHAPE)
    box[BOX] = 1.0
    # decode's output is (B, kept patches, patch voxels): lay the box out the same way
    box_patches = patchify(box[None], config.patch_size)[0, tokens]
    noise = torch.randn(box_patches.shape, generator=torch.Generator().manual_seed(2))

    def decode(latent: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
        assert torch.equal(token_index, tokens)
        signal = torch.tanh(latent[:, 2])[:, None, None] * box_patches
        wobble = 1e-3 * torch.sin(50 * latent.sum(dim=1))[:, None, None] * noise
        return signal + wobble

    model.decode = decode
    return model, tokens, brain


def test_box_dimension_maps_inside_the_box_and_its_region_ranks_first():
    model, tokens, brain = box_model()
    decoder = BrainDecoder(model, tokens, brain)
    latents = torch.randn(40, 6, generator=torch.Generator().manual_seed(3))
    t = perturbation_maps(decoder, latents, dimension_directions([2, 0], latent_sd(latents)[[2, 0]], 6),
                          decoder.n_voxels, 16).t
    box_map, other_map = (decoder.volume(t[j]) for j in range(2))
    peak = np.unravel_index(np.argmax(np.abs(box_map)), SHAPE)
    assert all(s.start <= p < s.stop for p, s in zip(peak, BOX))
    assert np.abs(box_map[BOX]).min() > 10 * np.abs(box_map[brain & ~_box_mask()]).max()
    assert np.abs(other_map[BOX]).max() < 10  # dimension 0 only moves the faint noise

    smoothed = smooth_in_brain(np.abs(box_map), brain, 1.0)
    labels = np.zeros(SHAPE, np.int16)
    labels[2:8, 8:13, 3:9] = 1  # Left_Box holds the box
    labels[9:14, 8:13, 3:9] = 2  # Right_Box: its mirror
    labels[4:12, 2:7, 6:12] = 3  # Left_Other
    names = ("Left_Box", "Right_Box", "Left_Other", "Right_Other")
    table = rank_regions(smoothed, labels, names, brain, top_fraction=0.02, permutations=200,
                         rng=np.random.default_rng(0))
    assert list(table.columns) == REGION_COLUMNS
    first = table.iloc[0]
    assert (first["region"], first["side"], first["rank"]) == ("Box", "left", 1)
    assert first["ks_score"] > 0.9 and first["permutation_p"] < 0.01
    other = table[(table["region"] == "Other") & (table["side"] == "left")].iloc[0]
    assert other["top_fraction_excess"] < 0 and other["permutation_p"] > 0.5
    assert "right" not in set(table.loc[table["region"] == "Other", "side"])  # no voxel, no row


def test_t_ranks_the_most_consistent_change_and_change_ranks_the_largest():
    """Why perdi.rank_by defaults to change: a decoder's t rewards consistency, not size.

    Dimension 0 changes box A by about 1 (more in some subjects than in others) and box
    B by 0.01 in every subject alike: t points at B, the mean change at A.
    """
    n_voxels = 60
    in_a, in_b = torch.zeros(n_voxels, dtype=torch.bool), torch.zeros(n_voxels, dtype=torch.bool)
    in_a[:10], in_b[30:40] = True, True

    def decode(z: torch.Tensor) -> torch.Tensor:
        size_a = torch.tanh(z[:, :1]) * (1.5 + torch.sin(3 * z[:, 1:2]))
        return size_a * in_a + 0.01 * z[:, :1] * in_b + 0.1 * torch.tanh(z[:, 1:2]) * ~in_b

    latents = torch.randn(50, 2, generator=torch.Generator().manual_seed(4))
    maps = perturbation_maps(decode, latents, dimension_directions([0], latent_sd(latents)[[0]], 2), n_voxels, 16)
    labels = np.where(in_a.numpy(), 1, np.where(in_b.numpy(), 2, 0))
    by = {kind: rank_regions(np.abs(getattr(maps, kind)[0].numpy()), labels, ["A", "B"], permutations=10)
          for kind in ("t", "change")}
    assert by["t"]["region"].iloc[0] == "B" and by["change"]["region"].iloc[0] == "A"
    assert maps.change[0, in_a].abs().min() > 20 * maps.change[0, in_b].abs().max()


def _box_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[BOX] = True
    return mask


# ---------------------------------------------------------------------------
# Locus directions: a lead variant's betas over every dimension

LEAD = "1:500:A:G"


def write_sumstats(folder: Path, betas: np.ndarray, frequency: float = 0.3, swapped: tuple[int, ...] = (),
                   lacking: tuple[int, ...] = (), index: bool = True) -> Path:
    """Tabix-indexed GWAS-SSF files ``udip_NNN.tsv.gz``, as gwas_gather writes them.

    Each holds a variant before the lead, the lead ``1:500:A:G`` (effect allele G = ALT) with ``betas[k]``,
    another variant at the lead's position, and one on chromosome 2. Dimensions in ``swapped`` count the
    lead's other allele (beta and frequency turned round); those in ``lacking`` have no line for it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for k, beta in enumerate(betas):
        lead = (["G", "A", beta, frequency] if k not in swapped else ["A", "G", -beta, 1 - frequency])
        rows = [[1, 100, "T", "C", 0.01, 0.02, 0.4, 0.6, "1:100:C:T", 50],
                *([[1, 500, *lead[:3], 0.01, lead[3], 1e-9, LEAD, 50]] if k not in lacking else []),
                [1, 500, "C", "A", 0.5, 0.02, 0.1, 0.2, "1:500:A:C", 50],
                [2, 50, "G", "T", -0.01, 0.02, 0.2, 0.7, "2:50:T:G", 50]]
        path = folder / f"udip_{k:03d}.tsv.gz"
        text = sumstats_text(pd.DataFrame(rows, columns=SUMSTATS_COLUMNS))
        write_bgzip([("\t".join(FILE_COLUMNS) + "\n").encode(), text.encode()], path)
        if index:
            index_sumstats(path)
    return folder


def write_loci(path: Path, dimensions: str = "udip_005;udip_002", lead_dimension: str = "udip_005") -> Path:
    path.write_text("locus\tchromosome\tlead_snp\tlead_uniqID\tlead_position\tlead_dimension\tdimensions\n"
                    f"1\t1\t{LEAD}\t1:500:A:G\t500\t{lead_dimension}\t{dimensions}\n")
    return path


def test_lead_betas_come_from_the_tabix_files_aligned_to_one_effect_allele(tmp_path):
    betas = np.array([0.3, -0.2, 0.05, 0.0])
    folder = write_sumstats(tmp_path / "sumstats", betas, swapped=(2,))
    (effects,) = lead_effects(folder, [LocusLead(1, 1, 500, LEAD, ("A", "G"))], [f"udip_{k:03d}" for k in range(4)])
    assert (effects.effect_allele, effects.other_allele) == ("G", "A")
    # the variant sharing the lead's position is not taken; the swapped file's beta is turned round
    np.testing.assert_allclose(effects.beta, betas, atol=1e-9)
    assert effects.frequency == pytest.approx(0.3)


def test_a_lead_variant_missing_from_a_file_names_the_file_and_the_variant(tmp_path):
    dims = [f"udip_{k:03d}" for k in range(3)]
    folder = write_sumstats(tmp_path / "sumstats", np.ones(3), lacking=(1,))
    with pytest.raises(ValueError, match=rf"udip_001\.tsv\.gz: no line for lead variant {LEAD} of locus 7"):
        lead_effects(folder, [LocusLead(7, 1, 500, LEAD, ("A", "G"))], dims)
    with pytest.raises(ValueError, match="udip_000.tsv.gz: no line for lead variant 3:9:A:G"):
        lead_effects(folder, [LocusLead(2, 3, 9, "3:9:A:G", ("A", "G"))], dims)  # a chromosome the file lacks
    unindexed = write_sumstats(tmp_path / "plain", np.ones(3), index=False)
    with pytest.raises(FileNotFoundError, match=r"udip_000\.tsv\.gz\.tbi not found"):
        lead_effects(unindexed, [LocusLead(7, 1, 500, LEAD, ("A", "G"))], dims)


def test_locus_leads_read_the_merged_table(tmp_path):
    path = tmp_path / "loci.tsv"
    header = "locus\tchromosome\tlead_snp\tlead_uniqID\tlead_position\n"
    path.write_text(header + "3\tX\trs1\tX:1200:T:C\t1200\n4\t2\trs2\t2:5:A:G\tNA\n")
    with pytest.raises(ValueError, match="line 3: locus '4' and lead_position 'NA'"):
        locus_leads(path)
    path.write_text(header + "3\tX\trs1\tX:1200:T\t1200\n")
    with pytest.raises(ValueError, match="line 2: lead_uniqID 'X:1200:T' of locus 3 is not"):
        locus_leads(path)
    path.write_text(header + "3\tX\trs1\tX:1200:T:C\t1200\n")
    assert locus_leads(path) == [LocusLead(3, 23, 1200, "rs1", ("C", "T"))] and locus_leads(path)[0].name == "locus_003"


def test_locus_direction_scaling():
    effects = LeadEffects(LocusLead(1, 1, 500, LEAD, ("A", "G")), "G", "A", 0.2, np.array([0.1, -0.2, 0.0]))
    sd = np.array([2.0, 0.5, 1.0])
    two = locus_direction(effects, sd, False, "two_alleles", 1.0)
    np.testing.assert_allclose(two.shift, [0.2, -0.4, 0.0])
    assert two.multiplier == 2 and two.sd_length == pytest.approx(np.hypot(0.1, 0.8))
    # inverse-normal phenotypes: betas in SD units, so times each dimension's SD
    np.testing.assert_allclose(locus_direction(effects, sd, True, "two_alleles", 1.0).shift, [0.4, -0.2, 0.0])
    genetic = locus_direction(effects, sd, False, "genetic_sd", 1.0)
    assert genetic.multiplier == pytest.approx(np.sqrt(2 * 0.2 * 0.8))
    np.testing.assert_allclose(genetic.shift, effects.beta * np.sqrt(0.32))
    matched = locus_direction(effects, sd, False, "sd_multiple", 1.5)
    assert matched.sd_length == pytest.approx(1.5)
    assert np.linalg.norm(matched.shift / sd) == pytest.approx(1.5)
    np.testing.assert_allclose(matched.shift / np.linalg.norm(matched.shift), effects.beta / np.linalg.norm(
        effects.beta))
    # a dimension without spread has no SD scale and adds nothing to the length
    flat = locus_direction(effects, np.array([2.0, 0.0, 1.0]), False, "sd_multiple", 1.0)
    assert flat.multiplier == pytest.approx(1 / 0.05)
    null = LeadEffects(effects.lead, "G", "A", 0.2, np.zeros(3))
    with pytest.raises(ValueError, match=f"lead variant {LEAD} of locus 1 has no effect"):
        locus_direction(null, sd, False, "sd_multiple", 1.0)


def test_the_locus_direction_of_a_snp_moving_a_box_finds_the_box(tmp_path):
    """Box A follows the latent direction u = (e0 + e1)/sqrt2, box B the orthogonal w = (e0 - e1)/sqrt2,
    box C dimension 2. Dimension 0 alone moves A and B alike, so no dimension map tells them apart; a SNP
    whose betas point along u finds A, one along w finds B."""
    n_voxels = 400
    labels = np.zeros(n_voxels, np.int16)
    labels[0:40], labels[100:140], labels[200:240] = 1, 2, 3
    in_box = [torch.from_numpy(labels == k) for k in (1, 2, 3)]
    u = torch.tensor([1.0, 1.0, 0.0, 0.0]) / 2 ** 0.5
    w = torch.tensor([1.0, -1.0, 0.0, 0.0]) / 2 ** 0.5
    noise = torch.randn(n_voxels, generator=torch.Generator().manual_seed(8))

    def decode(z: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(z @ u)[:, None] * in_box[0] + torch.tanh(z @ w)[:, None] * in_box[1]
                + torch.tanh(z[:, 2:3]) * in_box[2] + 1e-3 * torch.sin(5 * z.sum(1, keepdim=True)) * noise)

    latents = torch.randn(60, 4, generator=torch.Generator().manual_seed(9))
    sd = latent_sd(latents).double().numpy()
    gwas_noise = np.array([0.002, -0.001, 0.003, -0.002])
    names = [f"udip_{k:03d}" for k in range(4)]

    for along, box in ((u, 0), (w, 1)):
        folder = write_sumstats(tmp_path / f"box{box}", 0.2 * along.numpy() + gwas_noise)
        (effects,) = lead_effects(folder, [LocusLead(1, 1, 500, LEAD, ("A", "G"))], names)
        direction = locus_direction(effects, sd, False, "two_alleles", 1.0)
        maps = perturbation_maps(decode, latents, torch.from_numpy(direction.shift[None]).float(), n_voxels, 16)
        change = maps.change[0].abs()
        table = rank_regions(change.numpy(), labels, ["A", "B", "C"], permutations=20)
        assert table["region"].iloc[0] == "AB"[box] and table["ks_score"].iloc[0] > 0.9
        # the other boxes barely move: only the GWAS noise on the other dimensions reaches them
        for other in {0, 1, 2} - {box}:
            assert change[in_box[other]].mean() < 0.1 * change[in_box[box]].mean()
    # one dimension alone moves both boxes about equally: it cannot say which the SNP is about
    maps = perturbation_maps(decode, latents, dimension_directions([0], torch.tensor([float(sd[0])]), 4), n_voxels, 16)
    change = maps.change[0].abs()
    ratio = change[in_box[0]].mean() / change[in_box[1]].mean()
    assert 0.5 < float(ratio) < 2


# ---------------------------------------------------------------------------
# Regions


def test_region_sets_keep_sides_apart_and_merged():
    sets = RegionSets.from_names(["Left_Thalamus", "Brain-Stem", "Right_Thalamus"])
    rows = list(zip(sets.regions, sets.sides, sets.labels))
    assert rows == [("Thalamus", "left", (1,)), ("Thalamus", "right", (3,)), ("Thalamus", "both", (1, 3)),
                    ("Brain-Stem", "both", (2,))]


def test_ks_enrichment_of_known_rankings():
    assert ks_enrichment(np.array([0, 1]), 6) == pytest.approx(1.0)
    assert ks_enrichment(np.array([4, 5]), 6) == 0.0
    # hits at 0 and 3 of 6: 1/2, then 1 - 2/4 = 1/2
    assert ks_enrichment(np.array([0, 3]), 6) == pytest.approx(0.5)


def test_permutation_null_matches_shuffling_labels():
    """The hypergeometric draws have the mean and spread of actually shuffling the voxel labels."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 500)
    statistic = rng.random(500)
    table = rank_regions(statistic, labels, ("Left_A", "Right_A"), top_fraction=0.1, permutations=4000, rng=rng)
    shuffled = np.array([np.isin(rng.permutation(labels)[np.argsort(-statistic)][:50], [1, 2]).sum()
                         for _ in range(4000)])
    observed = np.isin(labels[np.argsort(-statistic)][:50], [1, 2]).sum()
    both = table[table["side"] == "both"].iloc[0]
    assert both["permutation_p"] == pytest.approx((1 + (shuffled >= observed).sum()) / 4001, abs=0.03)


# ---------------------------------------------------------------------------
# Input grid and NIfTI


def test_map_returns_to_the_input_grid_as_nifti(tmp_path):
    layout = cache_grid(grid.standard_grids(4)[0], 2, (24, 28, 24))
    assert layout.input_shape == (45, 54, 45) and layout.coarse_shape == (22, 27, 22)
    coarse = np.random.default_rng(5).standard_normal(layout.coarse_shape).astype(np.float32)
    fine = to_input_grid(grid.pad_to(coarse, layout.pad_to), layout)
    save_map(fine, layout.input_affine, tmp_path / "m.nii.gz", "test")
    image = nib.load(tmp_path / "m.nii.gz")
    assert image.shape == layout.input_shape and image.get_data_dtype() == np.float32
    np.testing.assert_allclose(image.affine, layout.input_affine)
    assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == NIFTI_MNI_CODE
    data = np.asarray(image.dataobj)
    np.testing.assert_array_equal(grid.block_mean(data, 2), coarse)
    np.testing.assert_array_equal(data[44], 0)  # the odd last slice no block covered
    # a coarse voxel's centre (coarse affine) is the centre of its block of input voxels (input affine)
    block = np.argwhere(data == coarse[3, 5, 7]).mean(axis=0)
    np.testing.assert_allclose((layout.input_affine @ [*block, 1])[:3],
                               (layout.coarse_affine @ [3, 5, 7, 1])[:3])


def test_box_resampling_is_the_block_mean_on_the_block_grid_and_a_1_2_1_filter_on_fsls():
    volume = np.random.default_rng(7).random((12, 14, 10))
    affine = grid.MNI_1MM_AFFINE
    block = grid.resample_box(volume, affine, (6, 7, 5), grid.block_affine(affine, 2))
    np.testing.assert_allclose(block, grid.block_mean(volume, 2), rtol=1e-6)
    # FSL's 2 mm voxel i is centred on 1 mm voxel 2i and covers half of each neighbour
    fsl = grid.resample_box(volume, affine, (6, 7, 5), affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
    expected = volume
    for axis in range(3):
        expected = ndimage.correlate1d(expected, [0.25, 0.5, 0.25], axis=axis, mode="constant")
    np.testing.assert_allclose(fsl, expected[::2, ::2, ::2], rtol=1e-5)


def centroid_mm(atlas: Atlas, label: int) -> np.ndarray:
    voxels = np.argwhere(atlas.labels == label)
    return (atlas.affine[:3, :3] @ voxels.mean(axis=0)) + atlas.affine[:3, 3]


@pytest.mark.parametrize("region", ["Left_Thalamus", "Right_Hippocampus", "Brain-Stem", "Right_Putamen",
                                    "Left_Caudate"])
def test_the_atlas_on_either_2mm_grid_puts_a_region_where_the_1mm_atlas_has_it(region):
    one_mm = harvard_oxford(1)
    label = one_mm.label_of(region)
    centre = centroid_mm(one_mm, label)
    for on in (grid.BLOCK_2MM, grid.FSL_2MM):
        atlas = harvard_oxford_on(on.shape, on.affine)
        # the two grids are 0.5 mm apart on every axis: a label map placed on the wrong one is off by that much
        np.testing.assert_allclose(centroid_mm(atlas, label), centre, atol=0.25, err_msg=on.name)


def test_input_space_on_fsls_grid_carries_its_affine(tmp_path):
    layout = cache_grid(grid.FSL_2MM, 2, (48, 56, 48))
    template, template_affine = load_mni_template()
    on_input = grid.resample_box(template, template_affine, grid.FSL_2MM.shape, grid.FSL_2MM.affine) > 0
    brain = grid.pad_to(grid.block_mean(on_input.astype(np.float32), 2) > 0.5, layout.pad_to)
    space = InputSpace.build(layout, brain, 25.0, tmp_path / "atlas")
    fsl_atlas = harvard_oxford_on(grid.FSL_2MM.shape, grid.FSL_2MM.affine)
    np.testing.assert_array_equal(space.labels, fsl_atlas.labels)
    assert (space.labels != harvard_oxford(2).labels).any()
    (cached,) = (tmp_path / "atlas").glob("*.nii.gz")
    np.testing.assert_allclose(nib.load(cached).affine, grid.FSL_2MM.affine)
    save_map(to_input_grid(brain.astype(np.float32), layout), space.layout.input_affine, tmp_path / "m.nii.gz")
    image = nib.load(tmp_path / "m.nii.gz")
    assert image.shape == grid.FSL_2MM.shape
    np.testing.assert_allclose(image.affine, grid.FSL_2MM.affine)


def test_smoothing_stays_inside_the_brain():
    brain = np.zeros((9, 9, 9), bool)
    brain[2:7, 2:7, 2:7] = True
    spike = np.zeros((9, 9, 9), np.float32)
    spike[4, 4, 4] = 1.0
    spike[0, 0, 0] = 100.0  # background: never enters
    out = smooth_in_brain(spike, brain, 1.0)
    assert out[~brain].max() == 0 and np.unravel_index(out.argmax(), out.shape) == (4, 4, 4)
    assert out.sum() < 1.0


def test_atlas_labels_come_from_the_cache_and_need_an_mni_aligned_grid(tmp_path):
    shape, affine = grid.mni_grid(4)
    planted = np.zeros(shape, np.int16)
    planted[10:20, 10:20, 10:20] = 7
    nib.save(nib.Nifti1Image(planted, affine), atlas_cache_path(tmp_path, shape, affine, 25.0))
    labels, names = atlas_labels(shape, affine, 25.0, tmp_path)
    np.testing.assert_array_equal(labels, planted)
    assert len(names) == 113 and names[0] == "Left_Frontal_Pole"
    rotated = affine.copy()
    rotated[:3, :2] = affine[:3, [1, 0]]
    with pytest.raises(ValueError, match="rotated relative to MNI152"):
        atlas_labels(shape, rotated, 25.0, tmp_path)


# ---------------------------------------------------------------------------
# Inputs


def write_inputs(folder: Path, n_dims: int, n: int = 6, drop: str | None = None, stranger: bool = False) -> dict:
    ids = [f"{i:04d}" for i in range(n)]
    table = udip_table(ids, np.random.default_rng(6).standard_normal((n, n_dims)))
    if drop:
        table = table.drop(columns=drop)
    if stranger:
        table.loc[2, ["FID", "IID"]] = "9999"
    table.to_csv(folder / "udips.tsv", sep="\t", index=False)
    pd.DataFrame({"subject_id": ids, "path": "x", "status": "ok", "reason": "", "row": range(n)}).to_csv(
        folder / "qc.tsv", sep="\t", index=False)
    return {"udips": folder / "udips.tsv", "qc": folder / "qc.tsv"}


def test_latents_come_from_the_first_subjects_of_the_udip_table(tmp_path):
    paths = write_inputs(tmp_path, 4)
    ids, latents = subject_latents(paths["udips"], paths["qc"], 3, 4)
    assert ids == ["0000", "0001", "0002"] and latents.shape == (3, 4) and latents.dtype == np.float32


@pytest.mark.parametrize("problem, message", [
    (dict(drop="udip_002"), "lacks dimension udip_002"),
    (dict(stranger=True), "subject '9999'"),
])
def test_bad_inputs_name_the_problem(tmp_path, problem, message):
    paths = write_inputs(tmp_path, 4, **problem)
    with pytest.raises(ValueError, match=message):
        subject_latents(paths["udips"], paths["qc"], 6, 4)


def test_loci_table_picks_dimensions(tmp_path):
    loci = tmp_path / "loci_merged.tsv"
    loci.write_text("locus\tdimensions\n1\tudip_003;udip_001\n2\tudip_003\n")
    assert loci_dimensions(loci, 4) == [1, 3]
    assert mapped_dimensions("loci", 4, [1, 3]) == [1, 3] and mapped_dimensions("all", 3, None) == [0, 1, 2]
    loci.write_text("locus\tdimensions\n1\tudip_003;udip_009\n")
    with pytest.raises(ValueError, match="line 2: 'udip_009'"):
        loci_dimensions(loci, 4)
    with pytest.raises(ValueError, match="no loci table"):
        mapped_dimensions("loci", 4, None)


def test_leads_maps_only_each_locus_lead_dimension(tmp_path):
    loci = tmp_path / "loci_merged.tsv"
    loci.write_text("locus\tlead_dimension\tdimensions\n1\tudip_003\tudip_003;udip_001;udip_002\n"
                    "2\tudip_000\tudip_000;udip_003\n")
    assert loci_dimensions(loci, 4, "lead_dimension") == [0, 3]
    assert loci_dimensions(loci, 4) == [0, 1, 2, 3]
    assert mapped_dimensions("leads", 4, [0, 3]) == [0, 3]
    with pytest.raises(ValueError, match="'leads' but no loci table"):
        mapped_dimensions("leads", 4, None)


# ---------------------------------------------------------------------------
# The stage through its script


def write_stage_inputs(folder: Path, n_dims: int = 8, input_grid: grid.StandardGrid | None = None) -> dict:
    """A tiny random model on a 4 mm grid (the block one by default), with its cache description, brain mask,
    QC and UDIP tables."""
    layout: CacheGrid = cache_grid(input_grid or grid.standard_grids(4)[0], 1, (48, 56, 48))
    (folder / "cache").mkdir()
    layout.write(folder / "cache", 6)
    template, _ = load_mni_template()
    brain = grid.pad_to(grid.block_mean(template, 4) > 0, layout.pad_to)
    np.save(folder / "brain_mask.npy", brain)
    config = ModelConfig(image_size=layout.pad_to, patch_size=(8, 8, 8), encoder_dim=n_dims, encoder_depth=1,
                         encoder_heads=2, decoder_dim=12, decoder_depth=1, decoder_heads=2)
    torch.manual_seed(0)
    model = ViTAutoEncoder(config)
    save_checkpoint(folder / "model.pt", {
        "model": model.state_dict(), "model_config": config.to_dict(), "token_selection": "union",
        "brain_tokens": nonempty_patches(torch.from_numpy(brain), config.patch_size), "mean_image": None})
    paths = write_inputs(folder, n_dims, n=6)
    betas = np.linspace(-0.5, 0.5, n_dims)
    return {**paths, "model": folder / "model.pt", "cache": folder / "cache", "brain_mask": folder / "brain_mask.npy",
            "loci": write_loci(folder / "loci_merged.tsv"), "sumstats": write_sumstats(folder / "sumstats", betas),
            "betas": betas, "layout": layout}


def perdi_command(inputs: dict, out: Path, settings: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "perdi.py"), "--model", str(inputs["model"]),
            "--udips", str(inputs["udips"]), "--cache", str(inputs["cache"]), "--qc", str(inputs["qc"]),
            "--brain-mask", str(inputs["brain_mask"]), "--loci", str(inputs["loci"]), "--settings", settings,
            "--atlas-cache", str(out / "atlas"), "--maps", str(out / "maps"), "--regions", str(out / "regions.tsv"),
            "--panels", str(out / "panels"), "--overview", str(out / "overview.png"), "--sumstats",
            str(inputs["sumstats"]), "--locus-regions", str(out / "locus_regions.tsv"), "--locus-directions",
            str(out / "locus_directions.tsv")]


#: A 4 mm grid placed like FSL's 2 mm one (voxel centres on 1 mm voxel centres), half a voxel from the block grid.
FSL_LIKE_4MM = grid.StandardGrid("unchecked", grid.mni_grid(4)[0], grid.FSL_2MM.affine @ np.diag([2.0, 2.0, 2.0, 1.0]),
                                 "4 mm, FSL's origin")


@pytest.mark.parametrize("input_grid", [None, FSL_LIKE_4MM], ids=["block_4mm", "fsl_like_4mm"])
def test_cli_maps_ranks_and_draws_the_loci_dimensions(tmp_path, input_grid):
    inputs = write_stage_inputs(tmp_path, input_grid=input_grid)
    out = tmp_path / "perdi"
    settings = json.dumps({"seed": 0, "perdi": {"dimensions": "loci", "n_subjects": 5, "permutations": 50,
                                                "device": "cpu", "smoothing_sigma": 1}, "pheno": {}})
    done = subprocess.run(perdi_command(inputs, out, settings), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "maps").iterdir()) == [
        f"{name}{suffix}.nii.gz" for name in ("locus_001", "udip_002", "udip_005")
        for suffix in ("", "_abs", "_change", "_change_abs")]
    assert sorted(p.name for p in (out / "panels").iterdir()) == ["locus_001.png", "udip_002.png", "udip_005.png"]
    # the locus direction: two effect alleles of the lead variant's betas, ranked as a dimension is
    directions = pd.read_csv(out / "locus_directions.tsv", sep="\t")
    assert directions[["locus", "lead_snp", "effect_allele", "locus_shift"]].values.tolist() == [
        [1, LEAD, "G", "two_alleles"]]
    np.testing.assert_allclose(directions[[f"udip_{k:03d}" for k in range(8)]].to_numpy()[0], 2 * inputs["betas"],
                               atol=1e-6)
    locus_regions = pd.read_csv(out / "locus_regions.tsv", sep="\t")
    assert list(locus_regions.columns) == ["locus", "lead_snp", *REGION_COLUMNS]
    assert set(locus_regions["locus"]) == {1} and list(locus_regions["rank"]) == list(range(1, len(locus_regions) + 1))
    assert np.abs(np.asarray(nib.load(out / "maps" / "locus_001_change_abs.nii.gz").dataobj)).max() > 0
    assert (out / "overview.png").stat().st_size > 0 and len(list((out / "atlas").glob("*.nii.gz"))) == 1
    image = nib.load(out / "maps" / "udip_005.nii.gz")
    layout = inputs["layout"]
    assert image.shape == layout.input_shape
    np.testing.assert_allclose(image.affine, layout.input_affine)
    data = np.asarray(image.dataobj)
    assert np.isfinite(data).all() and np.abs(data).max() > 0
    regions = pd.read_csv(out / "regions.tsv", sep="\t")
    assert list(regions.columns) == ["dimension", *REGION_COLUMNS]
    assert set(regions["dimension"]) == {"udip_002", "udip_005"}
    assert set(regions["side"]) == {"left", "right", "both"}
    for _, rows in regions.groupby("dimension"):
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
        assert rows["ks_score"].is_monotonic_decreasing
    # the regions are ranked on the written |change| map (perdi.rank_by's default)
    labels, names = atlas_labels(layout.input_shape, layout.input_affine, 25.0, out / "atlas")
    brain = to_input_grid(np.load(inputs["brain_mask"]), layout)
    for name in ("udip_005_change_abs", "udip_005_abs"):
        again = rank_regions(np.asarray(nib.load(out / "maps" / f"{name}.nii.gz").dataobj), labels, names, brain,
                             permutations=5)
        same = np.allclose(again["ks_score"], regions.loc[regions["dimension"] == "udip_005", "ks_score"], atol=1e-6)
        assert same == (name == "udip_005_change_abs")


def test_cli_bad_input_is_one_line(tmp_path):
    inputs = write_stage_inputs(tmp_path)
    write_inputs(tmp_path, 8, n=6, drop="udip_006")
    settings = '{"seed": 0, "perdi": {"device": "cpu"}, "pheno": {}}'
    done = subprocess.run(perdi_command(inputs, tmp_path / "perdi", settings), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "udip_006" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "perdi").exists()


def test_cli_a_lead_variant_missing_from_the_summary_statistics_is_one_line(tmp_path):
    inputs = write_stage_inputs(tmp_path)
    write_sumstats(tmp_path / "sumstats", inputs["betas"], lacking=(3,))
    settings = '{"seed": 0, "perdi": {"device": "cpu", "n_subjects": 5}, "pheno": {}}'
    done = subprocess.run(perdi_command(inputs, tmp_path / "perdi", settings), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "udip_003.tsv.gz" in last and LEAD in last
    assert not (tmp_path / "perdi").exists()
