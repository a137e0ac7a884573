#!/usr/bin/env python
"""Benchmark the torch engine's genotype block readers: nanoseconds per variant x sample of each format.

Writes N samples x M variants of non-integer dosages as a dosage PGEN (pgenlib), its hard calls as a
PLINK 1 .bed and a hard-call PGEN, and a 16-bit BGEN 1.2 (plink2 --export bgen-1.2), then reads
every fileset in blocks through :func:`vitudip.genetics.dosages.open_genotypes`, as linear_gwas
does, and prints the time per variant x sample and relative to the .bed reader.

    python bench/genotype_read.py                      # N 5,000, 20,000 variants
    python bench/genotype_read.py --n 20000 --variants 10000

Measured (N 5,000 x 8,000 variants, blocks of 4,096, one core of an Intel Xeon): .bed 9.5 ns,
PGEN hard calls 5.6 ns, PGEN dosages 10.6 ns, BGEN 1.2 16-bit 364 ns per variant x sample
(cbgen's decoder: ~2.2 ms per variant of 5,000 samples, whichever of its read calls).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

from vitudip.genetics.dosages import open_genotypes
from vitudip.io.plink import write_bed


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="samples")
    parser.add_argument("--variants", type=int, default=20000, help="variants")
    parser.add_argument("--block-size", type=int, default=4096, help="variants per block")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def write_filesets(folder: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The four filesets of the same genotypes; name -> prefix."""
    rng = np.random.default_rng(args.seed)
    calls = rng.binomial(2, rng.uniform(0.05, 0.5, args.variants), size=(args.n, args.variants))
    dosages = np.clip(calls + rng.normal(0, 0.2, calls.shape), 0, 2).astype(np.float32)
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(args.variants) + 1, "ref": "A", "alt": "G",
                             "id": [f"v{i}" for i in range(args.variants)]})
    ids = [f"s{i}" for i in range(args.n)]
    write_bed(folder / "bed", calls.astype(np.int8), variants, ids)
    with pgenlib.PgenWriter(bytes(folder / "dosage.pgen"), args.n, args.variants, False,
                            dosage_present=True) as writer:
        writer.append_dosages_batch(np.ascontiguousarray(dosages.T))
    variants.rename(columns={"chrom": "#CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})[
        ["#CHROM", "POS", "ID", "REF", "ALT"]].to_csv(folder / "dosage.pvar", sep="\t", index=False)
    pd.DataFrame({"#FID": ids, "IID": ids}).to_csv(folder / "dosage.psam", sep="\t", index=False)
    for name, flags in {"hard": ["--bfile", "bed", "--make-pgen"],
                        "bgen": ["--pfile", "dosage", "--export", "bgen-1.2", "bits=16", "ref-first"]}.items():
        subprocess.run(["plink2", *flags, "--out", name], cwd=folder, check=True, capture_output=True)
    return {"PLINK 1 .bed": folder / "bed", "PGEN hard calls": folder / "hard", "PGEN dosages": folder / "dosage",
            "BGEN 1.2 16-bit": folder / "bgen"}


def read_all(prefix: Path, block_size: int) -> float:
    """Seconds to read every variant in blocks (all samples, as float32 dosages)."""
    with open_genotypes(prefix) as reader:
        started = time.perf_counter()
        for start in range(0, len(reader.variants), block_size):
            reader.read_block(np.arange(start, min(start + block_size, len(reader.variants))))
        return time.perf_counter() - started


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        filesets = write_filesets(Path(work), args)
        cells = args.n * args.variants
        reference = None
        print(f"N {args.n:,} x {args.variants:,} variants, blocks of {args.block_size}")
        for name, prefix in filesets.items():
            seconds = min(read_all(prefix, args.block_size) for _ in range(2))
            reference = reference or seconds
            print(f"{name:18s} {seconds:7.2f} s  {1e9 * seconds / cells:6.2f} ns per variant x sample  "
                  f"{seconds / reference:5.1f} x the .bed")


if __name__ == "__main__":
    main(sys.argv[1:])
