#!/usr/bin/env python
"""Split the analysed subjects into discovery and replication sets, each with its GWAS tables (replication stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.replication.settings import ReplicationSettings
from vitudip.replication.split import write_split


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--covariates", help="the study's covariates file (split by a covariate)")
    parser.add_argument("--settings", required=True, help="JSON of the config keys replication and seed")
    parser.add_argument("--out-dir", required=True, help="folder for split.tsv, split_summary.tsv and <set>/")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = ReplicationSettings.from_config(read_settings(args.settings, ReplicationSettings.CONFIG_KEYS))
        write_split(args.pheno, args.covar, settings, args.out_dir, args.covariates)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
