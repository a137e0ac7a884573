#!/usr/bin/env python
"""Plot the correlation spectrum of every embedding (scree figure), warning on collapsed ones."""

import argparse
import logging
import sys

from vitudip.cli import run_cli
from vitudip.embed.spectrum import read_health, read_spectrum
from vitudip.plots.embedding import plot_scree

log = logging.getLogger("vitudip.embed")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embedding", nargs=3, action="append", metavar=("NAME", "SPECTRUM", "HEALTH"),
                        required=True, help="an embedding's spectrum.tsv and health.tsv")
    parser.add_argument("--out", required=True, help="scree PNG to write")
    args = parser.parse_args(argv)

    def run() -> None:
        spectra = {}
        for name, spectrum, health in args.embedding:
            row = read_health(health).iloc[0].to_dict()
            spectra[name] = (read_spectrum(spectrum), row)
            if row["status"] != "ok":
                log.warning("%s embedding: %s", name, row["status"])
        plot_scree(spectra, args.out)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
