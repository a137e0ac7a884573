#!/usr/bin/env python
"""Compare two training runs: linear CKA of their UDIPs and the share of loci both find (stability.tsv)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.stability.compare import compare_runs
from vitudip.stability.settings import StabilitySettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--udips", nargs=2, required=True, metavar=("RUN1", "RUN2"), help="each run's udips.tsv")
    parser.add_argument("--loci", nargs=2, required=True, metavar=("RUN1", "RUN2"),
                        help="each run's GenomicRiskLoci.tsv")
    parser.add_argument("--thresholds", nargs=2, required=True, metavar=("RUN1", "RUN2"),
                        help="each run's loci thresholds.tsv")
    parser.add_argument("--untrained", nargs=2, metavar=("RUN1", "RUN2"),
                        help="each run's untrained network's udips.tsv (the reference CKA)")
    parser.add_argument("--splits", required=True, help="preprocess/splits.tsv")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys stability, seed and loci.merge_distance_kb, e.g. \'{"seed": 0, '
                             '"stability": {"permutations": 100}, "loci": {"merge_distance_kb": 250}}\'')
    parser.add_argument("--out", required=True, help="stability.tsv to write")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = StabilitySettings.from_config(read_settings(args.settings, StabilitySettings.CONFIG_KEYS))
        compare_runs(args.udips, args.loci, args.thresholds, args.splits, settings, args.out, args.untrained)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
