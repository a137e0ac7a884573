#!/usr/bin/env python
"""Train the ViT autoencoder on the preprocessing cache; write the model, metrics and figures."""

import argparse
import json
import sys

from vitudip.cli import run_cli
from vitudip.model.config import configured
from vitudip.train.trainer import TrainSettings, train_model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--qc", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--brain-mask", required=True)
    parser.add_argument("--preset", default="demo", help="model preset: demo or reference")
    parser.add_argument("--overrides", default="{}", help="JSON of model fields replacing the preset's")
    parser.add_argument("--settings", default="{}", help="JSON of TrainSettings fields")
    parser.add_argument("--model", required=True, help="model.pt to write")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--loss-plot", required=True)
    parser.add_argument("--reconstruction-plot", required=True)
    parser.add_argument("--checkpoints", required=True, help="folder for last.pt (resumed from) and epoch_NNN.pt")
    args = parser.parse_args(argv)

    def run() -> None:
        config = configured(args.preset, json.loads(args.overrides))
        settings = TrainSettings(**json.loads(args.settings))
        outputs = {"model": args.model, "metrics": args.metrics, "loss_plot": args.loss_plot,
                   "reconstruction_plot": args.reconstruction_plot}
        train_model(args.cache, args.qc, args.splits, args.brain_mask, config, settings, outputs, args.checkpoints)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
