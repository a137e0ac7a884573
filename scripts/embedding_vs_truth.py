#!/usr/bin/env python
"""Demo only: how much of each planted measure the ViT-UDIPs and the PCA baseline carry."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.embed.truth import embedding_vs_truth
from vitudip.io.atomic import write_tsv


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measures", required=True, help="demo/truth/measures.tsv")
    parser.add_argument("--truth-loci", required=True, help="demo/truth/loci.tsv")
    parser.add_argument("--embedding", nargs=2, action="append", metavar=("METHOD", "UDIPS"), required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    run_cli(lambda: write_tsv(embedding_vs_truth(args.measures, args.truth_loci, dict(args.embedding)), args.out))


if __name__ == "__main__":
    sys.exit(main())
