#!/usr/bin/env python
"""Benchmark the joint test: its cost for 128 dimensions over a million variants, and its share of the GWAS.

Simulates per-dimension z-scores z ~ N(0, R) for an embedding-like R (eigenvalues
decaying geometrically) in chunks, and times, side by side in one run:

* building the test once (eigen-decomposition, min-P's null table);
* the eigen (top directions for 90 % of the variance) and full-rank statistics with their χ² p;
* min-P with its family-wise p;
* writing joint.tsv.gz;
* against the torch engine's association of the same output size (N samples x chunk variants x 128
  phenotypes, extrapolated per variant) and the GWAS-SSF writing of the same rows (128 per variant).

    python bench/joint.py                          # 1,000,000 variants, 128 dimensions, N 5,000
    python bench/joint.py --variants 200000        # a quick look
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from vitudip.genetics.joint_stats import JointResult, JointTest, chi2_p_values
from vitudip.genetics.joint_table import JointWriter
from vitudip.genetics.linear import linear_association
from vitudip.genetics.sumstats import SumstatsWriter, genomic_inflation, variant_texts


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--dimensions", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=100_000, help="variants per chunk")
    parser.add_argument("--n", type=int, default=5000, help="samples of the torch engine's association block")
    parser.add_argument("--engine-block", type=int, default=4096, help="variants of the timed engine block")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def correlation(k: int, rng: np.random.Generator) -> np.ndarray:
    """An embedding-like correlation: random directions, eigenvalues decaying by 0.95."""
    directions = np.linalg.qr(rng.normal(size=(k, k)))[0]
    values = 0.95 ** np.arange(k)
    covariance = directions * values @ directions.T
    scale = np.sqrt(np.diag(covariance))
    return covariance / np.outer(scale, scale)


def chunk_variants(size: int, start: int) -> pd.DataFrame:
    return pd.DataFrame({"chromosome": 1, "base_pair_location": np.arange(start, start + size) * 10 + 1,
                         "effect_allele": "G", "other_allele": "A",
                         "variant_id": [f"rs{i}" for i in range(start, start + size)]})


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    k = args.dimensions
    r = correlation(k, rng)
    root = np.linalg.cholesky(r)
    clock = {name: 0.0 for name in ("build", "eigen", "full", "min_p", "write_joint", "simulate")}

    started = time.perf_counter()
    eigen = JointTest.from_correlation(r, [f"udip_{i:03d}" for i in range(k)])
    full = JointTest.from_correlation(r, eigen.dimensions, method="full")
    clock["build"] = time.perf_counter() - started
    print(f"eigen test: {eigen.describe()}")

    lambdas = []
    with tempfile.TemporaryDirectory() as tmp, JointWriter(Path(tmp) / "joint.tsv.gz", eigen.dimensions) as writer:
        for start in range(0, args.variants, args.chunk):
            size = min(args.chunk, args.variants - start)
            t0 = time.perf_counter()
            z = rng.standard_normal((size, k)) @ root.T
            p = 2.0 * stats.norm.sf(np.abs(z))  # in the pipeline p comes with z from the GWAS
            variants = variant_texts(chunk_variants(size, start))
            t1 = time.perf_counter()
            statistic, df = eigen.statistic(z)
            eigen_p = chi2_p_values(statistic, df)
            t2 = time.perf_counter()
            full_p = chi2_p_values(*full.statistic(z))
            t3 = time.perf_counter()
            smallest, index, familywise = eigen.min_p(p)
            t4 = time.perf_counter()
            writer.write(variants, JointResult(statistic, df, eigen_p, smallest, index, familywise), 5000)
            t5 = time.perf_counter()
            for name, seconds in zip(("simulate", "eigen", "full", "min_p", "write_joint"),
                                     (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                clock[name] += seconds
            lambdas.append((eigen_p, full_p, familywise))
            print(f"  {start + size:,} variants", flush=True)

    # the GWAS of the same output: the engine's association per variant, and GWAS-SSF writing per row
    dosages = rng.binomial(2, 0.3, size=(args.n, args.engine_block)).astype(np.int8)
    phenotypes = rng.normal(size=(args.n, k))
    covariates = rng.normal(size=(args.n, 10))
    linear_association(dosages[:, :64], phenotypes, covariates)  # warm-up
    t0 = time.perf_counter()
    result = linear_association(dosages, phenotypes, covariates)
    association_per_variant = (time.perf_counter() - t0) / args.engine_block
    rows = min(args.engine_block, 4096)
    variants = variant_texts(chunk_variants(rows, 0))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with SumstatsWriter(Path(tmp) / "x.tsv.gz") as writer:
            for column in range(k):
                writer.write_statistics(variants, result.beta[:rows, column], result.standard_error[:rows, column],
                                        result.alt_frequency[:rows, column], result.p_value[:rows, column], args.n)
        writing_per_row = (time.perf_counter() - t0) / (rows * k)

    eigen_p, full_p, familywise = (np.concatenate(parts) for parts in zip(*lambdas))
    joint_total = clock["build"] + clock["eigen"] + clock["min_p"] + clock["write_joint"]
    association = association_per_variant * args.variants
    writing = writing_per_row * args.variants * k
    print(f"\n{args.variants:,} variants x {k} dimensions, {args.threads} threads")
    print(f"build the tests once            {clock['build']:8.2f} s")
    print(f"eigen statistic + χ² p ({eigen.df} df)  {clock['eigen']:8.2f} s   λGC {genomic_inflation(eigen_p):.3f}")
    print(f"full statistic + χ² p ({full.df} df)  {clock['full']:8.2f} s   λGC {genomic_inflation(full_p):.3f}")
    print(f"min-P + family-wise p           {clock['min_p']:8.2f} s   λGC {genomic_inflation(familywise):.3f}")
    print(f"write joint.tsv.gz              {clock['write_joint']:8.2f} s")
    print(f"joint step (build, eigen, min-P, write)  {joint_total:8.2f} s")
    print(f"torch association (N {args.n:,}, extrapolated from {args.engine_block} variants)  {association:8.2f} s")
    print(f"GWAS-SSF writing ({writing_per_row * 1e6:.2f} µs/row x {args.variants * k:,} rows)  {writing:8.2f} s")
    print(f"joint / (association + writing) = {joint_total / (association + writing):.3f}")
    print(f"joint / association alone        = {joint_total / association:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
