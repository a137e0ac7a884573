#!/usr/bin/env python
"""REGENIE step 1, once for all dimensions: LD-prune the variants (unless given), then fit the whole-genome model."""

import argparse
import sys
from pathlib import Path

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.genetics.regenie import prune_step1_variants, regenie_step1
from vitudip.genetics.settings import REGENIE_STEP1_KEYS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genotypes", required=True, help="genotype prefix covering all chromosomes")
    parser.add_argument("--pheno", required=True, help="pheno/pheno.tsv")
    parser.add_argument("--covar", required=True, help="pheno/covar.tsv")
    parser.add_argument("--out-dir", required=True, help="folder for step1_pred.list and the LOCO files")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config key gwas.regenie, e.g. \'{"gwas": {"regenie": {"prune_r2": 0.2}}}\' '
                             '(absent keys take the schema default)')
    parser.add_argument("--extract", help="file of the variant IDs that pass the genotype QC (variants_pass.txt)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    def run() -> None:
        step1 = read_settings(args.settings, REGENIE_STEP1_KEYS)["gwas"]["regenie"]
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        variants = step1["step1_variants"] or prune_step1_variants(
            args.genotypes, out / "pruned", step1["prune_window_kb"], step1["prune_r2"], step1["step1_maf"],
            args.threads, extract=args.extract)
        regenie_step1(args.genotypes, args.pheno, args.covar, out, args.threads, extract=variants,
                      bsize=step1["step1_bsize"], par_region=step1["par_region"])

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
