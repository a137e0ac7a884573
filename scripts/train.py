#!/usr/bin/env python
"""Train the ViT autoencoder on the preprocessing cache (the last job of a chain); write the model, metrics and
figures."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.model.config import model_from_config
from vitudip.train.jobs import job_time_limit_s
from vitudip.train.settings import TrainSettings
from vitudip.train.trainer import train_model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--qc", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--brain-mask", required=True)
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys model, train and seed, e.g. \'{"seed": 0, "model": '
                             '{"preset": "demo"}, "train": {"epochs": 2}}\' (absent keys of a section take the '
                             "schema default)")
    parser.add_argument("--model", required=True, help="model.pt to write")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--loss-plot", required=True)
    parser.add_argument("--reconstruction-plot", required=True)
    parser.add_argument("--checkpoints", required=True, help="folder for last.pt (resumed from) and epoch_NNN.pt")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (the rule's threads:; default: torch's)")
    parser.add_argument("--time-limit-minutes", type=float,
                        help="the rule's runtime: inside a Slurm job, no epoch is begun that would not end before it")
    args = parser.parse_args(argv)

    def run() -> None:
        config = read_settings(args.settings, TrainSettings.CONFIG_KEYS)
        model_config = model_from_config(config)
        settings = TrainSettings.from_config(config, threads=args.threads)
        outputs = {"model": args.model, "metrics": args.metrics, "loss_plot": args.loss_plot,
                   "reconstruction_plot": args.reconstruction_plot}
        train_model(args.cache, args.qc, args.splits, args.brain_mask, model_config, settings, outputs,
                    args.checkpoints, job_time_limit_s(args.time_limit_minutes))

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
