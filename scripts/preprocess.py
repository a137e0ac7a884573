#!/usr/bin/env python
"""Check, z-score and pad the T1 images into the training cache; write QC, brain mask and splits."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.imaging.cohort import preprocess_cohort
from vitudip.imaging.settings import PreprocessSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", required=True, help="TSV with subject_id and path")
    parser.add_argument("--qc", required=True, help="QC table to write")
    parser.add_argument("--cache", required=True, help="cache folder to write (images.npy, grid.json)")
    parser.add_argument("--brain-mask", required=True, help="union brain mask (.npy) to write")
    parser.add_argument("--splits", required=True, help="split table to write")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys preprocess and seed, e.g. \'{"seed": 0, "preprocess": '
                             '{"input_voxel_mm": 2}}\' (absent keys of a section take the schema default)')
    parser.add_argument("--threads", type=int, default=1, help="worker processes converting images")
    args = parser.parse_args(argv)

    def run() -> None:
        config = read_settings(args.settings, PreprocessSettings.CONFIG_KEYS)
        settings = PreprocessSettings.from_config(config, threads=args.threads)
        preprocess_cohort(args.samples, args.qc, args.cache, args.brain_mask, args.splits, settings)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
