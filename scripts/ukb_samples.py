#!/usr/bin/env python
"""Write the samples table (subject_id, path) of the T1 images in a UK Biobank bulk folder."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.imaging.ukb import DEFAULT_T1_IMAGE, ukb_samples
from vitudip.io.atomic import write_tsv

IMAGE_HELP = (
    "file name of the image inside each subject's T1/ folder (default %(default)s: brain-extracted, "
    "bias-corrected, linearly registered to MNI, the image the published model used). Others UK Biobank "
    "provides: T1_brain_to_MNI.nii.gz (brain-extracted, non-linearly registered to MNI); "
    "T1_unbiased_brain.nii.gz, T1_brain.nii.gz and T1.nii.gz are in the subject's native space, not on the "
    "MNI grid the preprocess stage expects (its image check would exclude every subject)"
)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and write the samples table.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulk", required=True, help="folder of unpacked <eid>_20252_<instance>_0 folders")
    parser.add_argument("--instance", type=int, default=2, help="imaging visit (2: first, 3: repeat)")
    parser.add_argument("--image", default=DEFAULT_T1_IMAGE, help=IMAGE_HELP)
    parser.add_argument("--out", required=True, help="samples TSV to write")
    args = parser.parse_args(argv)
    run_cli(lambda: write_tsv(ukb_samples(args.bulk, args.instance, args.image), args.out))


if __name__ == "__main__":
    sys.exit(main())
