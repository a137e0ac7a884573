#!/usr/bin/env python
"""Which genotype samples are analysed: not withdrawn, with an image, in the keep list (genotypes stage)."""

import argparse
import sys

from vitudip.cli import add_genotype_input_arguments, genotype_input, run_cli
from vitudip.config import input_table
from vitudip.genetics.prepare import select_samples
from vitudip.genetics.settings import PhenoSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_genotype_input_arguments(parser)
    parser.add_argument("--chromosome", required=True, help="a chromosome whose fileset lists the samples")
    parser.add_argument("--samples", required=True, help="the samples table (subject_id, path)")
    parser.add_argument("--keep", help="genotype_qc.keep: file of the IIDs to analyse")
    parser.add_argument("--covariates", help="the covariates table: its sex column (PLINK or UK Biobank field-31 "
                                             "codes) is checked against the genotype files' sex, or stands for it")
    parser.add_argument("--out", required=True, help="sample_selection.tsv to write")
    args = parser.parse_args(argv)

    def run() -> None:
        imaged = set(input_table("samples").read(args.samples)["subject_id"])
        sex = None
        if args.covariates:
            covariates = input_table("covariates").read(args.covariates)
            if PhenoSettings.sex_column in covariates.columns:
                sex = covariates.set_index("IID")[PhenoSettings.sex_column]
        select_samples(genotype_input(args), args.chromosome, imaged, args.keep,
                       args.out, sex, f"{args.covariates} column '{PhenoSettings.sex_column}'")

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
