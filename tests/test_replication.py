"""Discovery and replication: the split, the scoring of each discovery lead, the report's columns, the workflow."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vitudip.config import ConfigError, stage_config
from vitudip.genetics.gather import gather_sumstats
from vitudip.genetics.joint_stage import joint_stage
from vitudip.genetics.settings import JointSettings, ShardSettings
from vitudip.genetics.shard import gwas_shard
from vitudip.io.plink import write_bed
from vitudip.io.stage_tables import COVAR, PHENO, REPLICATION
from vitudip.loci.settings import LociSettings
from vitudip.loci.stage import find_loci
from vitudip.replication.replicate import replicate_loci, replication_gwas, score_replication
from vitudip.replication.settings import ReplicationSettings
from vitudip.replication.split import split_subjects, write_split
from vitudip.report.tables import with_replication
from vitudip.study import validate_study

from tiny_study import snakemake

ROOT = Path(__file__).resolve().parent.parent


def _settings(**changes) -> ReplicationSettings:
    values = dict(enabled=True, split="fraction", fraction=0.35, file=None, covariate=None, levels=[],
                  p_threshold=0.05, seed=1)
    values.update(changes)
    return ReplicationSettings(**values)


def _ids(n: int) -> pd.Series:
    return pd.Series([f"s{i:03d}" for i in range(n)])


def test_a_fraction_split_is_seeded_and_of_the_asked_share() -> None:
    first = split_subjects(_ids(200), _settings(), n_covariates=5)
    assert first.replication.sum() == 70 and first.unknown_ids == 0
    assert np.array_equal(first.replication, split_subjects(_ids(200), _settings(), 5).replication)
    assert not np.array_equal(first.replication, split_subjects(_ids(200), _settings(seed=2), 5).replication)


def test_a_split_leaving_too_few_subjects_names_the_sizes() -> None:
    with pytest.raises(ValueError, match=r"leaves 37 discovery and 3 replication subjects of 40; each set needs at "
                                         r"least 15 \(the 5 covariates \+ 10\)"):
        split_subjects(_ids(40), _settings(fraction=0.08), n_covariates=5)


def test_a_split_file_counts_its_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "replication.txt"
    path.write_text("IID\n" + "".join(f"s{i:03d}\n" for i in range(0, 60, 2)) + "FAM x1\nx2\n")
    split = split_subjects(_ids(100), _settings(split="file", file=str(path)), n_covariates=3)
    assert split.replication.sum() == 30 and split.unknown_ids == 2
    assert split.replication[0] and not split.replication[1]


def test_a_covariate_split_refuses_a_small_or_absent_level() -> None:
    centre = pd.Series(["11025"] * 60 + ["11026"] * 50 + ["11027"] * 8)
    with pytest.raises(ValueError, match=r"fewer analysed subjects than covariates \+ 10 \(14\): 11027 \(8\)"):
        split_subjects(_ids(118), _settings(split="covariate", covariate="centre", levels=["11026"]), 4, centre)
    with pytest.raises(ValueError, match=r"\['99999'\] not among the levels of 'centre'"):
        split_subjects(_ids(110), _settings(split="covariate", covariate="centre", levels=["99999"]), 4, centre[:110])
    with pytest.raises(ValueError, match=r"1 analysed subject\(s\) have no 'centre'"):
        split_subjects(_ids(110), _settings(split="covariate", covariate="centre", levels=["11026"]), 4,
                       centre[:110].where(lambda c: c.index != 3))
    split = split_subjects(_ids(110), _settings(split="covariate", covariate="centre", levels=["11026"]), 4,
                           centre[:110])
    assert split.replication.sum() == 50 and not split.replication[:60].any()


def test_write_split_gives_disjoint_sets_and_drops_the_split_covariate_where_constant(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    ids = pd.DataFrame({"FID": _ids(n), "IID": _ids(n)})
    centre = np.repeat(["a", "b", "c"], 40)
    pheno = ids.assign(udip_000=rng.normal(size=n), udip_001=rng.normal(size=n))
    covar = ids.assign(age=rng.normal(size=n), centre_b=(centre == "b").astype(float),
                       centre_c=(centre == "c").astype(float))
    PHENO.write(pheno, tmp_path / "pheno.tsv")
    COVAR.write(covar, tmp_path / "covar.tsv")
    ids.assign(centre=centre).drop(columns="FID").to_csv(tmp_path / "covariates.tsv", sep="\t", index=False)
    out = write_split(tmp_path / "pheno.tsv", tmp_path / "covar.tsv",
                      _settings(split="covariate", covariate="centre", levels=["c"]), tmp_path / "replication",
                      tmp_path / "covariates.tsv")
    discovery, replication = PHENO.read(out["discovery_pheno"]), PHENO.read(out["replication_pheno"])
    assert set(discovery["IID"]) | set(replication["IID"]) == set(ids["IID"])
    assert not set(discovery["IID"]) & set(replication["IID"]) and len(replication) == 40
    # centre c alone in the replication set: both centre columns constant there, only centre_c in discovery
    assert list(COVAR.read(out["replication_covar"]).columns) == ["FID", "IID", "age"]
    assert list(COVAR.read(out["discovery_covar"]).columns) == ["FID", "IID", "age", "centre_b"]
    summary = pd.read_csv(out["summary"], sep="\t")
    assert summary.loc[0, ["discovery", "replication", "covariates"]].tolist() == [80, 40, 3]


def _leads() -> pd.DataFrame:
    return pd.DataFrame({
        "locus": [1, 2, 3, 4, 5], "chromosome": [1, 2, 3, 4, 5], "lead_position": [100, 200, 300, 400, 500],
        "lead_snp": ["v1", "v2", "v3", "v4", "v5"],
        "lead_dimension": ["udip_000", "udip_001", "udip_000", "joint", "udip_001"],
        "lead_p": [1e-10, 1e-9, 1e-8, 1e-12, 2e-8], "tests": ["single", "both", "single", "joint", "single"]})


def test_score_replication_asks_the_discovery_sign_of_the_same_allele() -> None:
    discovery = pd.DataFrame({"locus": [1, 2, 3, 5], "variant_id": ["v1", "v2", "v3", "v5"],
                              "effect_allele": ["A", "C", "G", "T"], "other_allele": ["G", "T", "A", "C"],
                              "beta": [0.3, -0.2, 0.25, 0.1], "standard_error": 0.01, "p_value": 1e-9})
    replication = pd.DataFrame({
        "variant_id": ["v1", "v2", "v3", "v1"], "dimension": ["udip_000", "udip_001", "udip_000", "udip_001"],
        # v1 replicates at Bonferroni; v2 is reported for the other allele, so its +0.1 is -0.1: the same sign;
        # v3 has the opposite sign; v5 was not tested
        "effect_allele": ["A", "T", "G", "A"], "other_allele": ["G", "C", "A", "G"], "beta": [0.2, 0.1, -0.2, 0.5],
        "standard_error": 0.05, "p_value": [1e-4, 0.03, 1e-3, 1e-9]})
    joint_p = {"v1": 1e-5, "v2": 0.2, "v3": 0.01, "v4": 0.004, "v5": np.nan}
    table = score_replication(_leads(), discovery, replication, joint_p, 0.05).set_index("lead_snp")
    assert table["replication_beta"].tolist()[:3] == [0.2, -0.1, -0.2]
    assert table["same_sign"].tolist()[:3] == [True, True, False] and pd.isna(table.at["v4", "same_sign"])
    assert table["replicated"].tolist() == [True, True, False, True, False]
    # Bonferroni over 5 loci: p < 0.01
    assert table["replicated_bonferroni"].tolist() == [True, False, False, True, False]
    assert table.at["v4", "dimension"] == "joint" and table.at["v1", "replication_joint_p"] == 1e-5


def test_the_report_tables_gain_each_locus_replication(tmp_path: Path) -> None:
    REPLICATION.write(pd.DataFrame({"locus": [1, 2], "replicated": [True, False],
                                    "replicated_bonferroni": [False, False]}), tmp_path / "replication.tsv")
    replication = REPLICATION.read(tmp_path / "replication.tsv")
    rows = pd.DataFrame({"locus": pd.array([2, 1, 1, pd.NA], dtype="Int64"), "dimension": ["a", "b", "c", None]})
    flagged = with_replication(rows, replication)
    assert flagged["replicated"].tolist() == [False, True, True, False]
    assert not flagged["replicated_bonferroni"].any()


def _config(**replication) -> dict:
    with open(ROOT / "config.yaml") as fh:
        config = yaml.safe_load(fh)
    config["replication"] = {**config.get("replication", {}), **replication}
    return config


def test_the_config_checks_the_split_keys_at_start() -> None:
    with pytest.raises(ConfigError, match="replication.file"):
        validate_study(_config(enabled=True, split="file"))
    with pytest.raises(ConfigError, match="replication.covariate"):
        validate_study(_config(enabled=True, split="covariate", covariate="centre"))
    assert validate_study(_config(enabled=False, split="file"))["replication"]["fraction"] == 0.35


def test_the_dry_run_routes_the_gwas_through_the_discovery_set(tmp_path: Path) -> None:
    config = _config(enabled=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "--printshellcmds", configfile=path)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for rule in ("split_replication", "replication_gwas", "replicate_loci"):
        assert f"rule {rule}:" in out
    shard = out[out.index("rule gwas_shard:"):]
    shard = shard[: shard.index("rule ", 10)] if "rule " in shard[10:] else shard
    assert "replication/discovery/pheno.tsv" in shard and "results/pheno/pheno.tsv" not in shard
    assert "--replication results/loci/replication.tsv" in out[out.index("rule summarise_study:"):]
    off = copy.deepcopy(config)
    off["replication"]["enabled"] = False
    path.write_text(yaml.safe_dump(off))
    run = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=path)
    assert run.returncode == 0 and "replicate_loci" not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_planted_locus_found_in_discovery_replicates_with_the_same_engine(tmp_path: Path) -> None:
    # 1,500 subjects, 8 dimensions, 400 variants: one variant acts on udip_000, one thinly on all dimensions
    n, k, v, focal, spread = 1500, 8, 400, 300, 100
    rng = np.random.default_rng(5)
    dosages = rng.binomial(2, 0.3, size=(n, v)).astype(np.int8)
    ids = [f"s{i:04d}" for i in range(n)]
    write_bed(tmp_path / "geno", dosages, pd.DataFrame({"chrom": 1, "id": [f"rs{i}" for i in range(v)],
                                                        "pos": np.arange(v) * 5000 + 10_001, "ref": "A", "alt": "G"}),
              ids)
    y = rng.standard_normal((n, k)) + 0.2 * np.outer(dosages[:, spread] - 0.6, np.ones(k))
    y[:, 0] -= 0.4 * (dosages[:, focal] - 0.6)
    frame = pd.DataFrame({"FID": ids, "IID": ids})
    PHENO.write(frame.join(pd.DataFrame(y, columns=[f"udip_{i:03d}" for i in range(k)])), tmp_path / "pheno.tsv")
    COVAR.write(frame.assign(age=rng.normal(size=n), sex=rng.integers(0, 2, n)), tmp_path / "covar.tsv")
    split = write_split(tmp_path / "pheno.tsv", tmp_path / "covar.tsv", _settings(), tmp_path / "replication")
    gwas = ShardSettings.from_config(stage_config({"gwas": {"engine": "plink2"}}, ShardSettings.CONFIG_KEYS))
    joint = JointSettings.from_config(stage_config({"joint": {}, "seed": 1}, JointSettings.CONFIG_KEYS))
    gwas_shard(gwas, tmp_path / "geno", split["discovery_pheno"], split["discovery_covar"], tmp_path / "shard")
    gather_sumstats([tmp_path / "shard"], tmp_path / "sumstats", tmp_path / "lambda.tsv", tmp_path / "qq.png")
    joint_file = joint_stage(tmp_path / "sumstats", tmp_path / "geno", split["discovery_pheno"],
                             split["discovery_covar"], joint, tmp_path / "joint.tsv.gz", tmp_path / "jl.tsv",
                             tmp_path / "jqq.png", progress=False)["joint"]
    loci = find_loci(tmp_path / "sumstats", tmp_path / "geno", tmp_path / "loci",
                     LociSettings.from_config(stage_config({"loci": {}}, LociSettings.CONFIG_KEYS)),
                     phenotypes=split["discovery_pheno"], joint=joint_file, progress=False)["loci_merged"]
    replication_gwas(gwas, {"1": tmp_path / "geno"}, split["replication_pheno"], split["replication_covar"], loci,
                     tmp_path / "replication" / "gwas")
    out = replicate_loci(loci, tmp_path / "sumstats", tmp_path / "replication" / "gwas", split["summary"], 0.05,
                         tmp_path / "replication.tsv", tmp_path / "replication_summary.tsv", joint,
                         tmp_path / "geno", split["replication_pheno"], split["replication_covar"])
    table = REPLICATION.read(out["table"]).set_index("lead_snp")
    assert set(table.index) == {f"rs{focal}", f"rs{spread}"}
    lead = table.loc[f"rs{focal}"]
    assert lead["dimension"] == "udip_000" and lead["discovery_beta"] * lead["replication_beta"] > 0
    assert lead["replicated"] and lead["replicated_bonferroni"] and lead["replication_joint_p"] < 1e-3
    assert table.loc[f"rs{spread}", "replicated"]  # by its dimension, or by the joint test where only it found it
    summary = pd.read_csv(out["summary"], sep="\t")
    assert summary.loc[0, ["discovery_subjects", "replication_subjects", "loci", "tested", "replicated"]].tolist() == [
        975, 525, 2, 2, 2]
