#!/usr/bin/env python
"""PerDI: perturb each UDIP dimension and each locus direction, decode, map t and mean change, rank Harvard-Oxford
regions, draw panels."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.perdi.settings import PerdiSettings
from vitudip.perdi.stage import PerdiInputs, PerdiOutputs, run_perdi


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="train/model.pt")
    parser.add_argument("--udips", required=True, help="embed/udips.tsv (the latents)")
    parser.add_argument("--cache", required=True, help="preprocess/cache (its grid.json)")
    parser.add_argument("--qc", required=True, help="preprocess/qc.tsv")
    parser.add_argument("--brain-mask", required=True, help="preprocess/brain_mask.npy")
    parser.add_argument("--loci", help="loci/loci_merged.tsv: every locus gets a locus direction; with dimensions: "
                                       "loci or leads its dimensions are the ones mapped and shown in the overview")
    parser.add_argument("--sumstats", help="gwas/sumstats (tabix-indexed GWAS-SSF files): the lead variants' betas; "
                                           "needed when --loci has loci")
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys perdi, seed and pheno, e.g. '
                             '\'{"seed": 0, "perdi": {"device": "cpu"}, "pheno": {}}\' '
                             "(absent keys of a section take the schema default)")
    parser.add_argument("--atlas-cache", help="folder caching the Harvard-Oxford labels on the input grid")
    parser.add_argument("--maps", required=True, help="folder to write udip_NNN.nii.gz maps into")
    parser.add_argument("--regions", required=True, help="regions.tsv to write")
    parser.add_argument("--panels", required=True, help="folder to write udip_NNN.png panels into")
    parser.add_argument("--overview", required=True, help="overview PNG to write")
    parser.add_argument("--locus-regions", help="locus_regions.tsv to write (needed with --loci)")
    parser.add_argument("--locus-directions", help="locus_directions.tsv to write (needed with --loci)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (the rule's threads:; default: torch's)")
    args = parser.parse_args(argv)
    if args.loci is not None and (args.locus_regions is None or args.locus_directions is None):
        parser.error("--loci needs --locus-regions and --locus-directions")

    def run() -> None:
        settings = PerdiSettings.from_config(read_settings(args.settings, PerdiSettings.CONFIG_KEYS))
        inputs = PerdiInputs(args.model, args.udips, args.cache, args.qc, args.brain_mask, loci=args.loci,
                             sumstats=args.sumstats, atlas_cache=args.atlas_cache)
        outputs = PerdiOutputs(args.maps, args.regions, args.panels, args.overview,
                               locus_regions=args.locus_regions, locus_directions=args.locus_directions)
        run_perdi(inputs, outputs, settings, args.threads)

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
