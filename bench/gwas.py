#!/usr/bin/env python
"""Benchmark the GWAS engines: plink2 --glm against the in-process torch engine on the same job.

Simulates N individuals over one chromosome of realistic genotypes (msprime),
P standard-normal phenotypes and C covariates (one 0/1, the rest normal), runs
both engines end to end (inputs checked, GWAS-SSF files written) and prints
the seconds of each, their ratio and the largest |Δ -log10 p| between them.

    python bench/gwas.py                          # N 5,000, 50 Mb (~90k SNPs), 128 phenotypes, 10 covariates
    python bench/gwas.py --n 2000 --length-mb 20  # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vitudip.genetics.linear import linear_gwas
from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.sumstats import read_sumstats
from vitudip.io.plink import write_bed
from vitudip.simulate.genotypes import simulate_genotypes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="individuals")
    parser.add_argument("--length-mb", type=float, default=50.0, help="simulated chromosome length (Mb)")
    parser.add_argument("--phenotypes", type=int, default=128, help="phenotype columns")
    parser.add_argument("--covariates", type=int, default=10, help="covariate columns")
    parser.add_argument("--threads", type=int, default=2, help="plink2 --threads and torch CPU threads")
    parser.add_argument("--device", default="auto", help="torch engine device: auto, cpu or cuda")
    parser.add_argument("--block-size", type=int, default=4096, help="torch engine variants per block")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def write_job(folder: Path, args: argparse.Namespace) -> Path:
    """Simulate and write the genotypes, phenotypes and covariates; returns the .bed prefix."""
    genotypes = simulate_genotypes(args.n, [1], int(args.length_mb * 1e6), seed=args.seed, progress=False)
    ids = [f"s{i:06d}" for i in range(args.n)]
    prefix = folder / "geno"
    write_bed(prefix, genotypes.dosages, genotypes.variants, ids)
    rng = np.random.default_rng(args.seed)
    covariates = rng.normal(size=(args.n, args.covariates))
    covariates[:, 0] = rng.integers(0, 2, args.n)
    covar = pd.DataFrame(covariates, columns=[f"cov{i}" for i in range(args.covariates)])
    pheno = pd.DataFrame(rng.normal(size=(args.n, args.phenotypes)),
                         columns=[f"udip_{i:03d}" for i in range(args.phenotypes)])
    for table, name in ((pheno, "pheno.tsv"), (covar, "covar.tsv")):
        table.insert(0, "IID", ids)
        table.insert(0, "FID", ids)
        table.to_csv(folder / name, sep="\t", index=False, float_format="%.10g")
    print(f"job: N {args.n}, {len(genotypes.variants)} SNPs, {args.phenotypes} phenotypes, "
          f"{args.covariates} covariates", flush=True)
    return prefix


def timed(run) -> tuple[list[Path], float]:
    """Run ``run()`` and return its result and wall seconds."""
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def max_log10_p_difference(ours: list[Path], theirs: list[Path]) -> float:
    """Largest |Δ -log10 p| over all variants and phenotypes of two runs."""
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        p_a, p_b = read_sumstats(a)["p_value"], read_sumstats(b)["p_value"]
        worst = max(worst, float(np.nanmax(np.abs(np.log10(p_a) - np.log10(p_b)))))
    return worst


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-gwas-") as tmp:
        folder = Path(tmp)
        prefix = write_job(folder, args)
        pheno, covar = folder / "pheno.tsv", folder / "covar.tsv"
        plink2_files, plink2_s = timed(lambda: plink2_gwas(prefix, pheno, covar, folder / "plink2", args.threads))
        torch_files, torch_s = timed(lambda: linear_gwas(prefix, pheno, covar, folder / "torch", args.block_size,
                                                         args.device, progress=False))
        difference = max_log10_p_difference(torch_files, plink2_files)
    print(f"plink2 engine: {plink2_s:.1f} s ({args.threads} threads)")
    print(f"torch engine:  {torch_s:.1f} s (device {args.device}, {args.threads} CPU threads)")
    print(f"ratio plink2 / torch: {plink2_s / torch_s:.2f}")
    print(f"max |Δ -log10 p| torch vs plink2: {difference:.2g}")


if __name__ == "__main__":
    main(sys.argv[1:])
