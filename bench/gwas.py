#!/usr/bin/env python
"""Benchmark the GWAS engines: plink2 --glm against the in-process torch engine on the same job.

Simulates N individuals over one chromosome of realistic genotypes (msprime),
P standard-normal phenotypes and C covariates (one 0/1, the rest normal), runs
both engines end to end (inputs checked, GWAS-SSF files written) and prints
the seconds of each, their ratio and the largest |Δ -log10 p| between them.

    python bench/gwas.py                          # N 5,000, 50 Mb (~90k SNPs), 128 phenotypes, 10 covariates
    python bench/gwas.py --n 2000 --length-mb 20  # a few minutes on 2 cores
    python bench/gwas.py --n 20000 --length-mb 50 --tiles 6 --format pgen-dosage   # imputed-like, at scale
    python bench/gwas.py --job DIR --engines torch   # one engine on the job a stopped run left in --workdir

``--format pgen-dosage`` writes the genotypes as a dosage PGEN (each call moved by
N(0, 0.2), clipped to 0..2, as imputed dosages are), which both engines read as they
are. ``--tiles T`` repeats the simulated chromosome as chromosomes 1..T (LD within each
tile; a timing job, not a genome), so that the variant count reaches UK Biobank-like
sizes without simulating a genome of 20,000 people. Each engine runs in its own
process: its wall time, its peak resident memory (plink2's binary for the plink2 engine),
and where the time went (the plink2 binary alone; the torch engine's reading,
association and output writing) are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

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
    parser.add_argument("--format", choices=["bed", "pgen-dosage"], default="bed", help="genotype files of the job")
    parser.add_argument("--tiles", type=int, default=1, help="copies of the simulated chromosome (chromosomes 1..T)")
    parser.add_argument("--workdir", help="folder for the job (default: a temporary one, removed after)")
    parser.add_argument("--job", help="an existing job folder (one a stopped run left under --workdir): its geno.*, "
                                      "pheno.tsv and covar.tsv are used as they are and nothing is simulated or "
                                      "removed")
    parser.add_argument("--engines", nargs="+", choices=["plink2", "torch"], default=["plink2", "torch"],
                        help="engines to run (the ratio needs both)")
    return parser.parse_args(argv)


def write_pgen_dosages(prefix: Path, dosages: np.ndarray, tiles: int, variants: pd.DataFrame, ids: list[str],
                       rng: np.random.Generator, batch: int = 2048) -> None:
    """Write ``tiles`` copies of the hard calls as one imputed-like dosage PGEN (calls + N(0, 0.2), clipped
    to 0..2), a batch of variants at a time: the dosages of all tiles are never held at once."""
    import pgenlib

    n, m = dosages.shape
    with pgenlib.PgenWriter(bytes(f"{prefix}.pgen", "utf-8"), n, m * tiles, False, dosage_present=True) as writer:
        for _ in range(tiles):
            for start in range(0, m, batch):
                calls = dosages[:, start:start + batch].T.astype(np.float32)
                writer.append_dosages_batch(np.ascontiguousarray(np.clip(calls + rng.normal(0, 0.2, calls.shape),
                                                                         0, 2), dtype=np.float32))
    variants.rename(columns={"chrom": "#CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})[
        ["#CHROM", "POS", "ID", "REF", "ALT"]].to_csv(f"{prefix}.pvar", sep="\t", index=False)
    pd.DataFrame({"#FID": ids, "IID": ids}).to_csv(f"{prefix}.psam", sep="\t", index=False)


def write_job(folder: Path, args: argparse.Namespace) -> Path:
    """Simulate and write the genotypes, phenotypes and covariates; returns the genotype prefix."""
    genotypes = simulate_genotypes(args.n, [1], int(args.length_mb * 1e6), seed=args.seed, progress=False)
    ids = [f"s{i:06d}" for i in range(args.n)]
    prefix = folder / "geno"
    tile = genotypes.variants
    variants = pd.concat([tile.assign(chrom=str(t + 1), id=[f"{t + 1}:{i}" for i in tile["id"]])
                          for t in range(args.tiles)], ignore_index=True)
    rng = np.random.default_rng(args.seed)
    if args.format == "bed":
        write_bed(prefix, np.tile(genotypes.dosages, (1, args.tiles)), variants, ids)
    else:
        write_pgen_dosages(prefix, genotypes.dosages, args.tiles, variants, ids, rng)
    covariates = rng.normal(size=(args.n, args.covariates))
    covariates[:, 0] = rng.integers(0, 2, args.n)
    covar = pd.DataFrame(covariates, columns=[f"cov{i}" for i in range(args.covariates)])
    pheno = pd.DataFrame(rng.normal(size=(args.n, args.phenotypes)),
                         columns=[f"udip_{i:03d}" for i in range(args.phenotypes)])
    for table, name in ((pheno, "pheno.tsv"), (covar, "covar.tsv")):
        table.insert(0, "IID", ids)
        table.insert(0, "FID", ids)
        table.to_csv(folder / name, sep="\t", index=False, float_format="%.10g")
    print(f"job: N {args.n}, {len(variants)} SNPs ({args.format}, {args.tiles} tile(s)), {args.phenotypes} "
          f"phenotypes, {args.covariates} covariates", flush=True)
    return prefix


#: Printed by each engine's child at its end: its own peak RSS (VmHWM: Linux folds the forking parent's
#: peak into a child's ru_maxrss at exec, so the parent's rusage would report the bench's own size) and
#: that of the children it waited for (plink2).
_PEAK = ("import resource\n"
         "own = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
         "print(f'peak KiB {max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)}')")
#: What each engine's child process runs (argv: prefix, pheno, covar, out, threads, block size, device).
ENGINE_CODE = {
    "plink2": "import sys, logging; logging.basicConfig(level=logging.INFO)\n"
              "from vitudip.genetics.plink2 import plink2_gwas\n"
              "a = sys.argv[1:]; plink2_gwas(a[0], a[1], a[2], a[3], int(a[4]))\n" + _PEAK,
    "torch": "import sys, logging, torch; logging.basicConfig(level=logging.INFO)\n"
             "from vitudip.genetics.linear import linear_gwas\n"
             "a = sys.argv[1:]; torch.set_num_threads(int(a[4]))\n"
             "linear_gwas(a[0], a[1], a[2], a[3], int(a[5]), a[6], progress=False)\n" + _PEAK,
}
#: The parts of each engine's time, read from its log.
ENGINE_PARTS = {
    "plink2": {"binary": r"plink2 finished in ([0-9.]+) s"},
    "torch": {"read": r"reading genotypes ([0-9.]+) s", "association": r"association ([0-9.]+) s",
              "writing": r"writing output ([0-9.]+) s"},
}


def run_engine(engine: str, prefix: Path, folder: Path, args: argparse.Namespace) -> dict:
    """Run one engine in its own process: wall seconds, peak RSS (GiB, plink2's included) and its parts."""
    command = [sys.executable, "-c", ENGINE_CODE[engine], str(prefix), str(folder / "pheno.tsv"),
               str(folder / "covar.tsv"), str(folder / engine), str(args.threads), str(args.block_size), args.device]
    started = time.perf_counter()
    with open(folder / f"{engine}.log", "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    text = (folder / f"{engine}.log").read_text()
    if code != 0:
        raise RuntimeError(f"the {engine} engine failed:\n{text[-3000:]}")
    parts = {name: float(re.search(pattern, text).group(1)) for name, pattern in ENGINE_PARTS[engine].items()}
    peak_kib = int(re.search(r"peak KiB (\d+)", text).group(1))
    return {"seconds": seconds, "peak_gib": peak_kib / 2**20, "parts": parts,
            "files": sorted((folder / engine).glob("*.tsv.gz"))}


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
    with contextlib.nullcontext(args.job) if args.job else tempfile.TemporaryDirectory(
            prefix="bench-gwas-", dir=args.workdir) as tmp:
        folder = Path(tmp)
        prefix = folder / "geno" if args.job else write_job(folder, args)
        runs = {engine: run_engine(engine, prefix, folder, args) for engine in args.engines}
        both = len(runs) == 2
        difference = max_log10_p_difference(runs["torch"]["files"], runs["plink2"]["files"]) if both else None
    for engine, run in runs.items():
        parts = ", ".join(f"{name} {value:.1f} s" for name, value in run["parts"].items())
        print(f"{engine} engine: {run['seconds']:.1f} s ({parts}), peak memory {run['peak_gib']:.2f} GiB, "
              f"{args.threads} threads{'' if engine == 'plink2' else f', device {args.device}'}")
    if both:
        print(f"ratio plink2 / torch: {runs['plink2']['seconds'] / runs['torch']['seconds']:.2f}")
        print(f"max |Δ -log10 p| torch vs plink2: {difference:.2g}")


if __name__ == "__main__":
    main(sys.argv[1:])
