#!/usr/bin/env python
"""REGENIE step 1, once for all dimensions: LD-prune the variants (unless given), then fit the whole-genome model."""

import argparse
import sys
from pathlib import Path

from vitudip.cli import run_cli
from vitudip.genetics.regenie import prune_step1_variants, regenie_step1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="genotype prefix covering all chromosomes")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--out-dir", required=True, help="folder for step1_pred.list and the LOCO files")
    parser.add_argument("--variants", help="file of variant ids for step 1 (default: plink2 LD pruning)")
    parser.add_argument("--prune-window-kb", type=int, default=1000)
    parser.add_argument("--prune-r2", type=float, default=0.5)
    parser.add_argument("--maf", type=float, default=0.01)
    parser.add_argument("--bsize", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    def run() -> None:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        variants = args.variants or prune_step1_variants(args.genotypes, out / "pruned", args.prune_window_kb,
                                                         args.prune_r2, args.maf, args.threads)
        regenie_step1(args.genotypes, args.pheno, args.covar, out, args.threads, extract=variants,
                      bsize=args.bsize)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
