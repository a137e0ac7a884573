"""The config schema: the default validates, and each kind of mistake names its key."""

from __future__ import annotations

import copy
import dataclasses
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import vitudip.config
from vitudip.config import (
    ConfigError,
    check_input_paths,
    load_config,
    load_schema,
    read_settings,
    section_defaults,
    stage_config,
    validate_config,
    validate_table,
)
from vitudip.genetics.settings import JointSettings, PhenoSettings
from vitudip.imaging.settings import PreprocessSettings
from vitudip.loci.settings import LociSettings
from vitudip.perdi.settings import PerdiSettings
from vitudip.replication.settings import ReplicationSettings
from vitudip.stability.settings import StabilitySettings
from vitudip.study import SECOND_DEGREE_KINSHIP, load_study, study_warnings, validate_study
from vitudip.train.settings import TrainSettings

ROOT = Path(__file__).resolve().parent.parent


def test_default_and_tiny_configs_validate(repo_root, tiny_config):
    config = load_study(repo_root / "config.yaml")
    assert config["simulate"]["enabled"] is True
    filled = validate_study(tiny_config)
    # defaults come from the schema where the tiny config is silent
    assert filled["preprocess"]["on_bad_image"] == "exclude"
    assert filled["simulate"]["effects"][1]["side"] == "both"
    assert filled["simulate"]["nuisance"]["bias"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(trainig={}), "unknown config key 'trainig' at the top level"),
        (lambda c: c["preprocess"].update(pad_too=[1, 2, 3]), "unknown config key 'pad_too' under 'preprocess'"),
        (lambda c: c["simulate"]["effects"][0].update(strenght=0.1), "under 'simulate.effects[0]'"),
        (lambda c: c["simulate"].update(n_subjects="many"), "'simulate.n_subjects' must be of type integer"),
        (lambda c: c["preprocess"].update(pad_to=[96, 112]), "'preprocess.pad_to'"),
        (lambda c: c["preprocess"].update(on_bad_image="skip"), "'preprocess.on_bad_image'"),
        (lambda c: c["preprocess"].update(input_grid="fsl"), "'preprocess.input_grid'"),
        (lambda c: c["preprocess"].update(input_grid="mni152_1mm"),
         "'preprocess.input_grid': preprocess.input_grid mni152_1mm has 182x218x182 voxels but "
         "preprocess.input_voxel_mm 2 expects 91x109x91"),
        (lambda c: c.update(seed=1.5), "'seed' must be of type integer"),
        (lambda c: c["inputs"].pop("samples"), "missing required config key 'inputs.samples'"),
        (lambda c: c.pop("preprocess"), "missing required config key 'preprocess'"),
        (lambda c: c["simulate"]["effects"][0].update(kind="shape"), "'simulate.effects[0].kind'"),
        (lambda c: c["preprocess"].update(splits={"train": 0.5, "val": 0.1, "test": 0.1}), "'preprocess.splits'"),
        (lambda c: c["simulate"]["effects"][0].update(chromosome=9), "'simulate.effects[0].chromosome'"),
        (lambda c: c["simulate"].update(age_range=[80, 45]), "'simulate.age_range'"),
        # relations between keys, caught at workflow start instead of when training starts
        (lambda c: c["model"].update(preset="reference"),
         "model preset 'reference' takes [182, 224, 182]; the reference preset is the published 1 mm model"),
        (lambda c: c["preprocess"].update(pad_to=[80, 112, 96]),
         "'preprocess.pad_to': [80, 112, 96] is smaller than the images it must hold, [91, 109, 91]"),
        (lambda c: c["preprocess"].update(input_voxel_mm=1),
         "smaller than the images it must hold, [182, 218, 182] (the 1 mm MNI grid"),
        (lambda c: c["model"]["overrides"].update(pooling="attentive", pool_queries=5),
         "'model.overrides' (preset 'demo'): ModelConfig.pool_queries (5) must divide encoder_dim (128)"),
        (lambda c: c["model"]["overrides"].update(mode_loss_modes=129, latent_mode_weight=1.0),
         "'model.overrides' (preset 'demo'): ModelConfig.mode_loss_modes (129) must not exceed encoder_dim (128)"),
        (lambda c: c["train"].update(center=False), "config key 'train.center': false, but model preset 'demo' fits"),
        (lambda c: c["model"].update(token_selection="batch"),
         "config key 'model.token_selection': 'batch', but model preset 'demo' starts its pool from the modes"),
    ],
)
def test_bad_config_names_the_key(tiny_config, mutate, expected):
    mutate(tiny_config)
    with pytest.raises(ConfigError) as err:
        validate_study(tiny_config)
    assert expected in str(err.value)


def test_missing_input_path_names_the_key(tmp_path, tiny_config):
    samples = tmp_path / "samples.tsv"
    samples.write_text("subject_id\tpath\n")
    tiny_config["simulate"]["enabled"] = False
    tiny_config["inputs"].update(samples=str(samples), covariates=str(tmp_path / "covariates.tsv"),
                                 genotypes=str(tmp_path / "geno"), known_loci=None, genes=None)
    config = validate_config(tiny_config)
    with pytest.raises(ConfigError, match=r"'inputs.covariates': file '.*covariates.tsv' not found"):
        check_input_paths(config)
    (tmp_path / "covariates.tsv").write_text("FID\tIID\n")
    with pytest.raises(ConfigError, match=r"'inputs.genotypes': no genotype files for prefix .*geno: expected"):
        check_input_paths(config)
    # a partial fileset names exactly the file that is missing
    for ext in ("bed", "fam"):
        (tmp_path / f"geno.{ext}").write_text("")
    with pytest.raises(ConfigError, match=r"'inputs.genotypes': genotype file\(s\) not found: .*geno\.bim$"):
        check_input_paths(config)
    for ext in ("pgen", "pvar", "psam"):
        (tmp_path / f"geno.{ext}").write_text("")
    check_input_paths(config)
    # optional inputs of later stages are checked at start too
    config["gwas"].update(engine="regenie")
    config["gwas"]["regenie"]["step1_variants"] = str(tmp_path / "array_snps.txt")
    config["loci"]["ld_reference"] = str(tmp_path / "panel")
    (tmp_path / "panel.bed").write_text("")
    with pytest.raises(ConfigError, match=r"'gwas.regenie.step1_variants': file .*array_snps.txt' not found; "
                                          r"config key 'loci.ld_reference': PLINK 1 .* '.*panel' not found"):
        check_input_paths(config)


def test_paths_the_workflow_produces_need_not_exist(tmp_path, tiny_config):
    for key in tiny_config["inputs"]:
        tiny_config["inputs"][key] = str(tmp_path / "demo" / key)
    config = validate_config(tiny_config)
    with pytest.raises(ConfigError, match="inputs.samples"):
        check_input_paths(config)
    produced = {config["inputs"][k] for k in ("samples", "covariates", "genotypes", "known_loci", "genes")}
    check_input_paths(config, produced)


def test_unreadable_config_file(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("results: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- stage settings


def test_settings_json_with_an_unknown_or_missing_key_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown config key 'flank_kb' under 'loci' \(allowed: .*regional_flank_kb"):
        read_settings('{"loci": {"flank_kb": 10}}', LociSettings.CONFIG_KEYS)
    with pytest.raises(ConfigError, match=r"unknown settings key\(s\) 'train': this stage reads loci"):
        read_settings('{"loci": {}, "train": {}}', LociSettings.CONFIG_KEYS)
    with pytest.raises(ConfigError, match="missing required config key 'seed'"):
        read_settings('{"perdi": {}}', PerdiSettings.CONFIG_KEYS)
    with pytest.raises(ConfigError, match="config key 'perdi.rank_by': 'size' is not one of"):
        read_settings('{"seed": 0, "perdi": {"rank_by": "size"}, "pheno": {}}', PerdiSettings.CONFIG_KEYS)
    with pytest.raises(ConfigError, match="--settings is not valid JSON"):
        read_settings("{loci: {}}", LociSettings.CONFIG_KEYS)
    with pytest.raises(ConfigError, match="--settings must be a JSON object of the config keys loci, got list"):
        read_settings("[]", LociSettings.CONFIG_KEYS)


def test_a_stage_script_names_the_unknown_settings_key_in_one_line(tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "loci.py"), "--sumstats", str(tmp_path), "--ld-genotypes",
               str(tmp_path / "geno"), "--out-dir", str(tmp_path / "out"), "--settings", '{"loci": {"r3": 0.5}}']
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: unknown config key 'r3' under 'loci'")


@pytest.mark.parametrize("cls, build", [
    (PreprocessSettings, lambda config: PreprocessSettings.from_config(config, threads=1)),
    (PhenoSettings, PhenoSettings.from_config),
    (LociSettings, LociSettings.from_config),
    (TrainSettings, lambda config: TrainSettings.from_config(config, threads=None)),
    (PerdiSettings, PerdiSettings.from_config),
    (JointSettings, JointSettings.from_config),
    (StabilitySettings, StabilitySettings.from_config),
    (ReplicationSettings, ReplicationSettings.from_config),
])
def test_the_settings_classes_take_their_defaults_from_the_schema(cls, build):
    """Every setting a stage receives from a config that leaves its keys out is the schema's default."""
    sections = {key.partition(".")[0] for key in cls.CONFIG_KEYS}
    values = stage_config({section: 0 if section == "seed" else {} for section in sections}, cls.CONFIG_KEYS)
    settings = build(values)
    received = dataclasses.asdict(settings)
    flat = {**received, **received.pop("fuma", {})}
    schema = load_schema()["properties"]
    for section in sections - {"seed"}:
        for key, sub in schema[section]["properties"].items():
            if key in flat:
                assert flat[key] == (tuple(sub["default"]) if isinstance(flat[key], tuple) else sub["default"]), key


def test_a_default_changed_only_in_the_schema_reaches_the_stage(monkeypatch, tmp_path):
    schema = load_schema()
    changed = copy.deepcopy(schema)
    changed["properties"]["loci"]["properties"]["regional_flank_kb"]["default"] = 75
    changed["properties"]["perdi"]["properties"]["rank_by"]["default"] = "t"
    monkeypatch.setattr(vitudip.config, "load_schema", lambda path=vitudip.config.SCHEMA_PATH: (
        changed if path == vitudip.config.SCHEMA_PATH else schema))
    assert section_defaults("loci")["regional_flank_kb"] == 75
    assert PerdiSettings.from_config(stage_config({"seed": 1, "perdi": {}, "pheno": {}},
                                                PerdiSettings.CONFIG_KEYS)).rank_by == "t"
    # through the script, as the workflow runs it
    received = {}
    monkeypatch.setattr("vitudip.loci.stage.find_loci", lambda *args, **kwargs: received.update(settings=args[3]))
    main = runpy.run_path(str(ROOT / "scripts" / "loci.py"))["main"]
    main(["--sumstats", str(tmp_path), "--ld-genotypes", str(tmp_path / "geno"), "--out-dir", str(tmp_path / "out"),
          "--settings", json.dumps({"loci": {"exclude_mhc": True}})])
    assert received["settings"].regional_flank_kb == 75 and received["settings"].fuma.exclude_mhc is True


# --------------------------------------------------------------------------- input tables


def test_samples_table_checks_name_the_file_and_column(tmp_path):
    table = tmp_path / "samples.tsv"
    table.write_text("subject_id\timage\n1001\ta.nii.gz\n")
    with pytest.raises(ConfigError, match=rf"samples table {table} lacks column\(s\) path; available: subject_id, "
                                          r"image \(config key 'inputs.samples'\)"):
        validate_table(table, "samples")
    table.write_text("subject_id,path\n1001,a.nii.gz\n")
    with pytest.raises(ConfigError, match="is comma-separated; it must be tab-separated"):
        validate_table(table, "samples")
    table.write_text("subject_id\tpath\n1001\ta.nii.gz\n1002\t\n")
    with pytest.raises(ConfigError, match=rf"samples table '{table}' .* line 3: no value in column 'path'"):
        validate_table(table, "samples")
    table.write_text("")
    with pytest.raises(ConfigError, match="is empty: it needs a header line with subject_id, path"):
        validate_table(table, "samples")
    # IDs stay strings, further columns are allowed
    table.write_text("subject_id\tpath\tsite\n0012\ta.nii.gz\t3\n")
    validate_table(table, "samples")


def test_covariates_table_has_the_columns_the_config_names(tmp_path):
    table = tmp_path / "covariates.tsv"
    table.write_text("FID\tIID\tage\tsex\n1\t1\t61.5\t0\n2\t2\tNA\t1\n")
    numeric = {"age": {"type": "number"}, "sex": {"type": "number"}}
    validate_table(table, "covariates", numeric)  # an empty cell excludes that subject later, it is no error
    with pytest.raises(ConfigError, match=r"lacks column\(s\) centre"):
        validate_table(table, "covariates", {**numeric, "centre": {}})
    table.write_text("FID\tIID\tage\tsex\n1\t1\t61.5\t0\n2\t2\told\t1\n")
    with pytest.raises(ConfigError, match=r"line 3, column age: 'old' is not a number"):
        validate_table(table, "covariates", numeric)


def test_embed_settings_come_from_the_schema_and_train_device():
    from vitudip.embed.settings import EmbedSettings

    config = stage_config({"embed": {"batch_size": 4}, "seed": 3, "train": {"device": "cpu"}},
                          EmbedSettings.CONFIG_KEYS)
    settings = EmbedSettings.from_config(config)
    assert (settings.batch_size, settings.seed, settings.device) == (4, 3, "cpu")
    assert settings.splits == tuple(section_defaults("embed")["splits"])
    assert settings.pca_components == section_defaults("embed")["pca_components"]


def test_a_loose_kinship_cutoff_on_real_data_is_warned_and_the_demo_is_not(repo_root):
    demo = load_study(repo_root / "config.yaml")
    assert demo["genotype_qc"]["king_cutoff"] > SECOND_DEGREE_KINSHIP and study_warnings(demo) == []
    real = copy.deepcopy(demo)
    real["simulate"]["enabled"] = False
    (warning,) = study_warnings(real)
    assert "genotype_qc.king_cutoff" in warning and "0.0442" in warning
    real["genotype_qc"]["king_cutoff"] = 0.0442
    assert study_warnings(real) == []


def test_gwas_chromosomes_take_plink2_codes_once_each(tiny_config: dict) -> None:
    tiny_config["gwas"]["chromosomes"] = [21, 22, "X", "XY"]
    assert validate_study(tiny_config)["gwas"]["chromosomes"] == [21, 22, "X", "XY"]
    tiny_config["gwas"]["chromosomes"] = [22, "X", 23]
    with pytest.raises(ConfigError, match=r"gwas.chromosomes\[2\]': 23 is chromosome X, listed already as 'X'"):
        validate_study(tiny_config)
    tiny_config["gwas"]["chromosomes"] = [22, "chrUn"]
    with pytest.raises(ConfigError, match=r"gwas.chromosomes\[1\]': chromosome 'chrUn' is not a code plink2 reads"):
        validate_study(tiny_config)


def test_regenie_par_region_is_the_studys_build(tiny_config: dict) -> None:
    tiny_config.setdefault("loci", {})["genome_build"] = "GRCh38"
    tiny_config["gwas"].update(engine="regenie", regenie={"par_region": "b37"})
    with pytest.raises(ConfigError, match="par_region': b37 is not loci.genome_build GRCh38 \\(use b38 or hg38\\)"):
        validate_study(tiny_config)


def test_every_model_option_can_be_set_in_the_overrides(tiny_config):
    tiny_config["model"]["overrides"].update(pooling="per_patch", mode_loss_weight=0.5, mode_loss_modes=16,
                                             latent_mode_weight=2.0, pool_from_modes=True)
    overrides = validate_config(tiny_config)["model"]["overrides"]
    assert (overrides["pooling"], overrides["mode_loss_modes"], overrides["latent_mode_weight"],
            overrides["pool_from_modes"]) == ("per_patch", 16, 2.0, True)
