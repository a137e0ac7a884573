#!/usr/bin/env python
"""Train the ViT autoencoder on the preprocessing cache (the last job of a chain); write the model, metrics and
figures."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.train.job_cli import add_training_job_arguments, training_job_settings
from vitudip.train.trainer import train_model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_training_job_arguments(parser)
    parser.add_argument("--model", required=True, help="model.pt to write")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--loss-plot", required=True)
    parser.add_argument("--reconstruction-plot", required=True)
    args = parser.parse_args(argv)

    def run() -> None:
        model_config, settings, time_limit_s = training_job_settings(args)
        outputs = {"model": args.model, "metrics": args.metrics, "loss_plot": args.loss_plot,
                   "reconstruction_plot": args.reconstruction_plot}
        train_model(args.cache, args.qc, args.splits, args.brain_mask, model_config, settings, outputs,
                    args.checkpoints, time_limit_s)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
