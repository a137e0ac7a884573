#!/usr/bin/env python
"""FUMA-style genomic risk loci of every dimension, merged across dimensions (loci stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.loci.settings import LociSettings
from vitudip.loci.stage import find_loci


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sumstats", required=True, help="folder of <dimension>.tsv.gz GWAS-SSF files")
    parser.add_argument("--ld-genotypes", required=True, nargs="+", metavar="PREFIX",
                        help="the genotypes LD is taken from, PLINK 1 or PLINK 2 prefixes with the same samples: the "
                             "analysed samples' per-chromosome genotypes (results/genotypes/chr{c}), or a PLINK 1 "
                             "reference panel (loci.ld_reference)")
    parser.add_argument("--pheno", "--udips", dest="phenotypes",
                        help="table with one column per dimension, for M_eff (default: M_eff = number of dimensions)")
    parser.add_argument("--known-loci", help="TSV chromosome, start, end, ...: loci overlapping none are novel")
    parser.add_argument("--genes", help="TSV chromosome, start, end, gene: names loci")
    parser.add_argument("--truth", help="simulated demo truth/loci.tsv: also write truth_recovery/summary.tsv")
    parser.add_argument("--joint", help="gwas/joint/joint.tsv.gz: clump the joint test's p too, as test 'joint'")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--settings", required=True,
                        help='JSON of the config key loci (FUMA thresholds and options), e.g. '
                             '\'{"loci": {"exclude_mhc": true}}\' (absent keys take the schema default); '
                             "its ld_reference is the workflow's: here the LD filesets are --ld-genotypes")
    parser.add_argument("--threads", type=int, default=1, help="processes reading summary statistics")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = LociSettings.from_config(read_settings(args.settings, LociSettings.CONFIG_KEYS))
        find_loci(args.sumstats, args.ld_genotypes, args.out_dir, settings, phenotypes=args.phenotypes,
                  known_loci=args.known_loci, genes=args.genes, truth=args.truth, joint=args.joint,
                  threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
