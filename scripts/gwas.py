#!/usr/bin/env python
"""GWAS of every UDIP on one shard of chromosomes: one GWAS-SSF file per dimension."""

import argparse
import sys

import torch

from vitudip.cli import run_cli
from vitudip.genetics.linear import linear_gwas
from vitudip.genetics.plink2 import plink2_gwas

ENGINES = ("torch", "plink2")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--genotypes", required=True, help="PLINK 1 prefix (.bed/.bim/.fam)")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--chromosomes", nargs="+", help="chromosomes of this shard (default: all)")
    parser.add_argument("--out-dir", required=True, help="folder for <dimension>.tsv.gz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=4096, help="variants per block (torch)")
    parser.add_argument("--device", default="auto", help="torch engine: auto, cuda or cpu")
    args = parser.parse_args(argv)

    def run() -> None:
        if args.engine == "torch":
            # a Slurm job gets its cores through --threads; torch would otherwise take the whole node
            torch.set_num_threads(args.threads)
            linear_gwas(args.genotypes, args.pheno, args.covar, args.out_dir, block_size=args.block_size,
                        device=args.device, chromosomes=args.chromosomes)
        else:
            plink2_gwas(args.genotypes, args.pheno, args.covar, args.out_dir, threads=args.threads,
                        chromosomes=args.chromosomes)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
