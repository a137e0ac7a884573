#!/usr/bin/env python
"""Write one endophenotype table per subject: ViT-UDIPs from the trained model, or the PCA baseline."""

import argparse
import sys

from vitudip.cli import run_cli
from vitudip.config import read_settings
from vitudip.embed.pca import embed_pca
from vitudip.embed.settings import EmbedSettings
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
    parser.add_argument("--settings", required=True,
                        help='JSON of the config keys embed, seed and train.device, e.g. \'{"seed": 0, "embed": '
                             '{"batch_size": 16}, "train": {"device": "cpu"}}\' (absent keys take the schema default)')
    parser.add_argument("--udips", required=True, help="udips.tsv to write")
    parser.add_argument("--recon-mse", required=True, help="recon_mse.tsv to write")
    parser.add_argument("--spectrum", required=True, help="spectrum.tsv to write (correlation eigenvalues)")
    parser.add_argument("--health", required=True, help="health.tsv to write (participation ratio, warning)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch when encoding (vit; the rule's threads:; "
                                                    "default: torch's); the PCA baseline does not use torch")
    args = parser.parse_args(argv)

    def run() -> None:
        settings = EmbedSettings.from_config(read_settings(args.settings, EmbedSettings.CONFIG_KEYS))
        if args.method == "vit":
            if not args.model:
                parser.error("--model is required with --method vit")
            ids, values, errors = embed_vit(args.model, args.cache, args.qc, args.splits, settings.splits,
                                            settings.batch_size, settings.device, args.threads)
        else:
            if not args.brain_mask:
                parser.error("--brain-mask is required with --method pca")
            ids, values, errors = embed_pca(args.cache, args.qc, args.splits, args.brain_mask, settings.splits,
                                            settings.pca_components, seed=settings.seed)
        paths = {"udips": args.udips, "recon": args.recon_mse, "spectrum": args.spectrum, "health": args.health}
        with staged_outputs(paths) as out:
            UDIPS.write(udip_table(ids, values), out["udips"])
            RECON.write(recon_table(ids, errors), out["recon"])
            write_spectrum(values, args.method, out["spectrum"], out["health"])

    run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
