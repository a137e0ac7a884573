#!/usr/bin/env python
"""Whether each discovery locus replicates: loci/replication.tsv and its summary (replication stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.settings import JointSettings
from vitudip.replication.replicate import replicate_loci
from vitudip.replication.settings import ReplicationSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loci", required=True, help="the discovery's loci/loci_merged.tsv")
    parser.add_argument("--sumstats", required=True, help="the discovery's gathered gwas/sumstats folder")
    parser.add_argument("--replication-gwas", required=True, help="the replication GWAS's folder")
    parser.add_argument("--split-summary", required=True, help="replication/split_summary.tsv")
    parser.add_argument("--settings", required=True, help="JSON of the config keys replication, joint and seed")
    parser.add_argument("--joint", action="store_true", help="also test each lead on the replication joint test")
    parser.add_argument("--genotypes", help="a genotype prefix of the analysed samples (with --joint)")
    parser.add_argument("--pheno", help="the replication set's pheno.tsv (with --joint)")
    parser.add_argument("--covar", help="the replication set's covar.tsv (with --joint)")
    parser.add_argument("--table", required=True, help="replication.tsv to write")
    parser.add_argument("--summary", required=True, help="replication_summary.tsv to write")
    args = parser.parse_args(argv)

    def run() -> None:
        config = read_settings(args.settings, ReplicationSettings.CONFIG_KEYS + JointSettings.CONFIG_KEYS)
        settings = ReplicationSettings.from_config(config)
        replicate_loci(args.loci, args.sumstats, args.replication_gwas, args.split_summary, settings.p_threshold,
                       args.table, args.summary, JointSettings.from_config(config) if args.joint else None,
                       args.genotypes, args.pheno, args.covar)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
