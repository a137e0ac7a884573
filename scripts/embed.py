#!/usr/bin/env python
"""Write one endophenotype table per subject: ViT-UDIPs from the trained model, or the PCA baseline."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.embed.pca import embed_pca
from vitudip.embed.spectrum import write_spectrum
from vitudip.embed.vit import embed_vit
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import RECON, UDIPS, recon_table, udip_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=("vit", "pca"), required=True)
    parser.add_argument("--model", help="train/model.pt (vit)")
    parser.add_argument("--cache", required=True)
    parser.add_argument("--qc", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--brain-mask", help="preprocess/brain_mask.npy (pca)")
    parser.add_argument("--embed-splits", nargs="+", default=["train", "val", "test"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--components", type=int, default=128, help="PCA components")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--udips", required=True, help="udips.tsv to write")
    parser.add_argument("--recon-mse", required=True, help="recon_mse.tsv to write")
    parser.add_argument("--spectrum", required=True, help="spectrum.tsv to write (correlation eigenvalues)")
    parser.add_argument("--health", required=True, help="health.tsv to write (participation ratio, warning)")
    args = parser.parse_args(argv)

    def run() -> None:
        if args.method == "vit":
            if not args.model:
                parser.error("--model is required with --method vit")
            ids, values, errors = embed_vit(args.model, args.cache, args.qc, args.splits, args.embed_splits,
                                            args.batch_size, args.device)
        else:
            if not args.brain_mask:
                parser.error("--brain-mask is required with --method pca")
            ids, values, errors = embed_pca(args.cache, args.qc, args.splits, args.brain_mask, args.embed_splits,
                                            args.components, seed=args.seed)
        paths = {"udips": args.udips, "recon": args.recon_mse, "spectrum": args.spectrum, "health": args.health}
        with staged_outputs(paths) as out:
            UDIPS.write(udip_table(ids, values), out["udips"])
            RECON.write(recon_table(ids, errors), out["recon"])
            write_spectrum(values, args.method, out["spectrum"], out["health"])

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
