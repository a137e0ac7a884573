#!/usr/bin/env python
"""GWAS of the UDIPs on one shard (chromosomes x dimension batch): one GWAS-SSF file per dimension."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.settings import ShardSettings
from vitudip.genetics.shard import gwas_shard


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True,
                        help="genotype prefix: PLINK 1 (.bed/.bim/.fam), PLINK 2 (.pgen/.pvar/.psam) or BGEN "
                             "(.bgen/.sample)")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config key gwas, e.g. \'{"gwas": {"engine": "torch", "device": "cpu"}}\' '
                             "(absent keys take the schema default)")
    parser.add_argument("--chromosomes", nargs="+", help="chromosomes of this shard (default: all)")
    parser.add_argument("--dimension-batch", type=int, default=0, help="this shard's dimension batch (0-based)")
    parser.add_argument("--out-dir", required=True, help="folder for <dimension>.tsv.gz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pred", help="regenie step 1's step1_pred.list (regenie)")
    parser.add_argument("--extract", help="file of the variant IDs to test (genotypes/variants_pass.txt)")
    parser.add_argument("--memory-mb", type=int, help="memory the job may use (plink2: 80 %% is its workspace)")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = ShardSettings.from_config(read_settings(args.settings, ShardSettings.CONFIG_KEYS))
        gwas_shard(settings, args.genotypes, args.pheno, args.covar, args.out_dir, chromosomes=args.chromosomes,
                   batch=args.dimension_batch, threads=args.threads, pred_list=args.pred, memory_mb=args.memory_mb,
                   extract=args.extract)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
