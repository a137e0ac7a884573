#!/usr/bin/env python
"""One chromosome's analysed samples as a PLINK 2 fileset, dosages kept and variant IDs unique (genotypes stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.genetics.prepare import prepare_chromosome
from vitudip.io.genotype_files import GenotypeInput


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="inputs.genotypes: a prefix, or one with {chromosome}")
    parser.add_argument("--genotype-samples", help="inputs.genotype_samples: a BGEN's .sample named apart")
    parser.add_argument("--chromosome", required=True, help="the chromosome, as gwas.chromosomes writes it")
    parser.add_argument("--selection", required=True, help="genotypes/sample_selection.tsv")
    parser.add_argument("--out-prefix", required=True, help="prefix of the .pgen/.pvar/.psam to write")
    parser.add_argument("--threads", type=int, default=1, help="threads decoding BGEN blocks, or plink2's")
    args = parser.parse_args(argv)
    run_cli(lambda: prepare_chromosome(GenotypeInput(args.genotypes, args.genotype_samples), args.chromosome,
                                       args.selection, args.out_prefix, threads=args.threads))


if __name__ == "__main__":
    sys.exit(main())
