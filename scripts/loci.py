#!/usr/bin/env python
"""FUMA-style genomic risk loci of every dimension, merged across dimensions (loci stage)."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.loci.fuma import MHC_REGIONS, FumaSettings
from vitudip.loci.ld import LD_METHODS
from vitudip.loci.stage import find_loci


def main(argv=None) -> None:
    defaults = FumaSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sumstats", required=True, help="folder of <dimension>.tsv.gz GWAS-SSF files")
    parser.add_argument("--bfile", required=True, help="GWAS genotypes, PLINK 1 prefix (the LD reference by default)")
    parser.add_argument("--ld-reference", help="PLINK 1 prefix to take LD from instead of --bfile")
    parser.add_argument("--pheno", "--udips", dest="phenotypes",
                        help="table with one column per dimension, for M_eff (default: M_eff = number of dimensions)")
    parser.add_argument("--known-loci", help="TSV chromosome, start, end, ...: loci overlapping none are novel")
    parser.add_argument("--genes", help="TSV chromosome, start, end, gene: names loci")
    parser.add_argument("--truth", help="simulated demo truth/loci.tsv: also write truth_recovery/summary.tsv")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--p-threshold", type=float, default=defaults.p_threshold,
                        help="independent significant SNPs (FUMA leadP)")
    parser.add_argument("--candidate-p", type=float, default=defaults.candidate_p,
                        help="candidate SNPs (FUMA gwasP)")
    parser.add_argument("--r2", type=float, default=defaults.r2, help="independence r² (FUMA r2)")
    parser.add_argument("--lead-r2", type=float, default=defaults.lead_r2, help="lead SNP r² (FUMA r2_2)")
    parser.add_argument("--window-kb", type=float, default=defaults.window_kb,
                        help="LD window: pairs further apart have r² 0 (plink --clump-kb)")
    parser.add_argument("--merge-distance-kb", type=float, default=defaults.merge_distance_kb,
                        help="LD blocks closer than this form one locus (FUMA mergeDist)")
    parser.add_argument("--min-maf", type=float, default=defaults.min_maf, help="in the LD reference (FUMA MAF)")
    parser.add_argument("--exclude-mhc", action="store_true", help="ignore SNPs in the MHC (FUMA exMHC)")
    parser.add_argument("--genome-build", choices=sorted(MHC_REGIONS), default=defaults.genome_build,
                        help="for the MHC coordinates")
    parser.add_argument("--ld-method", choices=LD_METHODS, default=defaults.ld_method,
                        help="haplotype: r² as plink 1.9 --clump (default); dosage: as plink 1.9 --r2")
    parser.add_argument("--skip-missing-ld", action="store_true",
                        help="drop significant SNPs the LD reference lacks instead of failing")
    parser.add_argument("--regional-flank-kb", type=float, default=50.0, help="regional plots' margin")
    parser.add_argument("--threads", type=int, default=1, help="processes reading summary statistics")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = FumaSettings(
            p_threshold=args.p_threshold, candidate_p=args.candidate_p, r2=args.r2, lead_r2=args.lead_r2,
            window_kb=args.window_kb, merge_distance_kb=args.merge_distance_kb, min_maf=args.min_maf,
            exclude_mhc=args.exclude_mhc, genome_build=args.genome_build, ld_method=args.ld_method,
        )
        find_loci(args.sumstats, args.bfile, args.out_dir, settings, ld_reference=args.ld_reference,
                  phenotypes=args.phenotypes, known_loci=args.known_loci, genes=args.genes, truth=args.truth,
                  skip_missing_ld=args.skip_missing_ld, regional_flank_kb=args.regional_flank_kb,
                  threads=args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
