"""The command-line arguments and settings every training job shares (scripts/train.py, scripts/train_segment.py)."""

from __future__ import annotations

import argparse

from vitudip.config import read_settings
from vitudip.model.config import ModelConfig, model_from_config
from vitudip.train.jobs import job_time_limit_s
from vitudip.train.settings import TrainSettings


def add_training_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The preprocessing outputs, the settings, the checkpoint folder, threads and the job's time limit."""
    parser.add_argument("--cache", required=True)
    parser.add_argument("--qc", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--brain-mask", required=True)
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys model, train and seed, e.g. \'{"seed": 0, "model": '
                             '{"preset": "demo"}, "train": {"epochs": 2}}\' (absent keys of a section take the '
                             "schema default)")
    parser.add_argument("--checkpoints", required=True, help="folder for last.pt (resumed from) and epoch_NNN.pt")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (the rule's threads:; default: torch's)")
    parser.add_argument("--time-limit-minutes", type=float,
                        help="the rule's runtime: inside a Slurm job, no epoch is begun that would not end before it")


def training_job_settings(args: argparse.Namespace) -> tuple[ModelConfig, TrainSettings, float | None]:
    """The model config, the training settings and the job's time limit in seconds (None: none) of the arguments
    :func:`add_training_job_arguments` added."""
    config = read_settings(args.settings, TrainSettings.CONFIG_KEYS)
    settings = TrainSettings.from_config(config, threads=args.threads)
    return model_from_config(config), settings, job_time_limit_s(args.time_limit_minutes)
