#!/usr/bin/env python
"""Joint tests of every variant over all dimensions from the gathered GWAS-SSF files (joint stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.joint_stage import joint_stage
from vitudip.genetics.settings import JointSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sumstats", required=True, help="folder of the gathered <dimension>.tsv.gz files")
    parser.add_argument("--genotypes", required=True, help="the GWAS's genotype prefix (its samples)")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--joint", required=True, help="joint.tsv.gz to write")
    parser.add_argument("--lambda", dest="lambda_path", required=True, help="lambda.tsv to write")
    parser.add_argument("--qq", required=True, help="QQ figure (PNG) to write")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys joint and seed, e.g. \'{"joint": {"method": "full"}, '
                             '"seed": 1}\' (absent joint keys take the schema default)')
    args = parser.parse_args(argv)

    def run() -> None:
        settings = JointSettings.from_config(read_settings(args.settings, JointSettings.CONFIG_KEYS))
        joint_stage(args.sumstats, args.genotypes, args.pheno, args.covar, settings, args.joint, args.lambda_path,
                    args.qq)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
