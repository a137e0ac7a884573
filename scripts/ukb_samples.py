#!/usr/bin/env python
"""Write the samples table (subject_id, path) of the T1 images in a UK Biobank bulk folder."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.imaging.ukb import ukb_samples
from vitudip.io.atomic import write_tsv


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulk", required=True, help="folder of unpacked <eid>_20252_<instance>_0 folders")
    parser.add_argument("--instance", type=int, default=2, help="imaging visit (2: first, 3: repeat)")
    parser.add_argument("--out", required=True, help="samples TSV to write")
    args = parser.parse_args(argv)
    run_cli(lambda: write_tsv(ukb_samples(args.bulk, args.instance), args.out))


if __name__ == "__main__":
    sys.exit(main())
