#!/usr/bin/env python
"""SNP heritability of every dimension and genetic correlation of every pair, by randomized HE regression."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.heritability import heritability_stage
from vitudip.genetics.settings import HeritabilitySettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="genotype prefix of the variants to estimate from")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv, the GWAS's phenotypes")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv, the GWAS's covariates")
    parser.add_argument("--method", required=True, choices=["vit", "pca"], help="the embedding of --pheno")
    parser.add_argument("--baseline", help="embed/pca/udips.tsv: the PCA baseline, estimated beside it")
    parser.add_argument("--sample-qc", help="genotypes/sample_qc.tsv: samples it marks related are left out")
    parser.add_argument("--settings", required=True,
                        help="JSON of the config keys heritability, seed, pheno.inverse_normal and gwas "
                             "(its block_size and device)")
    parser.add_argument("--heritability", required=True, help="heritability.tsv to write")
    parser.add_argument("--correlation", required=True, help="genetic_correlation.tsv to write")
    parser.add_argument("--summary", required=True, help="heritability_summary.tsv to write")
    parser.add_argument("--figure", required=True, help="heritability.png to write")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    def run() -> None:
        settings = HeritabilitySettings.from_config(read_settings(args.settings, HeritabilitySettings.CONFIG_KEYS))
        outputs = {"heritability": args.heritability, "correlation": args.correlation, "summary": args.summary,
                   "figure": args.figure}
        heritability_stage(settings, args.genotypes, args.pheno, args.covar, args.method, outputs,
                           baseline=args.baseline, sample_qc=args.sample_qc, threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
