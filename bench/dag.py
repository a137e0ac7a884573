#!/usr/bin/env python
"""How long `snakemake -n` takes to build the DAG of a full-size study.

A UK Biobank-sized layout: real-data config (no simulation), 128 dimensions, 22 chromosomes
x `--batches` dimension batches of GWAS shards, every later stage. The input files exist but
are empty: a dry run only looks at paths. The baseline, timed in the same run, is `snakemake -n`
of a one-rule workflow: Snakemake's own start-up, which no workflow can go below.

    python bench/dag.py [--batches 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(snakefile: Path, workdir: Path, configfile: Path | None) -> tuple[float, str]:
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--snakefile", str(snakefile),
               "--directory", str(workdir)]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, run.stdout + run.stderr


def _study_layout(folder: Path, batches: int) -> Path:
    """Empty input files and a real-data config for them; returns the config path."""
    for name in ("samples.tsv", "covariates.tsv", "known_loci.tsv", "genes.tsv"):
        (folder / name).touch()
    for ext in (".pgen", ".pvar", ".psam"):
        (folder / f"imputed{ext}").touch()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    config["inputs"] = {"samples": str(folder / "samples.tsv"), "covariates": str(folder / "covariates.tsv"),
                        "genotypes": str(folder / "imputed"), "known_loci": str(folder / "known_loci.tsv"),
                        "genes": str(folder / "genes.tsv")}
    config["results"] = str(folder / "results")
    config["gwas"].update(engine="regenie", chromosomes=list(range(1, 23)), dimension_batches=batches)
    config["perdi"]["dimensions"] = "all"
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=4, help="dimension batches per chromosome")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _study_layout(folder, args.batches)
        trivial = folder / "Trivial.smk"
        trivial.write_text('rule all:\n    output: "done.txt"\n    shell: "touch {output}"\n')
        ours, baseline = [], []
        for _ in range(args.repeats):
            seconds, text = _dry_run(ROOT / "Snakefile", folder, config)
            ours.append(seconds)
            baseline.append(_dry_run(trivial, folder, None)[0])
        shards = text.count("rule gwas_shard:")
        jobs = text.count("\nrule ") + text.count("\nlocalrule ")
    ours_s, base_s = statistics.median(ours), statistics.median(baseline)
    print(f"full-size study DAG: {jobs} jobs ({shards} GWAS shards = 22 chromosomes x {args.batches} batches)")
    print(f"snakemake -n, this workflow:      {ours_s:.2f} s (median of {args.repeats}; goal < 5 s)")
    print(f"snakemake -n, one-rule workflow:  {base_s:.2f} s (Snakemake's start-up)")
    print(f"ratio: {ours_s / base_s:.2f}x the start-up; workflow's own share {ours_s - base_s:.2f} s")


if __name__ == "__main__":
    main()
