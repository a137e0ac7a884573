#!/usr/bin/env python
"""GWAS of every dimension at the discovery loci's lead variants in the replication set (replication stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.settings import ShardSettings
from vitudip.replication.replicate import replication_gwas


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", nargs="+", required=True, metavar="CHROMOSOME=PREFIX",
                        help="each analysed chromosome's genotype prefix")
    parser.add_argument("--pheno", required=True, help="the replication set's pheno.tsv")
    parser.add_argument("--covar", required=True, help="the replication set's covar.tsv")
    parser.add_argument("--loci", required=True, help="the discovery's loci/loci_merged.tsv")
    parser.add_argument("--settings", required=True, help="JSON of the config key gwas")
    parser.add_argument("--out-dir", required=True, help="folder to write")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pred", help="regenie step 1's step1_pred.list of the replication set (regenie)")
    parser.add_argument("--memory-mb", type=int, help="memory the job may use (plink2's workspace)")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = ShardSettings.from_config(read_settings(args.settings, ShardSettings.CONFIG_KEYS))
        genotypes = dict(item.split("=", 1) for item in args.genotypes)
        replication_gwas(settings, genotypes, args.pheno, args.covar, args.loci, args.out_dir, threads=args.threads,
                         pred_list=args.pred, memory_mb=args.memory_mb)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
