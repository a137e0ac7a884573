"""The workflow as users run it: dry runs, config errors at start, and the tiny config end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vitudip.genetics.joint_table import JOINT_COLUMNS
from vitudip.io.bgen import write_bgen, write_sample_file

from tiny_study import snakemake

ROOT = Path(__file__).resolve().parent.parent


def test_dry_run_of_the_default_config_lists_only_built_stages(tmp_path):
    run = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    for built in ("simulate_cohort", "preprocess_images", "train_model", "embed_udips", "embed_pca_baseline",
                  "embedding_vs_truth", "genotype_qc", "prepare_phenotypes", "gwas_shard", "gwas_gather", "joint_test",
                  "calibrate_joint", "estimate_heritability", "find_loci", "perdi_maps", "summarise_study"):
        assert built in out


def test_the_torch_rules_hand_their_threads_to_their_scripts(tmp_path):
    # --cores 2 caps every rule's threads: at 2; the scripts pass them on to torch
    run = snakemake(tmp_path, "-n", "--printshellcmds")
    assert run.returncode == 0, run.stderr
    lines = (run.stdout + run.stderr).splitlines()
    for rule in ("train_model", "embed_udips", "embed_pca_baseline", "perdi_maps"):
        command = next(line for line in lines if f"logs/{rule}.log" in line and "--settings" in line)
        assert "--threads 2 " in command, command


@pytest.mark.slow
def test_rules_run_on_the_python_that_runs_snakemake_whatever_is_on_path(tmp_path, tiny_config):
    """``.venv/bin/snakemake`` with the venv off PATH: the stage scripts still find the venv's packages."""
    tiny_config["simulate"].update(outdir=str(tmp_path / "demo"), n_subjects=20)
    tiny_config["inputs"] = {key: str(tmp_path / "demo" / ("geno" if key == "genotypes" else f"{key}.tsv"))
                             for key in tiny_config["inputs"]}
    tiny_config["results"] = str(tmp_path / "results")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    bare = tmp_path / "bin"
    bare.mkdir()
    # a `python` first on PATH without the pipeline's packages
    (bare / "python").symlink_to("/usr/bin/python3")
    env = {"PATH": f"{bare}:/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                          "--directory", str(tmp_path), "--cores", "1", str(tmp_path / "demo" / "samples.tsv"),
                          "--configfile", str(path)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert (tmp_path / "demo" / "samples.tsv").is_file()


def test_a_bad_config_stops_the_workflow_naming_the_key(tmp_path):
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config["preprocess"]["on_bad_image"] = "ignore"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=bad)
    assert run.returncode != 0
    assert "preprocess.on_bad_image" in run.stderr + run.stdout


def test_real_data_config_with_a_missing_samples_file_stops_at_start(tmp_path):
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    config["inputs"]["samples"] = str(tmp_path / "absent.tsv")
    bad = tmp_path / "real.yaml"
    bad.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=bad)
    assert run.returncode != 0
    assert "inputs.samples" in run.stderr + run.stdout and "absent.tsv" in run.stderr + run.stdout


def _real_data_config(tmp_path: Path, samples: str, covariates: str) -> Path:
    """The tiny config on user tables with these contents, and an (empty) PLINK 1 fileset."""
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    for key, text in (("samples", samples), ("covariates", covariates)):
        (tmp_path / f"{key}.tsv").write_text(text)
        config["inputs"][key] = str(tmp_path / f"{key}.tsv")
    config["inputs"].update(genotypes=str(tmp_path / "geno"), known_loci=None, genes=None)
    for ext in (".bed", ".bim", ".fam"):
        (tmp_path / f"geno{ext}").touch()
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_samples_table_without_a_required_column_stops_the_dry_run(tmp_path):
    covariates = "FID\tIID\tage\tsex\n1\t1\t60\t0\n"
    run = snakemake(tmp_path, "-n", configfile=_real_data_config(tmp_path, "subject_id\tt1\n1\ta.nii.gz\n",
                                                                 covariates))
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"samples table {tmp_path / 'samples.tsv'} lacks column(s) path" in out and "'inputs.samples'" in out
    # a covariate the config names (pheno.covariates: age, sex) must be a column too
    run = snakemake(tmp_path, "-n", configfile=_real_data_config(tmp_path, "subject_id\tpath\n1\ta.nii.gz\n",
                                                                 "FID\tIID\tage\n1\t1\t60\n"))
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"covariates table {tmp_path / 'covariates.tsv'}" in out and "lacks column(s) sex" in out
    run = snakemake(tmp_path, "-n", configfile=_real_data_config(tmp_path, "subject_id\tpath\n1\ta.nii.gz\n",
                                                                 covariates))
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]


@pytest.mark.parametrize(("engine", "fmt", "ld_reference", "planned", "not_planned"), [
    ("regenie", (".bed", ".bim", ".fam"), False, "regenie_step1", "convert_genotypes"),
    # every format is read once per chromosome, for the analysed samples only; no PLINK 1 copy is made
    ("torch", (".pgen", ".pvar", ".psam"), False, "prepare_genotypes", "regenie_step1"),
    ("plink2", (".bgen", ".sample"), False, "prepare_genotypes", "convert_genotypes"),
    ("torch", (".pgen", ".pvar", ".psam"), True, "gwas_shard", "convert_genotypes"),
    ("torch", (".bgen", ".sample"), True, "gwas_shard", "convert_genotypes"),
])
def test_dry_run_plans_the_engines_own_jobs(tmp_path, engine, fmt, ld_reference, planned, not_planned):
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    # the tables' headers (they are checked at start); no subject is needed to plan the jobs
    for key, header in (("samples", "subject_id\tpath\n"), ("covariates", "FID\tIID\tage\tsex\tcentre\n")):
        config["inputs"][key] = str(tmp_path / f"{key}.tsv")
        (tmp_path / f"{key}.tsv").write_text(header)
    config["inputs"].update(genotypes=str(tmp_path / "geno"), known_loci=None, genes=None)
    if fmt[0] == ".bgen":  # its header is read at start
        variants = pd.DataFrame({"chrom": ["21", "22"], "id": ["rs1", "rs2"], "pos": [1, 2], "ref": "A", "alt": "G"})
        write_bgen(tmp_path / "geno.bgen", variants, np.zeros((3, 2)))
        write_sample_file(tmp_path / "geno.sample", ["1", "2", "3"], ["1", "2", "3"])
    else:
        for ext in fmt:
            (tmp_path / f"geno{ext}").touch()
    config["gwas"].update(engine=engine, chromosomes=[21, 22], dimension_batches=3)
    if ld_reference:
        for ext in (".bed", ".bim", ".fam"):
            (tmp_path / f"panel{ext}").touch()
        config.setdefault("loci", {})["ld_reference"] = str(tmp_path / "panel")
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert planned in out and not_planned not in out
    # 2 chromosomes x 3 dimension batches, each chromosome prepared once
    assert "chr22/batch2" in out and out.count("rule gwas_shard:") == 6
    assert out.count("rule prepare_genotypes:") == 2


def test_training_is_planned_as_a_chain_of_jobs_of_epochs_per_job(tmp_path):
    """3 epochs, 1 per job: two train_segment jobs, each waiting for the one before, then train_model."""
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config["train"].update(epochs=3, epochs_per_job=1)
    # the main run's chain alone (the tiny config also trains the stability check's second run)
    config["stability"]["enabled"] = False
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "--printshellcmds", configfile=path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    jobs = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule in ("train_segment", "train_model"):
            inputs = next(line for line in block.splitlines() if line.strip().startswith("input:"))
            until = re.search(r"--until (\d+)", block)
            jobs[int(until.group(1)) if until else 3] = (rule, inputs)
    assert sorted(jobs) == [1, 2, 3] and jobs[3][0] == "train_model"
    assert "segments/epoch_" not in jobs[1][1]
    assert "segments/epoch_1.json" in jobs[2][1] and "segments/epoch_2.json" in jobs[3][1]
    # each job stops before its rule's runtime (in a Slurm job; a function of the inputs, so <TBD> in a dry run)
    # and appends its line to its log
    assert len(re.findall(r"--time-limit-minutes (?:\d+|<TBD>) ", out)) == 3 and ">> " in out


@pytest.mark.slow
def test_tiny_config_end_to_end(tiny_run, tmp_path):
    # the session's one run of the tiny study: on Slurm when tests/test_slurm.py is selected, else local
    study, config, res = tiny_run.workdir, tiny_run.config, tiny_run.results
    assert tiny_run.run.returncode == 0, tiny_run.output[-3000:]
    qc = pd.read_csv(res / "preprocess" / "qc.tsv", sep="\t", dtype={"subject_id": str})
    samples = pd.read_csv(res / "demo" / "samples.tsv", sep="\t", dtype={"subject_id": str})
    assert list(qc["subject_id"]) == list(samples["subject_id"])
    assert (qc["status"] == "ok").all()
    cache = np.load(res / "preprocess" / "cache" / "images.npy", mmap_mode="r")
    assert cache.shape == (len(samples), 96, 112, 96) and cache.dtype == np.float16
    mask = np.load(res / "preprocess" / "brain_mask.npy")
    assert mask.shape == (96, 112, 96) and mask.sum() > 100_000
    splits = pd.read_csv(res / "preprocess" / "splits.tsv", sep="\t", dtype={"subject_id": str})
    assert set(splits["split"]) == {"train", "val", "test"} and set(splits["subject_id"]) == set(samples["subject_id"])
    udips = pd.read_csv(res / "embed" / "udips.tsv", sep="\t", dtype={"IID": str})
    assert list(udips.columns[:3]) == ["FID", "IID", "udip_000"] and udips.shape == (len(samples), 2 + 128)
    assert set(udips["IID"]) == set(samples["subject_id"])
    truth = pd.read_csv(res / "embed" / "embedding_vs_truth.tsv", sep="\t")
    planted = truth[truth["measure"].isin(["ventricles_volume", "thalamus_intensity"])]
    assert set(truth["method"]) == {"vit", "pca"} and len(planted) == 4
    assert planted["max_abs_r"].between(0, 1).all()
    metrics = pd.read_csv(res / "train" / "metrics.tsv", sep="\t")
    assert list(metrics["epoch"]) == [1, 2] and (res / "train" / "checkpoints" / "last.pt").exists()
    assert metrics["val_participation_ratio"].between(1, 128).all()
    for folder in (res / "embed", res / "embed" / "pca"):
        spectrum = pd.read_csv(folder / "spectrum.tsv", sep="\t")
        health = pd.read_csv(folder / "health.tsv", sep="\t", keep_default_na=False)
        dims = sum(c.startswith("udip_") for c in pd.read_csv(folder / "udips.tsv", sep="\t", nrows=1).columns)
        # the tiny cohort's PCA has fewer components than 128 (training subjects - 1)
        assert len(spectrum) == dims and spectrum["cumulative_fraction"].iloc[-1] == pytest.approx(1.0)
        assert health.at[0, "participation_ratio"] >= 1 and health.at[0, "status"]
    assert (res / "embed" / "scree.png").stat().st_size > 0
    lambdas = pd.read_csv(res / "gwas" / "lambda.tsv", sep="\t")
    assert len(lambdas) == 128 and lambdas["n_variants"].gt(1000).all()
    assert len(list((res / "gwas" / "sumstats").glob("udip_*.tsv.gz"))) == 128
    # each file indexed for region queries and described for the GWAS Catalog
    assert len(list((res / "gwas" / "sumstats").glob("udip_*.tsv.gz.tbi"))) == 128
    meta = yaml.safe_load((res / "gwas" / "sumstats" / "udip_000.tsv.gz-meta.yaml").read_text())
    analysed = len(pd.read_csv(res / "pheno" / "pheno.tsv", sep="\t"))
    assert meta["data_file_name"] == "udip_000.tsv.gz" and meta["samples"][0]["sample_size"] == analysed
    pheno = pd.read_csv(res / "pheno" / "pheno.tsv", sep="\t", dtype={"IID": str})
    # everyone reaches the GWAS but the outliers (pheno.outlier_sd), and each of those says why
    exclusions = pd.read_csv(res / "pheno" / "exclusions.tsv", sep="\t", dtype=str)
    assert exclusions["reason"].str.startswith("outlier: ").all() and len(exclusions) <= 2
    assert set(pheno["IID"]) | set(exclusions["IID"]) == set(samples["subject_id"])
    assert not set(pheno["IID"]) & set(exclusions["IID"])
    joint = pd.read_csv(res / "gwas" / "joint" / "joint.tsv.gz", sep="\t")
    assert list(joint.columns) == JOINT_COLUMNS and len(joint) >= lambdas["n_variants"].max()
    assert joint["p_value"].between(0, 1).all() and (joint["df"] >= 1).all()
    joint_lambda = pd.read_csv(res / "gwas" / "joint" / "lambda.tsv", sep="\t")
    assert list(joint_lambda["test"]) == ["statistic", "min_p"] and (joint_lambda["n_variants"] == len(joint)).all()
    null = pd.read_csv(res / "gwas" / "joint" / "null.tsv", sep="\t")
    assert (null["status"] == "ok").all() and (null["lambda_gc"] <= null["limit"]).all()
    assert (res / "gwas" / "joint" / "null_qq.png").stat().st_size > 0
    # h2 of every UDIP and of the PCA baseline's dimensions, on the GWAS's samples; r_g of every pair
    h2 = pd.read_csv(res / "gwas" / "heritability.tsv", sep="\t")
    baseline_dims = sum(c.startswith("udip_") for c in pd.read_csv(res / "embed" / "pca" / "udips.tsv", sep="\t",
                                                                   nrows=1).columns)
    assert list(h2["embedding"]) == ["vit"] * 128 + ["pca"] * baseline_dims
    assert h2["se"].gt(0).all() and h2["n"].between(analysed - 2, analysed).all() and h2["variants"].gt(0).all()
    pairs = pd.read_csv(res / "gwas" / "genetic_correlation.tsv", sep="\t")
    assert len(pairs) == len(h2) * (len(h2) - 1) // 2
    h2_summary = pd.read_csv(res / "gwas" / "heritability_summary.tsv", sep="\t")
    # 40 subjects over 4 Mb: the summary says the SE is not to be trusted, and why
    assert list(h2_summary["embedding"]) == ["vit", "pca"] and "jackknife blocks" in h2_summary.at[0, "se_note"]
    loci = pd.read_csv(res / "loci" / "loci_merged.tsv", sep="\t", keep_default_na=False, na_values={"joint_p": "NA"})
    recovery = pd.read_csv(res / "loci" / "truth_recovery.tsv", sep="\t")
    assert "novel" in loci.columns and len(recovery) == 2  # the tiny config plants two SNPs
    assert set(loci["tests"]) <= {"joint", "single", "both"} and loci["joint_p"].notna().all()
    assert {"recovered_joint", "false_loci_joint"} <= set(pd.read_csv(res / "loci" / "truth_summary.tsv", sep="\t"))
    assert (res / "loci" / "manhattan.png").stat().st_size > 0
    regions = pd.read_csv(res / "perdi" / "regions.tsv", sep="\t")
    mapped = {p.name.removesuffix(".nii.gz") for p in (res / "perdi" / "maps").glob("udip_???.nii.gz")}
    assert mapped == set(regions["dimension"])
    assert mapped == {d for dims in loci["dimensions"] for d in dims.split(";") if d}
    summary = pd.read_csv(res / "report" / "summary.tsv", sep="\t")
    # one row per dimension reaching a locus, and one (its lead dimension's) per locus only the joint test reaches
    assert len(summary) == loci["n_dimensions"].sum() + (loci["tests"] == "joint").sum()
    single = summary[summary["tests"] != "joint"]
    assert single["perdi_mapped"].all() and single["region_1"].notna().all()
    assert set(summary["locus"]) == set(loci["locus"])
    assert summary["h2"].notna().all() and summary["h2_se"].gt(0).all()
    # every locus has its own direction's maps and ranking, carried into the summary
    locus_regions = pd.read_csv(res / "perdi" / "locus_regions.tsv", sep="\t")
    assert set(locus_regions["locus"]) == set(loci["locus"])
    assert {p.name for p in (res / "perdi" / "maps").glob("locus_???.nii.gz")} == {
        f"locus_{n:03d}.nii.gz" for n in loci["locus"]}
    assert len(pd.read_csv(res / "perdi" / "locus_directions.tsv", sep="\t")) == len(loci)
    assert summary["locus_mapped"].all() and summary["locus_region_1"].notna().all()
    truth_rows = pd.read_csv(res / "report" / "truth.tsv", sep="\t")
    assert set(truth_rows["effect"]) == {"ventricles_volume", "thalamus_intensity"}
    score = pd.read_csv(res / "report" / "truth_summary.tsv", sep="\t")
    assert len(score) == 1 and score.at[0, "recovered"] == recovery["found"].sum()
    for rule in ("simulate_cohort", "preprocess_images", "train_model", "embed_udips", "embed_pca_baseline",
                 "embedding_vs_truth", "prepare_phenotypes", "gwas_gather", "gwas_shard/chr1_batch1", "joint_test",
                 "calibrate_joint", "estimate_heritability", "find_loci", "perdi_maps", "summarise_study",
                 "plot_embedding_spectrum"):
        assert (res / "logs" / f"{rule}.log").stat().st_size > 0
        assert (res / "benchmarks" / f"{rule}.tsv").exists()
    again = snakemake(study, "-n", configfile=config)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    html = tmp_path / "report.html"
    report = snakemake(study, "--report", str(html), configfile=config)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "ERROR/" not in report.stderr + report.stdout  # every caption is valid reStructuredText
    page = html.read_text()
    for name in ("loss.png", "reconstruction.png", "scree.png", "embedding_vs_truth.tsv", "qq.png", "null_qq.png",
                 "manhattan.png", "heritability.png", "heritability_summary.tsv",
                 "loci_merged.tsv", "overview.png", "regions.tsv", "summary.tsv", "truth.tsv", "truth_summary.tsv",
                 "Simulated truth"):
        assert name in page, name
    # regional plots and PerDI panels exist only for loci, which the tiny cohort need not yield
    for locus, dimension, mapped_row in zip(summary["locus"], summary["dimension"], summary["perdi_mapped"]):
        assert f"locus_{locus:03d}.png" in page and (f"{dimension}.png" in page or not mapped_row)
    _reruns_touch_only_the_stage_and_what_follows(study, tmp_path, config, res)


#: The jobs downstream of the GWAS shards, which every GWAS rerun must redo (the permuted GWAS of
#: calibrate_joint reads no shard and runs in process whatever the engine: only its own settings rerun it).
AFTER_GWAS = {"gwas_shard", "gwas_gather", "joint_test", "find_loci", "perdi_maps", "summarise_study", "all"}


def _planned_jobs(run: subprocess.CompletedProcess) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run."""
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout + run.stderr
    table = text[text.index("Job stats:"):].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0] for line in table if line.split() and line.split()[0] != "total"}


def _reruns_touch_only_the_stage_and_what_follows(study: Path, tmp_path: Path, config: Path, res: Path) -> None:
    """Reruns as users do them, on the finished tiny study in ``study`` (dry runs; other configs in ``tmp_path``)."""
    # the main run's stages alone: the stability check's second run and comparison follow every stage too
    base = yaml.safe_load(config.read_text())
    base["stability"]["enabled"] = False
    config = tmp_path / "main_run.yaml"
    config.write_text(yaml.safe_dump(base))
    forced = _planned_jobs(snakemake(study, "-n", "--forcerun", "gwas_shard", configfile=config))
    assert forced == AFTER_GWAS
    # a changed GWAS setting reruns the GWAS and what follows, nothing upstream
    changed = yaml.safe_load(config.read_text())
    changed["gwas"]["engine"] = "plink2"
    other = tmp_path / "plink2.yaml"
    other.write_text(yaml.safe_dump(changed))
    assert _planned_jobs(snakemake(study, "-n", configfile=other)) == AFTER_GWAS
    # without the joint test the loci come from the single dimensions alone
    changed = yaml.safe_load(config.read_text())
    changed["joint"] = {"enabled": False}
    off = tmp_path / "no_joint.yaml"
    off.write_text(yaml.safe_dump(changed))
    assert _planned_jobs(snakemake(study, "-n", configfile=off)) == {"find_loci", "perdi_maps", "summarise_study",
                                                                         "all"}
    # a deleted output is made again by its own job, and only what reads that job's outputs follows
    (res / "loci" / "manhattan.png").unlink()
    assert _planned_jobs(snakemake(study, "-n", configfile=config)) == {
        "find_loci", "perdi_maps", "summarise_study", "all"}
    (res / "loci" / "manhattan.png").touch()  # leave the study complete for later checks


def test_lint_is_clean_and_every_environment_is_pinned(tmp_path):
    run = snakemake(tmp_path, "--lint")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Lints for" not in run.stdout + run.stderr, (run.stdout + run.stderr)[:3000]
    for path in (ROOT / "envs").glob("*.yaml"):
        env = yaml.safe_load(path.read_text())
        packages = [d for d in env["dependencies"] if isinstance(d, str)]
        packages += [p for d in env["dependencies"] if isinstance(d, dict) for p in d.get("pip", [])]
        unpinned = [p for p in packages if "=" not in p]
        assert not unpinned, f"{path.name}: {unpinned}"
    used = {line.split('"')[1].split("/")[-1] for smk in (ROOT / "workflow" / "rules").glob("*.smk")
            for line in smk.read_text().splitlines() if "envs/" in line and '"' in line}
    assert used == {p.name for p in (ROOT / "envs").glob("*.yaml")}
