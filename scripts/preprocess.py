#!/usr/bin/env python
"""Check, z-score and pad the T1 images into the training cache; write QC, brain mask and splits."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.imaging.grid import AUTO_GRID, STANDARD_GRIDS
from vitudip.imaging.preprocess import BAD_IMAGE_POLICIES, PreprocessSettings, preprocess_cohort


def main(argv=None) -> None:
    # --input-grid has no default here: the config schema's is the only one.
    defaults = PreprocessSettings(input_grid=AUTO_GRID)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", required=True, help="TSV with subject_id and path")
    parser.add_argument("--qc", required=True, help="QC table to write")
    parser.add_argument("--cache", required=True, help="cache folder to write (images.npy, grid.json)")
    parser.add_argument("--brain-mask", required=True, help="union brain mask (.npy) to write")
    parser.add_argument("--splits", required=True, help="split table to write")
    parser.add_argument("--input-voxel-mm", type=int, default=defaults.input_voxel_mm)
    parser.add_argument("--input-grid", required=True, choices=[AUTO_GRID, *STANDARD_GRIDS],
                        help="the images' grid, or auto to recognise it from their affines")
    parser.add_argument("--no-affine-check", action="store_true", help="accept any affine of the right shape")
    parser.add_argument("--downsample", type=int, default=defaults.downsample)
    parser.add_argument("--pad-to", type=int, nargs=3, metavar=("X", "Y", "Z"), default=defaults.pad_to)
    parser.add_argument("--on-bad-image", choices=BAD_IMAGE_POLICIES, default=defaults.on_bad_image)
    parser.add_argument(
        "--split-fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=defaults.split_fractions
    )
    parser.add_argument("--splits-file", help="TSV (subject_id, split) to use instead of a random split")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    args = parser.parse_args(argv)
    settings = PreprocessSettings(
        input_voxel_mm=args.input_voxel_mm,
        input_grid=args.input_grid,
        check_affine=not args.no_affine_check,
        downsample=args.downsample,
        pad_to=tuple(args.pad_to),
        on_bad_image=args.on_bad_image,
        split_fractions=tuple(args.split_fractions),
        splits_file=args.splits_file,
        seed=args.seed,
        threads=args.threads,
    )
    run_cli(lambda: preprocess_cohort(args.samples, args.qc, args.cache, args.brain_mask, args.splits, settings))


if __name__ == "__main__":
    sys.exit(main())
