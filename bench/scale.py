#!/usr/bin/env python
"""How each workflow job's wall time and peak memory grow with the study, and what that means at full size.

Runs the tiny study's whole workflow (`.test/config.yaml`) at several sizes: a subjects sweep (simulated
cohorts of ``--subjects`` at 2 mm, 2 x 2 Mb of genome) and a variants sweep (the first cohort size, a genome
of ``--length-mb`` per chromosome). Each job's wall time and peak resident memory come from its Snakemake
benchmark file (``max_rss``, the job's process tree). Per rule and sweep it fits the growth (log-log slope
and a line, cost = a + b x size) and extrapolates the line to 45,000 subjects or to 10 M variants (the
rule's share of them: a chromosome's for per-chromosome jobs), printed beside what the rule asks there by
:mod:`vitudip.resources` (45,000 subjects x 10 M variants x 128 dimensions at 1 mm).

    python bench/scale.py                                  # about 12-15 min on 2 cores
    python bench/scale.py --measurements m.json            # keep the measurements (a rerun resumes)
    python bench/scale.py --from m.json                    # the report again, from kept measurements

A line from tiny sizes says how a cost grows, not what the fixed part of a large job is: the resource
formulas take their per-unit terms from the data each job holds (documented in vitudip/resources.py) and
these runs check them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: rules run once per chromosome: their variants are a chromosome's, at full size 10 M / 22
PER_CHROMOSOME = {"prepare_genotypes", "gwas_shard"}
#: rules whose cost follows the variants; the others are extrapolated in subjects only
VARIANT_RULES = {"prepare_genotypes", "genotype_qc", "gwas_shard", "gwas_gather", "joint_test", "calibrate_joint",
                 "find_loci", "prepare_phenotypes", "perdi_maps", "simulate_cohort"}


def _count_rows(path: Path, comment: str = "") -> int:
    with open(path) as fh:
        return sum(1 for line in fh if not (comment and line.startswith(comment)))


def run_study(workdir: Path, subjects: int, length_mb: float) -> dict:
    """The tiny study's workflow at one size; returns its sizes and each job's seconds and max_rss (MB)."""
    shutil.copytree(ROOT / ".test", workdir / ".test", ignore=shutil.ignore_patterns("results"))
    path = workdir / ".test" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["simulate"]["n_subjects"] = subjects
    config["simulate"]["genotypes"]["length_mb"] = length_mb
    # this measures costs, not calibration: the permuted null of a few hundred subjects may exceed the limit
    config["joint"]["null_lambda_limit"] = 100.0
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                          str(workdir), "--cores", "2", "--configfile", str(path)],
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if run.returncode:
        raise RuntimeError(f"the workflow at {subjects} subjects, {length_mb} Mb failed:\n{run.stderr[-3000:]}")
    results = workdir / ".test" / "results"
    jobs = {}
    for bench in sorted((results / "benchmarks").rglob("*.tsv")):
        header, row = bench.read_text().splitlines()[:2]
        values = dict(zip(header.split("\t"), row.split("\t")))
        jobs[str(bench.relative_to(results / "benchmarks").with_suffix(""))] = {
            "s": float(values["s"]), "max_rss": float(values["max_rss"])}
    pvars = sorted((results / "genotypes").glob("chr*.pvar"))
    sizes = {"subjects": _count_rows(results / "preprocess" / "qc.tsv") - 1,
             "variants_per_chromosome": max(_count_rows(p, "#") for p in pvars),
             "variants": sum(_count_rows(p, "#") for p in pvars), "length_mb": length_mb}
    return {"sizes": sizes, "jobs": jobs, "wall_s": wall}


def measure(subjects: list[int], lengths: list[float], store: Path | None) -> dict:
    """Both sweeps; the first subjects count and the first length are one shared run. Each finished run is
    kept in ``store`` (JSON) at once, and a run already there is not run again."""
    kept = json.loads(store.read_text()) if store and store.exists() else {}
    plan = [(n, lengths[0]) for n in subjects] + [(subjects[0], length) for length in lengths[1:]]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for i, (n, length) in enumerate(plan, 1):
            key = f"{n} {length}"
            if key in kept:
                print(f"[{i}/{len(plan)}] {n} subjects, {length} Mb per chromosome: kept in {store}", flush=True)
                continue
            print(f"[{i}/{len(plan)}] workflow at {n} subjects, {length} Mb per chromosome ...", flush=True)
            kept[key] = run_study(Path(tmp) / f"n{n}_l{length}", n, length)
            print(f"    done in {kept[key]['wall_s']:.0f} s", flush=True)
            if store:
                store.write_text(json.dumps(kept, indent=1))
    return {"subjects": [kept[f"{n} {lengths[0]}"] for n in subjects],
            "variants": [kept[f"{subjects[0]} {length}"] for length in lengths]}


def _by_rule(run: dict) -> dict[str, dict[str, float]]:
    """Each rule's largest job (seconds and max_rss) of one run."""
    rules: dict[str, dict[str, float]] = {}
    for job, cost in run["jobs"].items():
        rule = job.split("/")[0]
        best = rules.setdefault(rule, {"s": 0.0, "max_rss": 0.0})
        best["s"], best["max_rss"] = max(best["s"], cost["s"]), max(best["max_rss"], cost["max_rss"])
    return rules


def fit(x: list[float], y: list[float], target: float) -> tuple[float, float, float, float]:
    """Log-log slope, the line's intercept and slope, and the line at ``target`` (at least the largest y)."""
    xs, ys = np.asarray(x, float), np.maximum(np.asarray(y, float), 1e-3)
    loglog = float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
    slope, intercept = np.polyfit(xs, ys, 1)
    slope = max(float(slope), 0.0)
    return loglog, float(intercept), slope, max(float(intercept) + slope * target, float(ys.max()))


def report(measurements: dict) -> None:
    from vitudip.resources import FULL_STUDY, POST_TRAINING_CHAIN, full_study_requests, post_training_hours

    requests = full_study_requests()
    print(f"full study: {FULL_STUDY}")
    for sweep in ("subjects", "variants"):
        runs = measurements[sweep]
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in runs)
        print(f"\n{sweep} sweep: subjects {[r['sizes']['subjects'] for r in runs]}, variants per chromosome "
              f"{[r['sizes']['variants_per_chromosome'] for r in runs]} (whole workflow {walls} s)")
        print(f"{'rule':<24}{'size':>22}{'s':>18}{'slope':>6}{'max_rss MB':>18}{'slope':>6}"
              f"{'line at full: min':>18}{'GB':>7}{'asks: min':>10}{'GB':>7}")
        for rule in sorted(set.intersection(*(set(_by_rule(r)) for r in runs))):
            if sweep == "variants" and rule not in VARIANT_RULES:
                continue
            if sweep == "subjects":
                key, target = "subjects", FULL_STUDY.subjects
            elif rule in PER_CHROMOSOME:
                key, target = "variants_per_chromosome", FULL_STUDY.variants / FULL_STUDY.chromosomes
            else:
                key, target = "variants", FULL_STUDY.variants
            sizes = [r["sizes"][key] for r in runs]
            costs = [_by_rule(r)[rule] for r in runs]
            t_slope, _, _, t_full = fit(sizes, [c["s"] for c in costs], target)
            m_slope, _, _, m_full = fit(sizes, [c["max_rss"] for c in costs], target)
            asks = requests.get(rule)
            asked = f"{asks.runtime:>10}{asks.mem_mb / 1000:>7.1f}" if asks else f"{'-':>10}{'-':>7}"
            seconds = " ".join(f"{c['s']:.1f}" for c in costs)
            rss = " ".join(f"{c['max_rss']:.0f}" for c in costs)
            print(f"{rule:<24}{' '.join(str(x) for x in sizes):>22}{seconds:>18}{t_slope:>6.2f}{rss:>18}"
                  f"{m_slope:>6.2f}{t_full / 60:>18.1f}{m_full / 1000:>7.1f}{asked}")
    print("\nslope: log-log growth exponent over the sweep; line at full: the fitted a + b x size at the full "
          "study's size of the swept quantity only (the others stay the tiny study's); asks: the rule's request "
          "at the full study (vitudip/resources.py)")
    limits, rates = post_training_hours(requests)
    print(f"after training at full size, {' -> '.join(POST_TRAINING_CHAIN)} (the GWAS shards side by side): "
          f"{limits:.1f} h at the requests' time limits, {rates:.1f} h at the measured rates behind them")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, nargs="+", default=[40, 80, 160])
    parser.add_argument("--length-mb", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    parser.add_argument("--measurements", type=Path,
                        help="keep each run's measurements in this JSON file (and reuse those already there)")
    parser.add_argument("--from", dest="source", type=Path, help="report kept measurements instead of running")
    args = parser.parse_args()
    if len(args.subjects) < 3 or len(args.length_mb) < 3:
        parser.error("each sweep needs at least three sizes to fit a growth")
    if args.source:
        kept = json.loads(args.source.read_text())
        measurements = {"subjects": [kept[f"{n} {args.length_mb[0]}"] for n in args.subjects],
                        "variants": [kept[f"{args.subjects[0]} {length}"] for length in args.length_mb]}
    else:
        measurements = measure(args.subjects, args.length_mb, args.measurements)
    report(measurements)


if __name__ == "__main__":
    main()
