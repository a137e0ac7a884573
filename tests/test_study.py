"""The study's configuration checked once at start: every stage's settings, the rules between keys, the
settings each stage script receives, and a library that stands without the checkout."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vitudip.config import ConfigError, read_settings, stage_config, stage_values, validate_config
from vitudip.study import STAGE_SETTINGS, stage_settings, validate_study

from tiny_study import snakemake

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "mutate, keys",
    [
        (lambda c: c.setdefault("loci", {}).update(lead_r2=0.9, r2=0.6), ("'loci.lead_r2' (0.9)", "'loci.r2' (0.6)")),
        (lambda c: c.setdefault("loci", {}).update(p_threshold=0.1, candidate_p=0.05),
         ("'loci.p_threshold'", "'loci.candidate_p'")),
        (lambda c: c["pheno"].update(covariates=["age", "site"], categorical=["site"]),
         ("'pheno.covariates'", "'pheno.categorical'")),
        (lambda c: c["preprocess"].update(splits={"train": 0.5, "val": 0.1, "test": 0.1}), ("'preprocess.splits'",)),
        (lambda c: c["train"].update(center=False), ("'train.center'", "model preset 'demo'")),
        (lambda c: c["pheno"].update(min_samples=41), ("'pheno.min_samples' (41)", "'simulate.n_subjects' (40)")),
        (lambda c: c["train"].update(batch_size=25), ("'train.batch_size' (25)", "'preprocess.splits.train' (0.6)",
                                                      "simulated subjects ('simulate.n_subjects') is 24")),
    ],
)
def test_a_rule_between_keys_is_checked_at_start_naming_the_keys(tiny_config, mutate, keys):
    mutate(tiny_config)
    validate_config(tiny_config)  # each key alone is valid
    with pytest.raises(ConfigError) as err:
        validate_study(tiny_config)
    for key in keys:
        assert key in str(err.value)


def test_the_dry_run_refuses_lead_r2_above_r2_naming_both_keys(tmp_path):
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config.setdefault("loci", {}).update(lead_r2=0.9, r2=0.6)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=bad)
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "invalid configuration: config keys 'loci.lead_r2' (0.9) and 'loci.r2' (0.6)" in out, out[-2000:]


def test_every_stage_settings_object_is_built_from_the_default_config(default_config):
    built = stage_settings(default_config)
    assert set(built) == set(STAGE_SETTINGS)
    for cls, settings in built.items():
        assert isinstance(settings, cls)


def _classes_with_config_keys() -> set[str]:
    """Every class of the library that says which config keys it is built from (``CONFIG_KEYS``)."""
    names = set()
    for path in (ROOT / "vitudip").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(item, ast.AnnAssign) and getattr(item.target, "id", None) == "CONFIG_KEYS"
                    for item in node.body):
                names.add(node.name)
    return names


def test_every_settings_class_is_checked_at_start():
    # StudyDescription also needs the GWAS's covariate table, so only its keys are checked at start
    assert _classes_with_config_keys() - {"StudyDescription"} == {cls.__name__ for cls in STAGE_SETTINGS}


def test_a_stage_gets_exactly_the_keys_it_declares(default_config):
    keys = ("embed", "seed", "train.device")
    values = stage_values(default_config, keys)
    assert set(values) == {"embed", "seed", "train"} and set(values["train"]) == {"device"}
    assert read_settings(json.dumps(values), keys) == values
    # a key of the section the stage does not read is refused, not passed on or filled from the defaults
    with pytest.raises(ConfigError, match="unknown config key 'epochs' under 'train'"):
        stage_config({"embed": {}, "seed": 1, "train": {"device": "cpu", "epochs": 3}}, keys)
    assert stage_config({"embed": {}, "seed": 1, "train": {}}, keys)["train"] == {"device": "auto"}


def test_the_joint_null_reads_only_the_gwas_keys_it_uses(default_config):
    from vitudip.genetics.settings import InProcessGwasSettings, JointSettings

    config = dict(default_config, gwas=dict(default_config["gwas"], engine="regenie", block_size=777))
    keys = JointSettings.CONFIG_KEYS + InProcessGwasSettings.CONFIG_KEYS
    values = read_settings(json.dumps(stage_values(config, keys)), keys)
    assert InProcessGwasSettings.from_config(values).block_size == 777
    # the engine it does not use is neither passed nor filled in from the schema
    assert set(values["gwas"]) == {"block_size", "device"}
    with pytest.raises(ConfigError, match="unknown config key 'engine' under 'gwas'"):
        read_settings(json.dumps({**values, "gwas": {**values["gwas"], "engine": "plink2"}}), keys)


def test_the_start_check_imports_no_engine_model_or_simulator():
    code = ("import sys, vitudip.study; print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT).stdout.split())
    assert not loaded & {"torch", "matplotlib", "msprime", "tskit", "nibabel", "pysam", "pgenlib"}
    code = ("import sys, vitudip.config; print(' '.join(m for m in sys.modules if m.startswith('vitudip')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ROOT).stdout.split()
    # the base of every stage's settings imports no stage: no circle between it and the stages
    assert all(m in ("vitudip", "vitudip.config") or m.startswith("vitudip.io") for m in loaded), loaded


def test_the_installed_library_reads_its_schemas_without_the_checkout(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    assert not (target / "vitudip" / "__editable__").exists()
    code = ("import vitudip.config as c, yaml; "
            f"c.validate_config(yaml.safe_load(open({str(ROOT / 'config.yaml')!r}))); print(c.__file__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(str(target))


def test_the_workflow_finds_a_filesets_files_without_the_genetics_stage(tmp_path):
    from vitudip.io.genotype_files import genotype_paths

    prefix = tmp_path / "geno"
    for ext in (".bed", ".bim", ".fam", ".pgen", ".pvar"):
        (tmp_path / f"geno{ext}").write_text("")
    # a PLINK 2 set lacking its .psam is not taken: the complete PLINK 1 set is
    assert genotype_paths(prefix) == [f"{prefix}{ext}" for ext in (".bed", ".bim", ".fam")]
    (tmp_path / "geno.psam").write_text("")
    assert genotype_paths(prefix) == [f"{prefix}{ext}" for ext in (".pgen", ".pvar", ".psam")]
    (tmp_path / "other.bgen").write_text("")
    with pytest.raises(FileNotFoundError, match=r"other\.sample"):
        genotype_paths(tmp_path / "other")
