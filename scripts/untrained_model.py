#!/usr/bin/env python
"""Write a trained model's network as initialised, untrained (the stability check's reference)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.stability.untrained import untrained_model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the trained model.pt")
    parser.add_argument("--seed", type=int, required=True, help="the seed its training ran with")
    parser.add_argument("--out", required=True, help="model.pt to write, with the initial weights")
    args = parser.parse_args(argv)
    run_cli(lambda: untrained_model(args.model, args.seed, args.out))


if __name__ == "__main__":
    sys.exit(main())
