#!/usr/bin/env python
"""prepare_genotypes with UK Biobank's mfi INFO tables: records below genotype_qc.min_info skipped undecoded.

Writes one chromosome's 8-bit BGEN 1.2 (layout 2, zlib, as UK Biobank ships them) of ``--genotyped`` samples,
``--analysed`` of them selected, and mfi tables in which a share of the records (``--below``) has INFO 0.1.
Baseline: ``prepare_chromosome`` without the prefilter, which decodes every record (what it did before).
Ours: the same call with the prefilter (``genotype_qc.ukb_mfi`` set), at each share. Each run is the whole
call (selection check, mfi read, decoding, PGEN and .pvar written), best of ``--repeats``; it prints the
wall time, the records decoded and the time per decoded record, and the line wall = a + b x decoded fitted
over the runs: if the time follows the decoded records, a (the call's fixed part) is small against b x m.

    python bench/info_prefilter.py                      # 30,000 genotyped, 3,000 analysed, 4,000 records
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.prepare import InfoPrefilter, prepare_chromosome, select_samples
from vitudip.io.bgen import write_bgen, write_sample_file
from vitudip.io.genotype_files import GenotypeInput


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genotyped", type=int, default=30_000)
    parser.add_argument("--analysed", type=int, default=3_000)
    parser.add_argument("--variants", type=int, default=4_000)
    parser.add_argument("--below", type=float, nargs="+", default=[0.25, 0.5, 0.75],
                        help="shares of the records below the INFO threshold")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def write_chromosome(folder: Path, n: int, m: int, rng: np.random.Generator) -> pd.DataFrame:
    """Chromosome 1's BGEN of soft dosages and the .sample; returns its variant table."""
    calls = rng.binomial(2, rng.uniform(0.05, 0.5, m), size=(n, m)).astype(np.float32)
    dosages = np.clip(calls + rng.normal(0, 0.05, calls.shape) * (rng.random(calls.shape) < 0.3), 0, 2)
    variants = pd.DataFrame({"chrom": "01", "id": [f"rs{i}" for i in range(m)], "pos": np.arange(m) * 10 + 1,
                             "ref": "A", "alt": "G"})
    ids = [str(1_000_000 + i) for i in range(n)]
    write_bgen(folder / "imp_c1.bgen", variants, dosages)
    write_sample_file(folder / "imp.sample", ids, ids)
    return variants


def write_mfi(path: Path, variants: pd.DataFrame, below: float, rng: np.random.Generator) -> None:
    """An mfi table in which a random ``below`` share of the records has INFO 0.1, the others 0.95."""
    info = np.where(rng.permutation(len(variants)) < below * len(variants), 0.1, 0.95)
    pd.DataFrame({"alternate_id": variants["id"], "rsid": variants["id"], "position": variants["pos"],
                  "allele1": variants["ref"], "allele2": variants["alt"], "maf": 0.2, "minor_allele": "G",
                  "info": info}).to_csv(path, sep=" ", header=False, index=False)


def best_of(repeats: int, genotypes: GenotypeInput, folder: Path, prefilter: InfoPrefilter | None
            ) -> tuple[float, int]:
    """(the shortest wall time of ``repeats`` prepare_chromosome calls, the variants it wrote)."""
    times, written = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        written = prepare_chromosome(genotypes, "1", folder / "selection.tsv", folder / "out",
                                     prefilter=prefilter)["variants"]
        times.append(time.perf_counter() - started)
    return min(times), written


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-info-") as tmp:
        folder = Path(tmp)
        variants = write_chromosome(folder, args.genotyped, args.variants, rng)
        genotypes = GenotypeInput(str(folder / "imp_c{chromosome}"), str(folder / "imp.sample"))
        imaged = {str(1_000_000 + i) for i in rng.choice(args.genotyped, args.analysed, replace=False)}
        select_samples(genotypes, "1", imaged, None, folder / "selection.tsv")
        print(f"one chromosome, 8-bit BGEN 1.2: {args.genotyped:,} genotyped samples, {args.analysed:,} analysed, "
              f"{args.variants:,} records; prepare_chromosome, best of {args.repeats}, one thread")
        print(f"{'records below INFO 0.3':>23} {'decoded':>8} {'wall s':>8} {'ms per decoded record':>22} "
              f"{'time / baseline':>16}")
        rows = [(None, *best_of(args.repeats, genotypes, folder, None))]
        for below in args.below:
            write_mfi(folder / "mfi_chr1.txt", variants, below, rng)
            prefilter = InfoPrefilter(str(folder / "mfi_chr{chromosome}.txt"), 0.3)
            rows.append((below, *best_of(args.repeats, genotypes, folder, prefilter)))
        baseline = rows[0][1]
        for below, seconds, decoded in rows:
            label = "no prefilter (baseline)" if below is None else f"{below:.0%}"
            print(f"{label:>23} {decoded:>8,} {seconds:>8.2f} {1000 * seconds / decoded:>22.3f} "
                  f"{seconds / baseline:>16.2f}")
        slope, fixed = np.polyfit([r[2] for r in rows], [r[1] for r in rows], 1)
        print(f"fitted: wall = {fixed:.2f} s + {1000 * slope:.3f} ms x decoded records "
              f"(the fixed part is {fixed / baseline:.0%} of the baseline)")


if __name__ == "__main__":
    main(sys.argv[1:])
