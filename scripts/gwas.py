#!/usr/bin/env python
"""GWAS of the UDIPs on one shard (chromosomes x dimension batch): one GWAS-SSF file per dimension."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.genetics.shard import ENGINES, gwas_shard


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--genotypes", required=True,
                        help="genotype prefix: PLINK 1 (.bed/.bim/.fam), PLINK 2 (.pgen/.pvar/.psam) or BGEN "
                             "(.bgen/.sample); every engine reads each as it is")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--chromosomes", nargs="+", help="chromosomes of this shard (default: all)")
    parser.add_argument("--dimension-batch", type=int, default=0, help="this shard's dimension batch (0-based)")
    parser.add_argument("--dimension-batches", type=int, default=1, help="number of dimension batches")
    parser.add_argument("--out-dir", required=True, help="folder for <dimension>.tsv.gz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=4096, help="variants per block (torch)")
    parser.add_argument("--device", default="auto", help="torch engine: auto, cuda or cpu")
    parser.add_argument("--pred", help="regenie step 1's step1_pred.list (regenie)")
    parser.add_argument("--regenie-bsize", type=int, default=400, help="step 2 --bsize (regenie)")
    parser.add_argument("--min-mac", type=float, default=5, help="step 2 --minMAC (regenie)")
    parser.add_argument("--memory-mb", type=int, help="memory the job may use (plink2: 80 %% is its workspace)")
    args = parser.parse_args(argv)
    run_cli(lambda: gwas_shard(
        args.engine, args.genotypes, args.pheno, args.covar, args.out_dir, chromosomes=args.chromosomes,
        batch=args.dimension_batch, n_batches=args.dimension_batches, threads=args.threads,
        block_size=args.block_size, device=args.device, pred_list=args.pred,
        regenie_bsize=args.regenie_bsize, min_mac=args.min_mac, memory_mb=args.memory_mb,
    ))


if __name__ == "__main__":
    sys.exit(main())
