#!/usr/bin/env python
"""Lay the simulated demo cohort out as UK Biobank ships its data (bulk T1 folders, per-chromosome BGENs, .sample,
mfi tables, showcase-coded covariates), to try the UK Biobank configuration on the demo."""

import argparse
import sys
from pathlib import Path

from vitudip.cli import run_cli
from vitudip.simulate.ukb_layout import write_ukb_layout


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and write the layout.

    Args:
        argv: the command line after the script's name (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", default="results/demo", help="simulated cohort folder (default: %(default)s)")
    parser.add_argument("--out", default="results/ukb_demo",
                        help="layout folder to write; an older one is replaced (default: %(default)s)")
    parser.add_argument("--genotyped-multiple", type=int, default=10,
                        help="genotyped participants per imaged subject (default: %(default)s)")
    parser.add_argument("--withdrawn", type=int, default=2,
                        help="participants listed with negative IDs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the layout's seed (default: %(default)s)")
    parser.add_argument("--application", type=int, default=12345,
                        help="application number in the .sample's name (default: %(default)s)")
    args = parser.parse_args(argv)

    def run() -> None:
        paths = write_ukb_layout(Path(args.cohort), Path(args.out), genotyped_multiple=args.genotyped_multiple,
                                 withdrawn=args.withdrawn, seed=args.seed, application=args.application)
        for name, path in paths.items():
            print(f"{name}\t{path}")

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
