#!/usr/bin/env python
"""Genotype QC before the GWAS: variant call rate, MAF, MAC, INFO, HWE; sample call rate and relatedness."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.genotype_qc import genotype_qc
from vitudip.genetics.settings import QcSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromosomes", required=True, nargs="+",
                        help="the per-chromosome filesets of the selected samples (genotypes/chr<c>)")
    parser.add_argument("--selection", required=True, help="genotypes/sample_selection.tsv")
    parser.add_argument("--settings", required=True,
                        help='JSON of the genotype_qc keys, e.g. \'{"genotype_qc": {"min_maf": 0.05}}\' '
                             "(absent keys take the schema default)")
    parser.add_argument("--threads", type=int, default=1, help="plink2 threads")
    parser.add_argument("--sample-qc", required=True, help="sample_qc.tsv to write")
    parser.add_argument("--variant-qc", required=True, help="variant_qc.tsv to write")
    parser.add_argument("--variants-pass", required=True, help="variants_pass.txt to write (one ID per line)")
    parser.add_argument("--pruned", required=True, help="prefix of the pruned variants' .pgen/.pvar/.psam to write")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = QcSettings.from_config(read_settings(args.settings, QcSettings.CONFIG_KEYS))
        genotype_qc(args.chromosomes, args.selection, settings,
                    {"samples": args.sample_qc, "variants": args.variant_qc, "passing": args.variants_pass,
                     "pruned": args.pruned}, threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
