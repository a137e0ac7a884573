"""`snakemake --profile slurm`, exactly as a user types it in the project root, on a real Slurm.

The session's tiny study (``tiny_run``, :mod:`tiny_study`) runs on a single-node Slurm the tests
bring up (:mod:`slurm_cluster`) when this test is selected; this test checks that every job that is
not a localrule went through Slurm: each has a Slurm job id and a Slurm log, the job-completion log
lists them all as COMPLETED, and the GPU rules were given a GPU. The outputs themselves are checked
by ``tests/test_workflow.py::test_tiny_config_end_to_end`` on the same run.

Needs root (daemons, /etc/slurm) and Debian's slurmctld, slurmd, slurm-client and munge: `make`
installs them when run as root, and so does the fixture if they are missing and apt-get works.
Otherwise it is skipped, saying why (and the study runs locally).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vitudip.resources import FLOOR_MB, declared_memory

from slurm_cluster import scontrol_jobs, tail

ROOT = Path(__file__).resolve().parent.parent
# the rules that ask for one GPU (train.device, perdi.device are auto in the tiny config)
GPU_RULES = {"train_model", "embed_udips", "perdi_maps",
             # the stability check's second run uses the same rules (the tiny config turns it on)
             "stability_train_model", "stability_embed_udips", "stability_embed_untrained"}

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def test_profile_slurm_runs_every_job_through_slurm(tiny_run):
    if tiny_run.slurm is None:
        pytest.skip(tiny_run.why_local)
    slurm, run, out = tiny_run.slurm, tiny_run.run, tiny_run.output
    context = f"\n{out[-4000:]}\n--- slurmctld.log\n{tail(slurm / 'slurmctld.log', 1500)}"
    assert run.returncode == 0, context
    assert re.search(r"Using profiles? slurm\b", out), context

    # every job that is not a localrule was submitted to Slurm, with a job id and a kept Slurm log
    remote = sorted(re.findall(r"^rule (\w+):$", out, flags=re.M))
    local = set(re.findall(r"^localrule (\w+):$", out, flags=re.M))
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.", out)
    assert remote and len(submitted) == len(remote), context
    rule_of = {}
    for jobid, log in submitted:
        parts = Path(log).parts
        rule = parts[parts.index("slurm_logs") + 1].removeprefix("rule_")  # .../slurm_logs/rule_<rule>/...
        rule_of[jobid] = rule
        assert Path(log).is_file() and f"rule {rule}:" in Path(log).read_text(), log
    assert sorted(rule_of.values()) == remote
    built = {"simulate_cohort", "preprocess_images", "train_model", "embed_udips", "embed_pca_baseline",
             "gwas_shard", "gwas_gather", "find_loci", "perdi_maps"}
    assert built <= set(remote) and not built & local
    # the cheap table joins run on the submitting host
    assert {"embedding_vs_truth", "prepare_phenotypes", "summarise_study"} <= local
    assert remote.count("gwas_shard") == 4  # 2 chromosomes x 2 dimension batches

    # the job-completion log lists every one of them as COMPLETED
    completed = {}
    for line in (slurm / "jobcomp.log").read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        completed[fields["JobId"]] = fields["JobState"]
    assert {jobid: completed.get(jobid) for jobid in rule_of} == {jobid: "COMPLETED" for jobid in rule_of}

    # Slurm got each rule's resources: its name, a GPU for the GPU rules, threads, memory and time
    jobs = scontrol_jobs()
    # threads are capped at the submitting host's CPUs (profiles/default sets cores: all)
    gwas_threads = min(yaml.safe_load((ROOT / "config.yaml").read_text())["gwas"]["threads"],
                       len(os.sched_getaffinity(0)))
    for jobid, rule in rule_of.items():
        job = jobs[jobid]
        assert job["Comment"].startswith(f"rule_{rule}"), job
        assert ("gpu" in job.get("TresPerJob", "")) == (rule in GPU_RULES), (rule, job.get("TresPerJob"))
        assert job["TimeLimit"] != "UNLIMITED" and job["MinMemoryNode"].endswith("M"), job
        assert int(job["MinMemoryNode"][:-1]) >= FLOOR_MB, job
        if rule == "gwas_shard":
            assert job["CPUs/Task"] == str(gwas_threads), job
    # the memory each job asked Slurm for is the mem_mb its rule declared for its inputs (vitudip/resources.py)
    asked: dict[str, list[int]] = {}
    for jobid, rule in rule_of.items():
        asked.setdefault(rule, []).append(int(jobs[jobid]["MinMemoryNode"][:-1]))
    declared: dict[str, list[int]] = {}
    for rule, mem_mb in declared_memory(out).values():
        if rule in rule_of.values():
            declared.setdefault(rule, []).append(mem_mb)
    assert {r: sorted(m) for r, m in asked.items()} == {r: sorted(m) for r, m in declared.items()}

    # and the workflow's results are all there
    res = tiny_run.results
    lambdas = pd.read_csv(res / "gwas" / "lambda.tsv", sep="\t")
    assert len(lambdas) == 128
    for path in ("train/model.pt", "embed/udips.tsv", "loci/loci_merged.tsv", "perdi/regions.tsv",
                 "report/summary.tsv"):
        assert (res / path).stat().st_size > 0, path
