#!/usr/bin/env python
"""Benchmark the loci stage against a plink 1.9 --clump loop over the same files.

The baseline is what a user would otherwise run: one ``plink1.9 --clump`` per
dimension on its GWAS-SSF file (p1 5e-8, p2 0.05, r² 0.6, 250 kb), which gives
only the independent significant SNPs. The loci stage does that for every
dimension and also candidate SNPs, lead SNPs, loci, the merge across
dimensions, thresholds and figures. Both run on the same files in this run;
the script prints both times, their ratio (ours / baseline; below 1 means the
stage is faster) and whether the independent significant SNPs agree.

    python bench/loci.py --sumstats results/gwas/sumstats --bfile results/demo/geno   # the demo's 128 dimensions
    python bench/loci.py                 # its own data: N 2,000, 20 Mb, 128 dimensions, a few causal SNPs each
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from vitudip.config import section_defaults
from vitudip.genetics.sumstats import write_sumstats
from vitudip.io.plink import write_bed
from vitudip.loci.settings import LociSettings
from vitudip.loci.stage import find_loci
from vitudip.simulate.genotypes import simulate_genotypes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sumstats", type=Path, help="folder of <dimension>.tsv.gz (default: simulate)")
    parser.add_argument("--bfile", type=Path, help="PLINK 1 prefix of the genotypes (with --sumstats)")
    parser.add_argument("--n", type=int, default=2000, help="simulated individuals")
    parser.add_argument("--length-mb", type=float, default=20.0, help="simulated chromosome length (Mb)")
    parser.add_argument("--dimensions", type=int, default=128, help="simulated dimensions")
    parser.add_argument("--threads", type=int, default=1, help="the stage's --threads (plink1.9 --clump uses one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if (args.sumstats is None) != (args.bfile is None):
        parser.error("--sumstats and --bfile go together")
    return args


def simulate_job(folder: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """Genotypes and per-dimension sumstats with a few causal SNPs each; returns (sumstats folder, prefix)."""
    genotypes = simulate_genotypes(args.n, [1], int(args.length_mb * 1e6), seed=args.seed, progress=False)
    prefix = folder / "geno"
    write_bed(prefix, genotypes.dosages, genotypes.variants, [f"s{i}" for i in range(args.n)])
    x = genotypes.dosages.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    rng = np.random.default_rng(args.seed)
    common = np.flatnonzero(genotypes.variants["maf"].to_numpy() > 0.05)
    y = rng.normal(size=(args.n, args.dimensions)).astype(np.float32)
    for d in range(args.dimensions):  # a shared pool of causal SNPs, so loci recur across dimensions
        causal = rng.choice(common[:: max(1, common.size // 12)], 3, replace=False)
        y[:, d] += x[:, causal] @ rng.uniform(0.1, 0.25, 3).astype(np.float32)
    y = (y - y.mean(0)) / y.std(0)
    r = np.clip((x.T @ y) / args.n, -0.999999, 0.999999).astype(np.float64)
    t = r * np.sqrt((args.n - 2) / (1 - r**2))
    p = 2 * stats.t.sf(np.abs(t), args.n - 2)
    variants = genotypes.variants
    base = pd.DataFrame({
        "chromosome": variants["chrom"], "base_pair_location": variants["pos"], "effect_allele": variants["alt"],
        "other_allele": variants["ref"], "beta": 0.0, "standard_error": 1.0,
        "effect_allele_frequency": variants["alt_freq"], "variant_id": variants["id"], "n": args.n,
    })
    for d in range(args.dimensions):
        write_sumstats(base.assign(p_value=p[:, d]), folder / "sumstats" / f"udip_{d:03d}.tsv.gz")
    print(f"job: N {args.n}, {len(variants)} SNPs, {args.dimensions} dimensions", flush=True)
    return folder / "sumstats", prefix


def plink_clump_loop(sumstats: Path, prefix: Path, out: Path) -> set[tuple[str, str]]:
    """One plink1.9 --clump per dimension; returns the (dimension, index SNP) pairs."""
    out.mkdir(parents=True, exist_ok=True)
    found = set()
    for path in sorted(sumstats.glob("*.tsv.gz")):
        name = path.name[: -len(".tsv.gz")]
        subprocess.run(
            ["plink1.9", "--bfile", str(prefix), "--clump", str(path), "--clump-snp-field", "genotype_id",
             "--clump-field", "p_value", "--clump-p1", "5e-8", "--clump-p2", "0.05", "--clump-r2", "0.6",
             "--clump-kb", "250", "--threads", "1", "--out", str(out / name)],
            check=True, capture_output=True,
        )
        clumped = out / f"{name}.clumped"
        if clumped.exists():  # plink writes none when no SNP passes p1
            found |= {(name, snp) for snp in pd.read_csv(clumped, sep=r"\s+")["SNP"]}
    return found


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-loci-") as tmp:
        folder = Path(tmp)
        sumstats, prefix = (args.sumstats, args.bfile) if args.sumstats else simulate_job(folder, args)
        n_dims = len(list(sumstats.glob("*.tsv.gz")))
        started = time.perf_counter()
        settings = LociSettings.from_config({"loci": section_defaults("loci")})
        outputs = find_loci(sumstats, prefix, folder / "loci", settings, threads=args.threads, progress=False)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        theirs = plink_clump_loop(sumstats, prefix, folder / "plink")
        plink_s = time.perf_counter() - started
        ind = pd.read_csv(outputs["ind_sig_snps"], sep="\t")
        ours = set(zip(ind["dimension"], ind["rsID"]))
        n_merged = len(pd.read_csv(outputs["loci_merged"], sep="\t"))
    print(f"loci stage ({n_dims} dimensions, --threads {args.threads}): {ours_s:.1f} s "
          f"({len(ours)} independent significant SNPs, {n_merged} merged loci, figures included)")
    print(f"plink1.9 --clump loop ({n_dims} calls): {plink_s:.1f} s ({len(theirs)} index SNPs)")
    print(f"ratio ours / plink1.9 loop: {ours_s / plink_s:.2f}")
    print(f"same independent significant SNPs as plink1.9: {ours == theirs} "
          f"(only ours {len(ours - theirs)}, only plink {len(theirs - ours)})")


if __name__ == "__main__":
    main(sys.argv[1:])
