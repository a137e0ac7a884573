#!/usr/bin/env python
"""One chromosome's analysed samples as a PLINK 2 fileset, dosages kept and variant IDs unique (genotypes stage)."""

import argparse
import sys

from vitudip.cli import add_genotype_input_arguments, genotype_input, run_cli
from vitudip.genetics.prepare import prepare_chromosome


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_genotype_input_arguments(parser)
    parser.add_argument("--chromosome", required=True, help="the chromosome, as gwas.chromosomes writes it")
    parser.add_argument("--selection", required=True, help="genotypes/sample_selection.tsv")
    parser.add_argument("--out-prefix", required=True, help="prefix of the .pgen/.pvar/.psam to write")
    parser.add_argument("--threads", type=int, default=1, help="threads decoding BGEN blocks, or plink2's")
    args = parser.parse_args(argv)
    run_cli(lambda: prepare_chromosome(genotype_input(args), args.chromosome,
                                       args.selection, args.out_prefix, threads=args.threads))


if __name__ == "__main__":
    sys.exit(main())
