#!/usr/bin/env python
"""Calibration of the joint tests: one GWAS of subjects permuted against their genotypes, λGC on it (joint stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.joint_stage import NULL_ENGINES, JointSettings, null_stage


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(NULL_ENGINES), required=True, help="the study's gwas.engine")
    parser.add_argument("--genotypes", required=True, help="genotype prefix that engine reads (PLINK 1 for torch)")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--null", required=True, help="null.tsv to write")
    parser.add_argument("--qq", required=True, help="QQ figure (PNG) of the permuted run")
    parser.add_argument("--settings", required=True, help="JSON of the config keys joint and seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=4096, help="variants per block (torch)")
    parser.add_argument("--device", default="auto", help="torch engine: auto, cuda or cpu")
    parser.add_argument("--memory-mb", type=int, help="memory the GWAS may use (plink2)")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = JointSettings.from_config(read_settings(args.settings, JointSettings.CONFIG_KEYS))
        null_stage(args.engine, args.genotypes, args.pheno, args.covar, settings, args.null, args.qq,
                   threads=args.threads, block_size=args.block_size, device=args.device, memory_mb=args.memory_mb)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
