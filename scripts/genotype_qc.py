#!/usr/bin/env python
"""Genotype QC before the GWAS: sample call rate, keep list and relatedness; variant call rate, MAF, MAC, INFO, HWE."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import input_table, read_settings
from vitudip.genetics.genotype_qc import genotype_qc
from vitudip.genetics.settings import QcSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="genotype prefix (PLINK 1, PLINK 2 or BGEN)")
    parser.add_argument("--samples", required=True,
                        help="the samples table (subject_id, path): QC runs on its subjects")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config key genotype_qc, e.g. \'{"genotype_qc": {"min_maf": 0.05}}\' '
                             "(absent keys take the schema default)")
    parser.add_argument("--threads", type=int, default=1, help="plink2 threads")
    parser.add_argument("--sample-qc", required=True, help="sample_qc.tsv to write")
    parser.add_argument("--variant-qc", required=True, help="variant_qc.tsv to write")
    parser.add_argument("--variants-pass", required=True, help="variants_pass.txt to write (one ID per line)")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = QcSettings.from_config(read_settings(args.settings, QcSettings.CONFIG_KEYS))
        imaged = set(input_table("samples").read(args.samples)["subject_id"])
        genotype_qc(args.genotypes, imaged, settings,
                    {"samples": args.sample_qc, "variants": args.variant_qc, "passing": args.variants_pass},
                    threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
