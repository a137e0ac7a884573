#!/usr/bin/env python
"""Calibration of the joint tests: one GWAS of subjects permuted against their genotypes, λGC on it (joint stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.joint_stage import null_stage
from vitudip.genetics.settings import InProcessGwasSettings, JointSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="the GWAS's genotype prefix")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--null", required=True, help="null.tsv to write")
    parser.add_argument("--qq", required=True, help="QQ figure (PNG) of the permuted run")
    parser.add_argument("--settings", required=True,
                        help="JSON of the config keys joint, seed and gwas (its block_size and device)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extract", help="file of the variant IDs the GWAS tests (genotypes/variants_pass.txt)")
    args = parser.parse_args(argv)

    def run() -> None:
        config = read_settings(args.settings, JointSettings.CONFIG_KEYS + InProcessGwasSettings.CONFIG_KEYS)
        null_stage(InProcessGwasSettings.from_config(config), args.genotypes, args.pheno, args.covar,
                   JointSettings.from_config(config), args.null, args.qq, threads=args.threads,
                   extract=args.extract)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
