#!/usr/bin/env python
"""Train the ViT autoencoder up to one epoch (a job of the training chain before its last), resuming from the
checkpoints; write the job's record."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.model.config import model_from_config
from vitudip.train.jobs import job_time_limit_s
from vitudip.train.settings import TrainSettings
from vitudip.train.trainer import train_segment


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--qc", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--brain-mask", required=True)
    parser.add_argument("--settings", required=True, help="JSON of the config keys model, train and seed")
    parser.add_argument("--checkpoints", required=True, help="folder for last.pt (resumed from) and epoch_NNN.pt")
    parser.add_argument("--until", type=int, required=True, help="the epoch this job ends after")
    parser.add_argument("--record", required=True, help="JSON record of the job, which the next job waits for")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (the rule's threads:; default: torch's)")
    parser.add_argument("--time-limit-minutes", type=float,
                        help="the rule's runtime: inside a Slurm job, no epoch is begun that would not end before it")
    args = parser.parse_args(argv)

    def run() -> None:
        config = read_settings(args.settings, TrainSettings.CONFIG_KEYS)
        settings = TrainSettings.from_config(config, threads=args.threads)
        train_segment(args.cache, args.qc, args.splits, args.brain_mask, model_from_config(config), settings,
                      args.until, args.record, args.checkpoints, job_time_limit_s(args.time_limit_minutes))

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
