#!/usr/bin/env python
"""Join UDIPs, covariates, genotype samples and image QC into PLINK2/REGENIE phenotype and covariate tables."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.pheno import prepare_phenotypes
from vitudip.genetics.settings import PhenoSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--udips", required=True, help="embed/udips.tsv")
    parser.add_argument("--covariates", required=True, help="covariates TSV (FID, IID, columns)")
    parser.add_argument("--genotypes", required=True, help="genotype prefix (.psam or .fam is read)")
    parser.add_argument("--qc", required=True, help="preprocess/qc.tsv")
    parser.add_argument("--recon-mse", help="embed/recon_mse.tsv, for pheno.outlier_sd")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config key pheno, e.g. \'{"pheno": {"covariates": ["age", "sex"]}}\' '
                             "(absent keys take the schema default)")
    parser.add_argument("--sample-qc", help="genotypes/sample_qc.tsv of the genotype QC")
    parser.add_argument("--variants", help="genotypes/variants_pass.txt (the variants of the genetic PCs)")
    parser.add_argument("--related", choices=["drop", "keep"], default="drop",
                        help="samples the genotype QC marks related: drop (plink2, torch) or keep (regenie)")
    parser.add_argument("--threads", type=int, default=1, help="plink2 threads (genetic PCs)")
    parser.add_argument("--pheno", required=True, help="pheno.tsv to write")
    parser.add_argument("--covar", required=True, help="covar.tsv to write")
    parser.add_argument("--samples", required=True, help="samples.tsv to write")
    parser.add_argument("--exclusions", required=True, help="exclusions.tsv to write")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = PhenoSettings.from_config(read_settings(args.settings, PhenoSettings.CONFIG_KEYS))
        out = {"pheno": args.pheno, "covar": args.covar, "samples": args.samples, "exclusions": args.exclusions}
        prepare_phenotypes(args.udips, args.covariates, args.genotypes, args.qc, settings, out,
                           threads=args.threads, recon_mse_path=args.recon_mse, sample_qc_path=args.sample_qc,
                           keep_related=args.related == "keep", variants_path=args.variants)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
