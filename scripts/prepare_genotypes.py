#!/usr/bin/env python
"""One chromosome's analysed samples as a PLINK 2 fileset, dosages kept and variant IDs unique (genotypes stage)."""

import argparse
import sys

from vitudip.cli import add_genotype_input_arguments, genotype_input, run_cli
from vitudip.genetics.prepare import InfoPrefilter, prepare_chromosome


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_genotype_input_arguments(parser)
    parser.add_argument("--chromosome", required=True, help="the chromosome, as gwas.chromosomes writes it")
    parser.add_argument("--selection", required=True, help="genotypes/sample_selection.tsv")
    parser.add_argument("--out-prefix", required=True, help="prefix of the .pgen/.pvar/.psam to write")
    parser.add_argument("--threads", type=int, default=1, help="threads decoding BGEN blocks, or plink2's")
    parser.add_argument("--ukb-mfi", help="UK Biobank mfi tables with {chromosome}: a BGEN's records below "
                                          "--min-info are skipped before decoding (genotype_qc.ukb_mfi)")
    parser.add_argument("--min-info", type=float, help="genotype_qc.min_info (with --ukb-mfi)")
    args = parser.parse_args(argv)
    if (args.ukb_mfi is None) != (args.min_info is None):
        parser.error("--ukb-mfi and --min-info go together")
    prefilter = InfoPrefilter(args.ukb_mfi, args.min_info) if args.ukb_mfi else None
    run_cli(lambda: prepare_chromosome(genotype_input(args), args.chromosome, args.selection, args.out_prefix,
                                       threads=args.threads, prefilter=prefilter))


if __name__ == "__main__":
    sys.exit(main())
