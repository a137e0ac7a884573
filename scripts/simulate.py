#!/usr/bin/env python
"""Write the simulated demo cohort: images, genotypes, covariates and truth tables."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.simulate.cohort import simulate_cohort
from vitudip.simulate.settings import SimulateSettings
from vitudip.study import load_study


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--configfile", help="a pipeline config.yaml (its simulate section and seed are used)")
    source.add_argument("--settings",
                        help='JSON of the config keys simulate and seed (what the workflow passes), e.g. '
                             '\'{"seed": 0, "simulate": {"enabled": true, "n_subjects": 40}}\'')
    parser.add_argument("--outdir", help="output folder (default: simulate.outdir)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    def run() -> None:
        keys = SimulateSettings.CONFIG_KEYS
        config = load_study(args.configfile) if args.configfile else read_settings(args.settings, keys)
        settings = SimulateSettings.from_config(config)
        simulate_cohort(settings.section, args.outdir or settings.section["outdir"], seed=settings.seed,
                        threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
