#!/usr/bin/env python
"""What the one table reader costs: a GWAS-SSF file read through its contract vs bare pandas.

Writes one simulated gzipped GWAS-SSF file (the GWAS stage's output, N variants), then
reads it, side by side in one run, with ``SUMSTATS.read`` (header check, kinds, whole
positions, line-naming errors) and with a bare ``pandas.read_csv`` given the same
column types (the baseline: the parser alone). Both the loci stage's read (chromosome,
position, p-value) and the full read of every column are timed; prints the ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.sumstats import SUMSTATS, SUMSTATS_COLUMNS, write_sumstats

P_FIELDS = ["chromosome", "base_pair_location", "p_value"]
TEXT = {"effect_allele": str, "other_allele": str, "variant_id": str}


def simulated_sumstats(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(250_000_000, size=n, replace=False)) + 1
    return pd.DataFrame({
        "chromosome": np.repeat(np.arange(1, 23), -(-n // 22))[:n],
        "base_pair_location": positions,
        "effect_allele": rng.choice(list("ACGT"), n),
        "other_allele": rng.choice(list("ACGT"), n),
        "beta": rng.normal(0, 0.01, n),
        "standard_error": np.full(n, 0.01),
        "effect_allele_frequency": rng.uniform(0.01, 0.99, n),
        "p_value": rng.uniform(0, 1, n),
        "variant_id": [f"rs{i}" for i in range(n)],
        "n": np.full(n, 20_000),
    })


def best_seconds(read: Callable[[], pd.DataFrame], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "udip_000.tsv.gz"
        write_sumstats(simulated_sumstats(args.variants), path)
        cases = {
            "loci read (3 columns)": (
                lambda: SUMSTATS.read(path, columns=P_FIELDS),
                lambda: pd.read_csv(path, sep="\t", usecols=P_FIELDS, na_values=["NA"], keep_default_na=False)),
            "full read (10 columns)": (
                lambda: SUMSTATS.read(path, columns=SUMSTATS_COLUMNS),
                lambda: pd.read_csv(path, sep="\t", dtype=TEXT, na_values=["NA"], keep_default_na=False)),
        }
        print(f"GWAS-SSF file of {args.variants:,} variants, best of {args.repeats}")
        print(f"{'read':<24}{'contract s':>12}{'bare pandas s':>15}{'ratio':>8}")
        for name, (ours, baseline) in cases.items():
            t_ours, t_base = best_seconds(ours, args.repeats), best_seconds(baseline, args.repeats)
            print(f"{name:<24}{t_ours:>12.2f}{t_base:>15.2f}{t_ours / t_base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
