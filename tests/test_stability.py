"""Stability across training runs: linear CKA and its null, loci overlap, the untrained reference, the config,
and the tiny study's two runs compared end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import ortho_group

from vitudip import resources as cost
from vitudip.config import ConfigError, section_defaults
from vitudip.io.stage_tables import udip_table
from vitudip.loci.fuma import LOCUS_COLUMNS
from vitudip.model.checkpoint import load_model, save_checkpoint
from vitudip.model.config import ModelConfig
from vitudip.model.vit_autoencoder import ViTAutoEncoder
from vitudip.stability.compare import (
    STABILITY_COLUMNS,
    cka_with_null,
    compare_runs,
    compared_subjects,
    linear_cka,
    loci_overlap,
    single_dimension_loci,
)
from vitudip.stability.settings import StabilitySettings
from vitudip.stability.untrained import untrained_model
from vitudip.study import validate_study

from tiny_study import snakemake

# --------------------------------------------------------------------------- linear CKA


def test_cka_of_an_embedding_with_itself_and_a_rotated_scaled_shifted_copy_is_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    rotated = 3.0 * x @ ortho_group.rvs(16, random_state=1) + 5.0
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, rotated) == pytest.approx(1.0)
    # dimensions in another order and with flipped signs, as a second run's are
    assert linear_cka(x, -x[:, ::-1]) == pytest.approx(1.0)


def test_cka_of_independent_embeddings_is_near_zero_with_many_subjects_and_its_null_says_so():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5000, 8)), rng.normal(size=(5000, 8))
    assert linear_cka(x, y) < 0.01
    result = cka_with_null(x, y, permutations=99, seed=0)
    assert result["null_mean"] < 0.01 and result["null_q95"] < 0.01


def test_with_fewer_subjects_than_dimensions_unrelated_embeddings_score_high_and_only_the_null_tells():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 128)), rng.normal(size=(20, 128))
    unrelated = cka_with_null(x, y, permutations=199, seed=0)
    # high, and no higher than shuffled subjects score
    assert unrelated["cka"] > 0.5 and unrelated["null_mean"] == pytest.approx(unrelated["cka"], abs=0.05)
    # a shared signal in a few dimensions stands out of the same null
    shared = rng.normal(size=(20, 3))
    related = cka_with_null(np.hstack([10 * shared, x[:, 3:]]), np.hstack([10 * shared, y[:, 3:]]), 199, 0)
    assert related["p"] <= 0.01 and related["cka"] > related["null_q95"]


def test_cka_refuses_unpaired_or_constant_embeddings():
    with pytest.raises(ValueError, match="same 2 or more subjects"):
        linear_cka(np.ones((5, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((5, 2)), np.arange(10.0).reshape(5, 2))


def test_held_out_subjects_are_those_outside_the_training_split_embedded_by_every_run():
    ids = [f"s{i}" for i in range(8)]
    first = udip_table(ids, np.zeros((8, 2)))
    second = udip_table(ids[::-1][:7], np.zeros((7, 2)))  # another order, s0 missing
    splits = pd.DataFrame({"subject_id": ids, "split": ["train"] * 4 + ["val", "val", "test", "test"]})
    assert compared_subjects([first, second], splits, "held_out") == ["s4", "s5", "s6", "s7"]
    assert compared_subjects([first, second], splits, "all") == ids[1:]
    with pytest.raises(ValueError, match="only 2 subjects outside the training split"):
        compared_subjects([first, second.iloc[:2]], splits, "held_out")


# --------------------------------------------------------------------------- loci overlap


def _loci(*intervals: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(intervals, columns=["chromosome", "start", "end"])


def test_loci_overlap_counts_each_run_and_the_regions_both_reach():
    run1 = _loci((1, 100, 200), (1, 500, 600), (2, 100, 200), (3, 10, 20))
    # (1, 150, 550) bridges two run-1 loci into one region; chromosome 2's touches at one base pair;
    # chromosome 3 is at the same place on another chromosome
    run2 = _loci((1, 150, 550), (2, 200, 300), (4, 10, 20), (5, 1, 2))
    shares = loci_overlap(run1, run2)
    assert shares["loci_run1"] == 4 and shares["loci_run2"] == 4
    assert shares["shared_run1"] == 3 and shares["overlap_run1"] == pytest.approx(3 / 4)
    assert shares["shared_run2"] == 2 and shares["overlap_run2"] == pytest.approx(2 / 4)
    # regions: chr1 [100, 600], chr2 [100, 300], chr3, chr4, chr5; both runs reach the first two
    assert shares["regions"] == 5 and shares["loci_shared"] == 2 and shares["overlap"] == pytest.approx(2 / 5)


def test_loci_overlap_of_identical_runs_is_one_of_disjoint_zero_and_of_none_undefined():
    run = _loci((1, 100, 200), (2, 5, 9))
    assert loci_overlap(run, run)["overlap"] == 1.0
    assert loci_overlap(run, _loci((1, 201, 300)))["overlap"] == 0.0  # adjacent, not overlapping
    none = loci_overlap(_loci(), _loci())
    assert none["regions"] == 0 and np.isnan(none["overlap"]) and np.isnan(none["overlap_run1"])


def _risk_loci(rows: list[tuple[str, int, int, int, float]]) -> pd.DataFrame:
    """GenomicRiskLoci rows (dimension, chr, start, end, p), the lead SNP at the start."""
    frame = pd.DataFrame(rows, columns=["dimension", "chr", "start", "end", "p"])
    frame["pos"] = frame["start"]
    frame["uniqID"] = [f"{c}:{s}" for c, s in zip(frame["chr"], frame["start"])]
    frame["rsID"] = [f"rs{i}" for i in range(len(frame))]
    return frame.reindex(columns=LOCUS_COLUMNS, fill_value=0)


THRESHOLDS = pd.DataFrame({"threshold": ["genome_wide", "bonferroni", "meff"], "p_value": [5e-8, 5e-8 / 4, 5e-8 / 2],
                           "divisor": [1.0, 4.0, 2.0]})


def test_a_runs_loci_are_its_single_dimensions_merged_across_dimensions_without_the_joint_test():
    loci = _risk_loci([("udip_000", 1, 1000, 2000, 1e-9), ("udip_001", 1, 2100, 3000, 1e-10),
                       ("joint", 1, 50_000, 60_000, 1e-12), ("udip_002", 2, 1000, 2000, 1e-20)])
    merged = single_dimension_loci(loci, THRESHOLDS, merge_distance_bp=250_000)
    assert list(zip(merged["chromosome"], merged["start"], merged["end"])) == [(1, 1000, 3000), (2, 1000, 2000)]
    assert list(merged["dimensions"]) == ["udip_000;udip_001", "udip_002"]
    # merged loci 250 kb apart stay apart with merge distance 0
    assert len(single_dimension_loci(loci, THRESHOLDS, merge_distance_bp=0)) == 3


def _write_run(folder, ids, values, loci) -> tuple:
    folder.mkdir()
    udip_table(ids, values).to_csv(folder / "udips.tsv", sep="\t", index=False)
    loci.to_csv(folder / "GenomicRiskLoci.tsv", sep="\t", index=False)
    THRESHOLDS.to_csv(folder / "thresholds.tsv", sep="\t", index=False)
    return folder / "udips.tsv", folder / "GenomicRiskLoci.tsv", folder / "thresholds.tsv"


def test_compare_runs_writes_one_row_with_the_cka_its_null_the_untrained_reference_and_the_overlap(tmp_path):
    rng = np.random.default_rng(3)
    ids = [f"s{i}" for i in range(60)]
    signal = rng.normal(size=(60, 4))
    run1 = _write_run(tmp_path / "run1", ids, np.hstack([signal, 0.1 * rng.normal(size=(60, 4))]),
                      _risk_loci([("udip_000", 1, 1000, 2000, 1e-9), ("udip_003", 2, 1000, 2000, 1e-9)]))
    run2 = _write_run(tmp_path / "run2", ids[::-1], np.hstack([signal @ ortho_group.rvs(4, random_state=0),
                                                               0.1 * rng.normal(size=(60, 4))])[::-1],
                      _risk_loci([("udip_007", 1, 1500, 2500, 1e-9)]))
    untrained = [tmp_path / "u1.tsv", tmp_path / "u2.tsv"]
    for path in untrained:
        udip_table(ids, rng.normal(size=(60, 8))).to_csv(path, sep="\t", index=False)
    splits = tmp_path / "splits.tsv"
    pd.DataFrame({"subject_id": ids, "split": ["train"] * 20 + ["test"] * 40}).to_csv(splits, sep="\t", index=False)
    config = {"seed": 7, "stability": {**section_defaults("stability"), "permutations": 99},
              "loci": {"merge_distance_kb": 250}}
    table = compare_runs((run1[0], run2[0]), (run1[1], run2[1]), (run1[2], run2[2]), splits,
                         StabilitySettings.from_config(config), tmp_path / "stability.tsv", untrained)
    written = pd.read_csv(tmp_path / "stability.tsv", sep="\t")
    assert list(written.columns) == STABILITY_COLUMNS and len(written) == 1
    row = written.iloc[0]
    assert row["subjects"] == 40 and row["subject_set"] == "held_out"
    assert (row["seed_run1"], row["seed_run2"]) == (7, 8)
    # the rows were paired by subject, not by position
    assert row["cka"] > 0.95 and row["cka_p"] == pytest.approx(0.01)
    assert row["cka_untrained"] < row["cka_null_q95"] + 0.2 and row["cka_untrained"] < row["cka"]
    assert (row["loci_run1"], row["loci_run2"], row["loci_shared"], row["regions"]) == (2, 1, 1, 2)
    assert row["overlap"] == pytest.approx(0.5) and row["overlap_run2"] == 1.0
    assert table.iloc[0]["cka"] == pytest.approx(row["cka"])


# --------------------------------------------------------------------------- the untrained reference

SMALL = dict(image_size=(16, 16, 16), patch_size=(8, 8, 8), encoder_dim=8, encoder_depth=1, encoder_heads=2,
             decoder_dim=8, decoder_depth=1, decoder_heads=2)


def test_the_untrained_model_has_the_initial_weights_of_its_seed_and_the_trained_models_inputs(tmp_path):
    config = ModelConfig(**SMALL)
    trained = ViTAutoEncoder(config)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(1.0)
    mean_image = torch.rand(16, 16, 16)
    save_checkpoint(tmp_path / "model.pt", {
        "model": trained.state_dict(), "model_config": config.to_dict(), "epoch": 5, "token_selection": "union",
        "brain_tokens": torch.arange(8), "mean_image": mean_image, "input_scale": 0.5, "grid": "{}"})
    untrained_model(tmp_path / "model.pt", 11, tmp_path / "untrained.pt")
    model, state = load_model(tmp_path / "untrained.pt", torch.device("cpu"))
    torch.manual_seed(11)
    initial = ViTAutoEncoder(config).state_dict()
    assert all(torch.equal(value, initial[name]) for name, value in model.state_dict().items())
    assert any(not torch.equal(value, trained.state_dict()[name]) for name, value in model.state_dict().items())
    assert state["epoch"] == 0 and state["input_scale"] == 0.5 and torch.equal(state["mean_image"], mean_image)
    untrained_model(tmp_path / "model.pt", 12, tmp_path / "other.pt")
    other, _ = load_model(tmp_path / "other.pt", torch.device("cpu"))
    assert any(not torch.equal(value, other.state_dict()[name]) for name, value in model.state_dict().items())


# --------------------------------------------------------------------------- config and workflow


def test_stability_is_off_by_default_and_its_second_seed_is_an_offset(default_config, tiny_config):
    assert default_config["stability"]["enabled"] is False
    tiny_config["stability"] = {"enabled": True, "seed_offset": 3}
    settings = StabilitySettings.from_config(validate_study(tiny_config))
    assert (settings.seed_run1, settings.seed_run2) == (tiny_config["seed"], tiny_config["seed"] + 3)


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda c: c["embed"].update(method="pca"), "'stability.enabled' and 'embed.method'"),
    (lambda c: c["embed"].update(splits=["train"]), "'stability.subjects' and 'embed.splits'"),
    (lambda c: c["stability"].update(seed_offset=0), "stability.seed_offset"),
    (lambda c: c.update(replication={"enabled": True}), "'stability.enabled' and 'replication.enabled'"),
])
def test_settings_the_stability_check_cannot_run_with_stop_at_start(tiny_config, mutate, expected):
    tiny_config["stability"] = {"enabled": True}
    mutate(tiny_config)
    with pytest.raises(ConfigError, match=expected):
        validate_study(tiny_config)


def test_dry_run_with_stability_plans_a_second_run_through_the_same_rules(tmp_path, repo_root):
    config = yaml.safe_load((repo_root / ".test" / "config.yaml").read_text())
    config["stability"] = {"enabled": True}
    config["train"].update(epochs=2, epochs_per_job=1)
    path = tmp_path / "stability.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "--printshellcmds", configfile=path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for rule, count in (("stability_train_segment", 1), ("stability_train_model", 1), ("stability_embed_udips", 1),
                        ("stability_untrained_model", 2), ("stability_embed_untrained", 2),
                        ("stability_prepare_phenotypes", 1), ("stability_gwas_shard", 4),
                        ("stability_gwas_gather", 1), ("stability_find_loci", 1), ("compare_training_runs", 1)):
        assert out.count(f"rule {rule}:") == count, rule
    # the second run trains with its own seed and checkpoints, and resumes like the first
    second = next(line for line in out.splitlines() if ">> .test/results/logs/stability_train_model.log" in line)
    assert f'"seed": {config["seed"] + 1}' in second and "stability/run2/train/checkpoints" in second
    # off, none of it is planned
    config["stability"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config))
    off = snakemake(tmp_path, "-n", configfile=path)
    # (not the bare word: the test folder's name has it, and Snakemake echoes its command line)
    planned = off.stdout + off.stderr
    assert off.returncode == 0 and "stability_train_model" not in planned and "compare_training_runs" not in planned


@pytest.mark.slow
def test_tiny_study_two_training_runs_compared(tiny_run, tiny_config):
    """The session's tiny study (stability on in .test/config.yaml): two trained runs and their untrained networks."""
    assert tiny_run.run.returncode == 0, tiny_run.output[-3000:]
    results, config = tiny_run.results, tiny_config
    assert config["stability"]["enabled"]
    # each job of the second run and of the comparison ran (tests/test_resources.py holds every job of the run
    # to the memory its rule declares)
    jobs = cost.job_memory(tiny_run.output, tiny_run.workdir)
    assert {"stability_train_model", "stability_embed_udips", "compare_training_runs"} <= {j.rule for j in jobs}
    row = pd.read_csv(results / "stability" / "stability.tsv", sep="\t").iloc[0]
    splits = pd.read_csv(results / "preprocess" / "splits.tsv", sep="\t")
    assert row["subjects"] == (splits["split"] != "train").sum() and row["dimensions"] == 128
    assert (row["seed_run1"], row["seed_run2"]) == (config["seed"], config["seed"] + 1)
    # the two trained runs agree far beyond their permutation null (measured: CKA 0.95, null 95th
    # percentile 0.33; the untrained networks, measured with the reference on, agree as much, 0.97: on 16
    # subjects after 2 epochs both embeddings are dominated by the images' few largest modes)
    assert 0 <= row["cka"] <= 1 and row["cka"] > row["cka_null_q95"] and row["cka_p"] <= 0.01
    # the tiny config leaves the untrained reference out (stability.untrained: false)
    assert np.isnan(row["cka_untrained"])
    # each run's loci are its single dimensions' merged loci (the tiny study's 2 epochs find none, so the
    # overlap is undefined there)
    for run, folder in (("run1", results / "loci"), ("run2", results / "stability" / "run2" / "loci")):
        merged = single_dimension_loci(pd.read_csv(folder / "GenomicRiskLoci.tsv", sep="\t"),
                                       pd.read_csv(folder / "thresholds.tsv", sep="\t"), 250_000)
        assert row[f"loci_{run}"] == len(merged)
    assert np.isnan(row["overlap"]) == (row["regions"] == 0)
