"""The config schema: the default validates, and each kind of mistake names its key."""

from __future__ import annotations

import pytest

from vitudip.config import ConfigError, check_input_paths, load_config, validate_config


def test_default_and_tiny_configs_validate(repo_root, tiny_config):
    config = load_config(repo_root / "config.yaml")
    assert config["simulate"]["enabled"] is True
    filled = validate_config(tiny_config)
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
    ],
)
def test_bad_config_names_the_key(tiny_config, mutate, expected):
    mutate(tiny_config)
    with pytest.raises(ConfigError) as err:
        validate_config(tiny_config)
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
