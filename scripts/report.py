#!/usr/bin/env python
"""Study summary: merged loci → dimensions → top PerDI regions (and each locus direction's); on the simulated demo,
the truth scoring too."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.report.stage import TruthFiles, summarise_study
from vitudip.report.summary import TOP_REGIONS

_TRUTH_FLAGS = ("truth_recovery", "truth_regions", "truth", "truth_summary")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loci", required=True, help="loci/loci_merged.tsv")
    parser.add_argument("--regions", required=True, help="perdi/regions.tsv")
    parser.add_argument("--locus-regions", help="perdi/locus_regions.tsv: each locus direction's top regions")
    parser.add_argument("--heritability", help="gwas/heritability.tsv: each dimension's h2 and SE in the summary")
    parser.add_argument("--summary", required=True, help="summary.tsv to write")
    parser.add_argument("--replication", help="loci/replication.tsv: which loci replicated (replication.enabled)")
    parser.add_argument("--top-regions", type=int, default=TOP_REGIONS, help="PerDI regions per dimension")
    demo = parser.add_argument_group("simulated demo (all four or none)")
    demo.add_argument("--truth-recovery", help="loci/truth_recovery.tsv")
    demo.add_argument("--truth-regions", help="demo/truth/regions.tsv")
    demo.add_argument("--truth", help="truth.tsv to write")
    demo.add_argument("--truth-summary", help="truth_summary.tsv to write")
    args = parser.parse_args(argv)
    given = [getattr(args, flag) is not None for flag in _TRUTH_FLAGS]
    if any(given) and not all(given):
        parser.error("--truth-recovery, --truth-regions, --truth and --truth-summary go together")
    truth = TruthFiles(args.truth_recovery, args.truth_regions, args.truth, args.truth_summary) if all(given) else None
    run_cli(lambda: summarise_study(args.loci, args.regions, args.summary, truth, args.top_regions,
                                    args.locus_regions, args.heritability, args.replication))


if __name__ == "__main__":
    sys.exit(main())
