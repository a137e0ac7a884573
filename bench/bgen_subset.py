#!/usr/bin/env python
"""Reading a BGEN whose .sample lists 10x more genotyped participants than analysed ones (UK Biobank: 487k / 40k).

Writes an 8-bit BGEN 1.2 (layout 2, zlib, as UK Biobank ships them) of N_genotyped = ratio x N_analysed
samples, then times per variant:

* before, what the workflow did: every pass over the BGEN decoded every sample's probabilities and kept the
  analysed ones after (cbgen, when installed: the reader the torch engine used), and plink2 --keep, which
  imports every sample into a temporary PGEN first;
* after: ``prepare_genotypes``, once per chromosome, decompresses each block and converts only the
  analysed rows (vitudip.io.bgen), writing a dosage PGEN of the analysed samples; every later pass (QC, each
  GWAS engine, LD) reads that PGEN.

It prints ms per variant for each, at two sizes, and the ratio of a pass before to a pass after.

    python bench/bgen_subset.py                          # 1,500 and 3,000 analysed, 10x genotyped, 1,000 variants
    python bench/bgen_subset.py --analysed 4000 --variants 500
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

from vitudip.io.bgen import BgenFile, write_bgen, write_sample_file


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analysed", type=int, nargs="+", default=[1500, 3000], help="analysed samples")
    parser.add_argument("--ratio", type=int, default=10, help="genotyped samples per analysed one")
    parser.add_argument("--variants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def write_cohort(folder: Path, n: int, m: int, seed: int) -> tuple[Path, Path]:
    """An 8-bit BGEN of soft dosages (30 % of genotypes off their hard call) and its .sample."""
    rng = np.random.default_rng(seed)
    calls = rng.binomial(2, rng.uniform(0.05, 0.5, m), size=(n, m)).astype(np.float32)
    dosages = np.clip(calls + rng.normal(0, 0.05, calls.shape) * (rng.random(calls.shape) < 0.3), 0, 2)
    variants = pd.DataFrame({"chrom": "01", "id": [f"rs{i}" for i in range(m)], "pos": np.arange(m) + 1,
                             "ref": "A", "alt": "G"})
    ids = [str(1000000 + i) for i in range(n)]
    write_bgen(folder / "imp.bgen", variants, dosages)
    write_sample_file(folder / "imp.sample", ids, ids)
    return folder / "imp.bgen", folder / "imp.sample"


def per_variant_ms(seconds: float, m: int) -> float:
    return 1000 * seconds / m


def time_cbgen(bgen: Path, rows: np.ndarray, m: int) -> float | None:
    """Every sample decoded by cbgen, the analysed rows kept after (None without cbgen)."""
    try:
        import cbgen
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        handle = cbgen.bgen_file(bgen)
        handle.create_metafile(Path(tmp) / "meta")
        with cbgen.bgen_metafile(Path(tmp) / "meta") as meta:
            offsets = np.concatenate([meta.read_partition(i).variants.offset for i in range(meta.npartitions)])
        started = time.perf_counter()
        for offset in offsets:
            p = handle.read_genotype(int(offset)).probability
            (p[:, 1] + 2.0 * p[:, 2])[rows]
        seconds = time.perf_counter() - started
        handle.close()
    return per_variant_ms(seconds, m)


def time_plink2_keep(bgen: Path, sample: Path, rows: np.ndarray, folder: Path, m: int) -> float | None:
    """plink2 --keep --make-pgen: the BGEN imported with every sample first."""
    if shutil.which("plink2") is None:
        return None
    ids = pd.read_csv(sample, sep=" ", skiprows=[1], dtype=str).iloc[rows]
    ids[["ID_1", "ID_2"]].to_csv(folder / "keep.txt", sep="\t", index=False, header=False)
    started = time.perf_counter()
    subprocess.run(["plink2", "--bgen", str(bgen), "ref-first", "--sample", str(sample), "--keep",
                    str(folder / "keep.txt"), "--make-pgen", "--threads", "1", "--out", str(folder / "plink2")],
                   check=True, capture_output=True)
    return per_variant_ms(time.perf_counter() - started, m)


def time_prepare(bgen: Path, rows: np.ndarray, folder: Path, m: int) -> tuple[float, float]:
    """(the analysed rows decoded and written as a dosage PGEN, one later pass reading that PGEN), ms/variant."""
    started = time.perf_counter()
    with BgenFile(bgen) as source, pgenlib.PgenWriter(bytes(folder / "chr.pgen"), rows.size, m, False,
                                                      dosage_present=True) as writer:
        for start in range(0, m, 1024):
            block = source.read_dosages(np.arange(start, min(start + 1024, m)), rows)
            writer.append_dosages_batch(np.ascontiguousarray(block.T))
    prepare = per_variant_ms(time.perf_counter() - started, m)
    reader = pgenlib.PgenReader(bytes(folder / "chr.pgen"))
    out = np.empty((1024, rows.size), np.float32)
    started = time.perf_counter()
    for start in range(0, m, 1024):
        index = np.arange(start, min(start + 1024, m), dtype=np.uint32)
        reader.read_dosages_list(index, out[: index.size])
    return prepare, per_variant_ms(time.perf_counter() - started, m)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    print(f"8-bit BGEN 1.2, {args.variants} variants, {args.ratio}x more genotyped than analysed samples; "
          "ms per variant, one thread")
    print(f"{'analysed':>9} {'genotyped':>10} {'cbgen all':>10} {'plink2 keep':>12} {'prepare':>8} "
          f"{'PGEN pass':>10} {'pass before/after':>18}")
    for analysed in args.analysed:
        with tempfile.TemporaryDirectory(prefix="bench-bgen-") as tmp:
            folder = Path(tmp)
            n = analysed * args.ratio
            bgen, sample = write_cohort(folder, n, args.variants, args.seed)
            rows = np.sort(np.random.default_rng(args.seed).choice(n, analysed, replace=False))
            before = time_cbgen(bgen, rows, args.variants)
            plink2 = time_plink2_keep(bgen, sample, rows, folder, args.variants)
            prepare, later = time_prepare(bgen, rows, folder, args.variants)
            pass_before = before if before is not None else plink2
            show = [f"{x:.3f}" if x is not None else "-" for x in (before, plink2, prepare, later)]
            ratio = f"{pass_before / later:.0f}x" if pass_before else "-"
            print(f"{analysed:>9} {n:>10} {show[0]:>10} {show[1]:>12} {show[2]:>8} {show[3]:>10} {ratio:>18}")


if __name__ == "__main__":
    main(sys.argv[1:])
