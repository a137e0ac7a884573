#!/usr/bin/env python
"""Train the ViT autoencoder up to one epoch (a job of the training chain before its last), resuming from the
checkpoints; write the job's record."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.train.job_cli import add_training_job_arguments, training_job_settings
from vitudip.train.trainer import train_segment


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_training_job_arguments(parser)
    parser.add_argument("--until", type=int, required=True, help="the epoch this job ends after")
    parser.add_argument("--record", required=True, help="JSON record of the job, which the next job waits for")
    args = parser.parse_args(argv)

    def run() -> None:
        model_config, settings, time_limit_s = training_job_settings(args)
        train_segment(args.cache, args.qc, args.splits, args.brain_mask, model_config, settings, args.until,
                      args.record, args.checkpoints, time_limit_s)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
