#!/usr/bin/env python
"""Write the simulated demo cohort: images, genotypes, covariates and truth tables."""

import argparse
import json
import sys

from vitudip.cli import run_cli
from vitudip.config import load_config
from vitudip.simulate.cohort import simulate_cohort


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--configfile", help="a pipeline config.yaml (its simulate section and seed are used)")
    source.add_argument("--settings", help="the simulate section as JSON (what the workflow passes)")
    parser.add_argument("--seed", type=int, help="study seed (required with --settings)")
    parser.add_argument("--outdir", help="output folder (default: simulate.outdir)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    def run() -> None:
        if args.configfile:
            config = load_config(args.configfile)
            settings, seed = config["simulate"], config["seed"] if args.seed is None else args.seed
        else:
            if args.seed is None:
                parser.error("--seed is required with --settings")
            settings, seed = json.loads(args.settings), args.seed
        simulate_cohort(settings, args.outdir or settings["outdir"], seed=seed, threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
