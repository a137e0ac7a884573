#!/usr/bin/env python
"""Join UDIPs, covariates, genotype samples and image QC into PLINK2/REGENIE phenotype and covariate tables."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.genetics.pheno import DERIVED_TERMS, PCS_SOURCES, PhenoSettings, prepare_phenotypes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--udips", required=True, help="embed/udips.tsv")
    parser.add_argument("--covariates", required=True, help="covariates TSV (FID, IID, columns)")
    parser.add_argument("--genotypes", required=True, help="genotype prefix (.psam or .fam is read)")
    parser.add_argument("--qc", required=True, help="preprocess/qc.tsv")
    parser.add_argument("--covariate", action="extend", nargs="+", default=[], help="numeric covariate column(s)")
    parser.add_argument("--categorical", action="extend", nargs="+", default=[],
                        help="categorical column(s), one-hot with the first level dropped")
    parser.add_argument("--derived", action="extend", nargs="*", default=[], choices=DERIVED_TERMS,
                        help="derived age/sex terms")
    parser.add_argument("--centre-age", action="store_true",
                        help="form the derived terms from mean-centred age (avoids plink2's VIF_TOO_HIGH)")
    parser.add_argument("--inverse-normal", action="store_true",
                        help="rank-based inverse-normal transform of each UDIP")
    parser.add_argument("--min-samples", type=int, default=50)
    parser.add_argument("--genetic-pcs", type=int, default=0)
    parser.add_argument("--pcs-from", choices=PCS_SOURCES, default="file")
    parser.add_argument("--recon-mse", help="embed/recon_mse.tsv, for --outlier-sd")
    parser.add_argument("--outlier-sd", type=float,
                        help="drop subjects whose reconstruction error or any UDIP is this many robust SDs out")
    parser.add_argument("--threads", type=int, default=1, help="plink2 threads (genetic PCs)")
    parser.add_argument("--pheno", required=True, help="pheno.tsv to write")
    parser.add_argument("--covar", required=True, help="covar.tsv to write")
    parser.add_argument("--samples", required=True, help="samples.tsv to write")
    parser.add_argument("--exclusions", required=True, help="exclusions.tsv to write")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = PhenoSettings(
            covariates=args.covariate, categorical=args.categorical, derived=args.derived,
            centre_age=args.centre_age, inverse_normal=args.inverse_normal, min_samples=args.min_samples,
            genetic_pcs=args.genetic_pcs, pcs_from=args.pcs_from, outlier_sd=args.outlier_sd,
        )
        out = {"pheno": args.pheno, "covar": args.covar, "samples": args.samples, "exclusions": args.exclusions}
        prepare_phenotypes(args.udips, args.covariates, args.genotypes, args.qc, settings, out,
                           threads=args.threads, recon_mse_path=args.recon_mse)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
