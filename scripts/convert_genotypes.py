#!/usr/bin/env python
"""Write a PLINK 1 (.bed/.bim/.fam) copy of a PLINK 2 or BGEN fileset, for the LD of find_loci (PLINK 1 only)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.genetics.genotypes import convert_to_bed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="source prefix (.pgen/.pvar/.psam or .bgen/.sample)")
    parser.add_argument("--out-prefix", required=True, help="prefix of the .bed/.bim/.fam written")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    run_cli(lambda: convert_to_bed(args.genotypes, args.out_prefix, args.threads))


if __name__ == "__main__":
    sys.exit(main())
