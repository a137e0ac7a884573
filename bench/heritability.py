#!/usr/bin/env python
"""Benchmark the heritability stage: randomized HE regression of P phenotypes over N subjects x M variants.

Simulates N individuals over T tiles of one msprime chromosome (LD within each tile; a timing job, not a
genome), P phenotypes of h² 0.3 from 1,000 causal variants each (to show the estimates on the side) and two
covariates, then runs the stage's estimate (inputs read and residualised, one pass over the genotype blocks,
the jackknife) in a child process and prints its wall and CPU seconds (on a shared machine the CPU seconds are
the steadier measure), its peak resident memory (the child's own VmHWM: getrusage's maxrss of a child counts the
forked parent's pages, here the simulation's), the h² recovered, and a linear extrapolation to a UK
Biobank-sized job (time by N x M, memory by the arrays it holds).

    python bench/heritability.py                                  # N 16,000, ~40k variants, 256 phenotypes
    python bench/heritability.py --n 4000 --length-mb 10 --phenotypes 64   # a minute on 2 cores
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.heritability import heritability, load_phenotypes
from vitudip.genetics.settings import HeritabilitySettings
from vitudip.io.plink import write_bed
from vitudip.simulate.genotypes import simulate_genotypes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16000, help="individuals")
    parser.add_argument("--length-mb", type=float, default=10.0, help="simulated chromosome length (Mb)")
    parser.add_argument("--tiles", type=int, default=2, help="copies of the chromosome (chromosomes 1..T)")
    parser.add_argument("--phenotypes", type=int, default=256, help="phenotype columns (128 UDIPs + 128 PCA)")
    parser.add_argument("--random-vectors", type=int, default=20)
    parser.add_argument("--jackknife-blocks", type=int, default=100)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--full-n", type=int, default=40000, help="subjects of the extrapolated job")
    parser.add_argument("--full-variants", type=int, default=300000,
                        help="variants of the extrapolated job (UK Biobank's pruned common set: ~3 %% of 10 M)")
    parser.add_argument("--job", help="(internal) estimate on this simulated job folder and print the result")
    return parser.parse_args(argv)


def simulate(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, Path]:
    """The genotypes (bed), phenotypes and covariates of the job."""
    genotypes = simulate_genotypes(args.n, [1], int(args.length_mb * 1e6), seed=1)
    variants = pd.concat([genotypes.variants.assign(chrom=t + 1) for t in range(args.tiles)], ignore_index=True)
    dosages = np.tile(genotypes.dosages, (1, args.tiles))
    ids = [f"s{i}" for i in range(args.n)]
    write_bed(folder / "geno", dosages, variants, ids)
    rng = np.random.default_rng(2)
    z = genotypes.dosages.astype(np.float32)
    z = (z - z.mean(0)) / z.std(0)
    traits = {}
    for p in range(args.phenotypes):
        g = z[:, rng.choice(z.shape[1], min(1000, z.shape[1]), replace=False)] @ rng.standard_normal(
            min(1000, z.shape[1]))
        traits[f"udip_{p:03d}"] = np.sqrt(0.3) * (g - g.mean()) / g.std() + np.sqrt(0.7) * rng.standard_normal(args.n)
    pd.DataFrame({"FID": ids, "IID": ids, **traits}).to_csv(folder / "pheno.tsv", sep="\t", index=False)
    pd.DataFrame({"FID": ids, "IID": ids, "age": rng.uniform(45, 80, args.n),
                  "sex": rng.integers(0, 2, args.n)}).to_csv(folder / "covar.tsv", sep="\t", index=False)
    return folder / "geno", folder / "pheno.tsv", folder / "covar.tsv"


def estimate(args: argparse.Namespace, folder: Path) -> None:
    """The child: the stage's estimate on the job in ``folder``, its result printed."""
    import torch

    torch.set_num_threads(args.threads)
    settings = HeritabilitySettings(args.random_vectors, args.jackknife_blocks, args.block_size, args.device, False, 1)
    started = time.perf_counter()
    phenotypes = load_phenotypes(folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", "vit")
    result, variants, spans = heritability(folder / "geno", phenotypes, settings, progress=False)
    seconds = time.perf_counter() - started
    h2 = result.estimates.h2
    print(f"N {args.n:,} x M {variants:,} variants x P {args.phenotypes} phenotypes, B {args.random_vectors}, "
          f"{len(spans)} jackknife blocks, {args.threads} threads on {args.device}")
    print(f"h2 (true 0.3): mean {h2.mean():.3f}, SD over phenotypes {h2.std(ddof=1):.3f}, "
          f"mean SE {result.se[:len(h2)].mean():.3f}")
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(f"wall {seconds:.1f} s; peak {peak_kb / 1024:.0f} MB; variants {variants}")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.job:
        estimate(args, Path(args.job))
        return
    with tempfile.TemporaryDirectory() as work:
        simulate(args, Path(work))
        child = subprocess.run([sys.executable, __file__, *argv, "--job", work], capture_output=True, text=True)
    if child.returncode:
        sys.exit(child.stderr[-3000:])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(child.stdout.strip())
    lines = child.stdout.strip().splitlines()
    seconds = float(lines[-1].split()[1])
    variants = int(lines[-1].split()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    peak = float(lines[-1].split()[4])
    print(f"estimate: wall {seconds:.1f} s, CPU {cpu:.1f} s (process total, inputs read included), "
          f"peak RSS {peak:.0f} MB")
    scale = (args.full_n * args.full_variants) / (args.n * variants)
    held = (args.jackknife_blocks * args.full_n * args.random_vectors * 8
            + args.block_size * args.full_n * 24 + args.full_n * (args.phenotypes + args.random_vectors) * 32
            + 3 * args.jackknife_blocks * args.phenotypes**2 * 8) / 1e6
    print(f"extrapolated to N {args.full_n:,} x M {args.full_variants:,}: wall {seconds * scale / 60:.1f} min, "
          f"CPU {cpu * scale / 60:.1f} min (x N M); ~{held:.0f} MB held beyond the interpreter")


if __name__ == "__main__":
    main(sys.argv[1:])
