#!/usr/bin/env python
"""Gather GWAS shards into one file per dimension (BGZF, tabix index, GWAS Catalog metadata); write λGC per
dimension and the QQ figure."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.catalog import StudyDescription
from vitudip.genetics.gather import gather_sumstats


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", nargs="+", required=True,
                        help="shard folders (chromosome sets x dimension batches)")
    parser.add_argument("--covar", required=True, help="the GWAS's covariates (pheno/covar.tsv), for the metadata")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys gwas and loci, e.g. \'{"gwas": {"engine": "plink2"}, '
                             '"loci": {"genome_build": "GRCh38"}}\' (absent keys take the schema default)')
    parser.add_argument("--out-dir", required=True, help="folder for the gathered <dimension>.tsv.gz")
    parser.add_argument("--lambda", dest="lambda_path", required=True, help="lambda.tsv to write")
    parser.add_argument("--qq", required=True, help="QQ figure (PNG) to write")
    parser.add_argument("--threads", type=int, default=1, help="dimensions gathered at once")
    args = parser.parse_args(argv)

    def run() -> None:
        study = StudyDescription.from_config(read_settings(args.settings, StudyDescription.CONFIG_KEYS), args.covar)
        gather_sumstats(args.shards, args.out_dir, args.lambda_path, args.qq, args.threads, study)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
