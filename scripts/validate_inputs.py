#!/usr/bin/env python
"""Check the inputs the stages after training read (covariates, genotype filesets, chromosomes, split sizes), before
training."""

import argparse
import sys

from vitudip.cli import add_genotype_input_arguments, genotype_input, run_cli
from vitudip.config import read_settings
from vitudip.genetics.settings import PhenoSettings
from vitudip.study import INPUT_CHECK_KEYS
from vitudip.validate import validate_inputs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_genotype_input_arguments(parser)
    parser.add_argument("--chromosomes", nargs="+", required=True, help="the analysed chromosomes")
    parser.add_argument("--samples", required=True, help="the samples table (subject_id, path)")
    parser.add_argument("--covariates", required=True, help="the covariates table")
    parser.add_argument("--keep", help="genotype_qc.keep: file of the IIDs to analyse")
    parser.add_argument("--ld-reference", help="loci.ld_reference: a PLINK 1 reference panel's prefix")
    parser.add_argument("--settings", required=True,
                        help="JSON of the config's pheno section, preprocess.splits and train.batch_size")
    parser.add_argument("--out", required=True, help="checks/inputs.tsv to write")
    args = parser.parse_args(argv)

    def run() -> None:
        config = read_settings(args.settings, INPUT_CHECK_KEYS)
        validate_inputs(args.samples, args.covariates, genotype_input(args), args.chromosomes, args.keep,
                        PhenoSettings.from_config(config), config["preprocess"]["splits"],
                        config["train"]["batch_size"], args.out, args.ld_reference)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
