"""The joint stage wired: joint file from gathered files, its loci merged with the dimensions', the permuted null."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.config import section_defaults, stage_config
from vitudip.genetics import joint_null
from vitudip.genetics import joint_stage as joint_stage_module
from vitudip.genetics.gather import gather_sumstats
from vitudip.genetics.joint_null import JointCalibrationError, null_calibration
from vitudip.genetics.joint_stage import JOINT_LAMBDA, joint_stage, null_stage, permute_tables
from vitudip.genetics.joint_table import JOINT_COLUMNS, read_joint
from vitudip.genetics.settings import InProcessGwasSettings, JointSettings, ShardSettings
from vitudip.genetics.shard import gwas_shard
from vitudip.io.plink import write_bed
from vitudip.io.stage_tables import LOCI_MERGED
from vitudip.loci.settings import LociSettings
from vitudip.loci.stage import find_loci

N, K, V = 1500, 8, 400
SPREAD, FOCAL = 100, 300  # variant rows: an effect spread thinly over every dimension, and one on udip_000 alone


def _settings(**joint) -> JointSettings:
    return JointSettings.from_config(stage_config({"joint": joint, "seed": 3}, JointSettings.CONFIG_KEYS))


def _null_gwas() -> InProcessGwasSettings:
    """The permuted null's in-process GWAS on the CPU."""
    return InProcessGwasSettings.from_config(stage_config({"gwas": {"device": "cpu"}},
                                                          InProcessGwasSettings.CONFIG_KEYS))


def _gwas(engine: str) -> ShardSettings:
    """The study's GWAS settings with ``engine`` on the CPU (the schema's defaults elsewhere)."""
    return ShardSettings.from_config(stage_config({"gwas": {"engine": engine, "device": "cpu"}},
                                                  ShardSettings.CONFIG_KEYS))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("joint_stage")
    rng = np.random.default_rng(21)
    dosages = rng.binomial(2, 0.3, size=(N, V)).astype(np.int8)
    ids = [f"s{i:04d}" for i in range(N)]
    variants = pd.DataFrame({"chrom": 1, "id": [f"rs{i}" for i in range(V)], "pos": np.arange(V) * 5000 + 10_001,
                             "ref": "A", "alt": "G"})
    write_bed(folder / "geno", dosages, variants, ids)
    covariates = rng.normal(size=(N, 2))
    y = rng.standard_normal((N, K)) + 0.5 * covariates[:, :1]
    y += 0.13 * np.outer(dosages[:, SPREAD] - 0.6, np.ones(K))  # z about 3.3 per dimension, below 5e-8 in each
    y[:, 0] += 0.4 * (dosages[:, FOCAL] - 0.6)
    y[:5, 3] = np.nan  # a few missing values, as in real tables
    pheno = pd.DataFrame(y, columns=[f"udip_{i:03d}" for i in range(K)])
    covar = pd.DataFrame(covariates, columns=["age", "pc1"])
    for table in (pheno, covar):
        table.insert(0, "IID", ids)
        table.insert(0, "FID", ids)
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="NA")
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    gwas_shard(_gwas("torch"), folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", folder / "shard")
    gather_sumstats([folder / "shard"], folder / "sumstats", folder / "lambda.tsv", folder / "qq.png")
    return {"folder": folder, "variants": variants}


def test_the_joint_file_and_its_lambda(study: dict) -> None:
    folder = study["folder"]
    out = joint_stage(folder / "sumstats", folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", _settings(),
                      folder / "joint" / "joint.tsv.gz", folder / "joint" / "lambda.tsv", folder / "joint" / "qq.png",
                      progress=False)
    table = read_joint(out["joint"])
    assert list(table.columns) == JOINT_COLUMNS and len(table) == V
    assert table["p_value"].idxmin() in (SPREAD, FOCAL) and table.at[SPREAD, "p_value"] < 1e-10
    assert (table["n"] == N - 5).all()  # the smallest over the dimensions
    lambdas = JOINT_LAMBDA.read(out["lambda"])
    assert list(lambdas["test"]) == ["statistic", "min_p"]
    assert lambdas["lambda_gc"].between(0.8, 1.2).all() and (lambdas["n_variants"] == V).all()
    assert out["qq"].stat().st_size > 0


def test_a_spread_effect_only_the_joint_test_finds_is_marked_joint(study: dict, tmp_path: Path) -> None:
    folder = study["folder"]
    joint = joint_stage(folder / "sumstats", folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", _settings(),
                        tmp_path / "joint.tsv.gz", tmp_path / "lambda.tsv", tmp_path / "qq.png",
                        progress=False)["joint"]
    settings = LociSettings.from_config(stage_config({"loci": {}}, LociSettings.CONFIG_KEYS))
    out = find_loci(folder / "sumstats", folder / "geno", tmp_path / "loci", settings, phenotypes=folder / "pheno.tsv",
                    joint=joint, progress=False)
    merged = LOCI_MERGED.read(out["loci_merged"])
    spread_position = int(study["variants"]["pos"][SPREAD])
    by_lead = merged.set_index("lead_position")
    assert by_lead.at[spread_position, "tests"] == "joint"
    assert by_lead.at[spread_position, "n_dimensions"] == 0
    assert by_lead.at[spread_position, "lead_dimension"].startswith("udip_")  # the strongest dimension there, for PerDI
    assert by_lead.at[spread_position, "lead_p"] == pytest.approx(by_lead.at[spread_position, "joint_p"])
    assert by_lead.at[int(study["variants"]["pos"][FOCAL]), "tests"] == "both"
    assert set(merged["tests"]) == {"joint", "both"}  # nothing else is significant
    loci = pd.read_csv(out["genomic_risk_loci"], sep="\t")
    assert set(loci["dimension"]) == {"joint", "udip_000"}
    assert out["manhattan"].stat().st_size > 0 and len(list(out["regional"].iterdir())) == len(merged)
    # without the joint file the spread effect is not found at all
    alone = LOCI_MERGED.read(find_loci(folder / "sumstats", folder / "geno", tmp_path / "alone", settings,
                                       progress=False)["loci_merged"])
    assert list(alone["lead_position"]) == [int(study["variants"]["pos"][FOCAL])]
    assert list(alone["tests"]) == ["single"] and alone["joint_p"].isna().all()


def test_the_permuted_null_is_calibrated_and_matches_plink2_files(study: dict, tmp_path: Path) -> None:
    """The null runs in process with no per-dimension files; plink2's files of the same permutation, read
    back as the joint stage reads a study's, give the same joint tests (and the study's engine does not matter)."""
    folder = study["folder"]
    out = null_stage(_null_gwas(), folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", _settings(),
                     tmp_path / "null.tsv", tmp_path / "null_qq.png", progress=False)
    null = JOINT_LAMBDA.read(out["null"])
    assert list(null["test"]) == ["statistic", "min_p"] and (null["status"] == "ok").all()
    assert (null["lambda_gc"] <= 1.1).all() and (null["n_genome_wide"] == 0).all()
    assert (null["n_variants"] == V).all() and out["qq"].stat().st_size > 0
    assert not list(tmp_path.glob(".*"))  # the permuted tables and the joint file are gone

    permute_tables(folder / "pheno.tsv", folder / "covar.tsv", tmp_path / "pheno.tsv", tmp_path / "covar.tsv",
                   seed=_settings().seed)
    gwas_shard(_gwas("plink2"), folder / "geno", tmp_path / "pheno.tsv", tmp_path / "covar.tsv", tmp_path / "files")
    from_files = joint_stage(tmp_path / "files", folder / "geno", folder / "pheno.tsv", folder / "covar.tsv",
                             _settings(), tmp_path / "joint.tsv.gz", tmp_path / "lambda.tsv", tmp_path / "qq.png",
                             progress=False)
    files = JOINT_LAMBDA.read(from_files["lambda"])
    assert np.allclose(files["lambda_gc"], null["lambda_gc"], atol=1e-4), (files, null)


def test_an_inflated_null_stops_the_stage_with_the_reason_logged(study: dict, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = study["folder"]
    # no allowance for sampling noise (a false alarm rate near 1 puts 1 + z SE below the limit), so the limit rules
    monkeypatch.setattr(joint_null, "NULL_FALSE_ALARM", 1 - 1e-9)
    first = JOINT_LAMBDA.read(null_stage(_null_gwas(), folder / "geno", folder / "pheno.tsv", folder / "covar.tsv",
                                         _settings(), tmp_path / "ok.tsv", tmp_path / "ok.png",
                                         progress=False)["null"])
    # the same permuted run judged against a limit just below its λ: the library's check, without faking inflation
    strict = dataclasses.replace(_settings(), null_lambda_limit=float(first["lambda_gc"].min()) - 0.01)
    judged = []

    def calibration(*args, subjects, dimensions, **kwargs):
        judged.append({"subjects": subjects, "dimensions": dimensions})
        return null_calibration(*args, subjects=subjects, dimensions=dimensions, **kwargs)

    monkeypatch.setattr(joint_stage_module, "null_calibration", calibration)
    with caplog.at_level(logging.ERROR), pytest.raises(JointCalibrationError, match="the null is inflated"):
        null_stage(_null_gwas(), folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", strict,
                   tmp_path / "null.tsv", tmp_path / "null_qq.png", progress=False)
    assert "permuted subjects" in caplog.text and "the null is inflated" in caplog.text
    # the check is told the study's size, to name too few subjects for the dimensions as the cause
    assert judged == [{"subjects": N, "dimensions": K}]
    assert not (tmp_path / "null.tsv").exists() and not (tmp_path / "null_qq.png").exists()


def test_the_settings_come_from_the_schema() -> None:
    defaults = section_defaults("joint")
    settings = _settings()
    assert (settings.method, settings.k, settings.variance_share, settings.null_lambda_limit) == (
        defaults["method"], defaults["k"], defaults["variance_share"], defaults["null_lambda_limit"])
    assert defaults["enabled"] is True and defaults["calibrate"] is True and settings.seed == 3
