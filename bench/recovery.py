#!/usr/bin/env python
"""Which embedding carries the planted brain: train each model variant with the same budget, side by side.

On a simulated cohort that the workflow has already simulated and preprocessed
(`results/demo` and `results/preprocess`, or a `--configfile` overlay such as
`bench/cohorts/other_regions.yaml`), every variant is trained for the same number
of epochs, embedded, and judged on the planted truth:

- training minutes (CPU model printed with the table),
- the participation ratio of the embedding (effective number of dimensions, of 128),
- the cross-validated R² of each planted measure from the embedding (ridge, 5 folds),
- planted loci reaching 5e-8 in at least one dimension (any SNP within 250 kb of the
  causal SNP), false loci (significant SNPs more than 500 kb from every causal SNP,
  merged within 250 kb), the same two counts when the joint test across dimensions may
  find a locus too (`with_joint`, `false_with_joint`: the workflow's loci come from both;
  the joint test as the cohort's `joint` config sets it), the range of λGC over the
  dimensions, and the best single-dimension p (over dimensions and SNPs within 250 kb) at
  each planted locus, in the truth table's order.

The GWAS is the in-process least-squares engine (identical to plink2 --glm to 4e-6 in
-log10 p) on all variants with the pheno stage's default covariates. PCA (128 components
of the brain voxels) and the published pooling (`mean`: mean token, no penalty, no nested
dropout) are rows; every other option of the cohort's preset stays as configured, and `preset` is the
cohort's model exactly as its config sets it (what `make run` trains).

    python bench/recovery.py                                  # the demo cohort, every variant
    python bench/recovery.py --configfile bench/cohorts/other_regions.yaml
    python bench/recovery.py --variants pca mean --epochs 2   # a quick look
    python bench/recovery.py --variants preset --epochs 2     # the configured model on a shorter budget
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from vitudip.config import load_config
from vitudip.embed.pca import embed_pca
from vitudip.embed.spectrum import Spectrum
from vitudip.embed.truth import cross_validated_r2
from vitudip.embed.vit import embed_vit
from vitudip.genetics.joint_correlation import phenotype_correlation
from vitudip.genetics.joint_stats import JointTest
from vitudip.genetics.linear import linear_association
from vitudip.genetics.pheno import covariate_matrix, parse_numeric, read_covariates
from vitudip.genetics.settings import PhenoSettings
from vitudip.io.plink import read_bed, read_bim, read_fam
from vitudip.model.config import configured
from vitudip.simulate.settings import COHORT_FILES
from vitudip.train.settings import TrainSettings
from vitudip.train.trainer import train_model

#: Every variant sets all the options it compares, so the table does not change with the preset's defaults.
_PLAIN = {"pooling": "mean", "nested_dropout": False, "latent_variance_weight": 0.0, "latent_covariance_weight": 0.0,
          "mode_loss_weight": 0.0, "latent_mode_weight": 0.0, "pool_from_modes": False}
_PENALTY = {"latent_variance_weight": 0.01, "latent_covariance_weight": 0.01}

#: name -> model field overrides; "pca" is the voxel PCA baseline, "preset" the cohort's model as configured.
VARIANTS: dict[str, dict] = {
    "pca": {},
    "preset": {},
    "mean": _PLAIN,
    "vicreg": {**_PLAIN, **_PENALTY},
    "nested": {**_PLAIN, "nested_dropout": True},
    "nested+vicreg": {**_PLAIN, "nested_dropout": True, **_PENALTY},
    "attentive": {**_PLAIN, "pooling": "attentive"},
    "attentive+vicreg": {**_PLAIN, "pooling": "attentive", **_PENALTY},
    "patch": {**_PLAIN, "pooling": "per_patch"},
    "patch+nested+vicreg": {**_PLAIN, "pooling": "per_patch", "nested_dropout": True, **_PENALTY},
    "modes+nested+vicreg": {**_PLAIN, "nested_dropout": True, **_PENALTY, "mode_loss_weight": 1.0,
                            "mode_loss_modes": 32},
    "modes128+nested+vicreg": {**_PLAIN, "nested_dropout": True, **_PENALTY, "mode_loss_weight": 1.0,
                               "mode_loss_modes": 128},
    # per-patch pooling, its first 32 dimensions anchored to the images' 32 leading modes
    "anchored": {**_PLAIN, "pooling": "per_patch", "nested_dropout": True, **_PENALTY, "mode_loss_weight": 1.0,
                 "mode_loss_modes": 32, "latent_mode_weight": 1.0},
    "anchored64": {**_PLAIN, "pooling": "per_patch", "nested_dropout": True, **_PENALTY, "mode_loss_weight": 1.0,
                   "mode_loss_modes": 64, "latent_mode_weight": 1.0},
    # every dimension anchored to a leading mode, the per-patch pool started at the modes in closed form
    "mode_start": {**_PLAIN, "pooling": "per_patch", "nested_dropout": True, **_PENALTY, "mode_loss_weight": 1.0,
                   "mode_loss_modes": 128, "latent_mode_weight": 1.0, "pool_from_modes": True},
}
#: The joint test's settings the scan takes from the cohort's config.
JOINT_KEYS = ("method", "k", "variance_share", "max_condition")
GENOME_WIDE = 5e-8
PLANTED_WINDOW_BP = 250_000
FALSE_DISTANCE_BP = 500_000
MERGE_BP = 250_000
BLOCK = 8192


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="config.yaml", help="config (or overlay on config.yaml) of the cohort")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, help="training epochs of every variant (default: train.epochs)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", help="also write the table here (TSV)")
    return parser.parse_args(argv)


def cohort_config(path: str) -> dict:
    """The config, with a partial overlay (like snakemake --configfile) put over config.yaml."""
    import yaml

    overlay = yaml.safe_load(Path(path).read_text())
    if Path(path).resolve() == Path("config.yaml").resolve():
        return load_config(path)
    base = yaml.safe_load(Path("config.yaml").read_text())

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for key, value in b.items():
            out[key] = merge(a[key], value) if isinstance(value, dict) and isinstance(a.get(key), dict) else value
        return out

    merged = Path(".tmp-recovery-config.yaml")
    merged.write_text(yaml.safe_dump(merge(base, overlay)))
    try:
        return load_config(merged)
    finally:
        merged.unlink()


class Genome:
    """Genotypes, covariates and truth of a simulated cohort, for fast genome-wide scans of embeddings."""

    def __init__(self, config: dict) -> None:
        cohort = config["simulate"]["outdir"]
        self.prefix = os.path.join(cohort, "geno")
        self.bim = read_bim(self.prefix)
        fam = read_fam(self.prefix)
        self.samples = list(fam["iid"])
        settings = PhenoSettings.from_config(config)
        path = os.path.join(cohort, COHORT_FILES["covariates"])
        table = read_covariates(path).set_index("IID", drop=False).loc[self.samples]
        covariates = parse_numeric(table, settings.numeric_columns(), path)
        covariates[settings.categorical] = table[settings.categorical]
        self.covariates = covariate_matrix(covariates, settings).to_numpy(float)
        self.joint = config["joint"]
        self.truth = pd.read_csv(os.path.join(cohort, COHORT_FILES["truth_loci"]), sep="\t")
        self.measures = pd.read_csv(os.path.join(cohort, COHORT_FILES["truth_measures"]), sep="\t",
                                    dtype={"subject_id": str}).set_index("subject_id")

    def scan(self, ids: list[str], values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Min p over dimensions per variant, the joint test's p per variant (the workflow's default test:
        the top eigen-directions holding 90 % of R), and λGC per dimension."""
        pheno = pd.DataFrame(values, index=ids).reindex(self.samples).to_numpy(float)
        joint = JointTest.from_correlation(phenotype_correlation(pheno, self.covariates), quiet=True,
                                           **{key: self.joint[key] for key in JOINT_KEYS})
        names = list(joint.dimensions)
        n_variants = len(self.bim)
        blocks, joint_p = [], []
        for start in range(0, n_variants, BLOCK):
            index = np.arange(start, min(start + BLOCK, n_variants))
            result = linear_association(read_bed(self.prefix, index), pheno, self.covariates)
            blocks.append(result.p_value)
            joint_p.append(joint.test_association(names, result.beta, result.standard_error, result.p_value).p_value)
        p_values = np.vstack(blocks)
        lambda_gc = stats.chi2.isf(np.median(p_values, axis=0), 1) / stats.chi2.ppf(0.5, 1)
        return p_values.min(axis=1), np.concatenate(joint_p), lambda_gc

    def loci(self, min_p: np.ndarray) -> tuple[int, int, list[float]]:
        """Planted loci reaching genome-wide significance, false loci, and the best p at each planted locus."""
        chrom = self.bim["chrom"].astype(str).to_numpy()
        pos = self.bim["pos"].to_numpy()
        hit = min_p < GENOME_WIDE
        recovered, best = 0, []
        near_truth = np.zeros(len(pos), bool)
        for row in self.truth.itertuples():
            here = chrom == str(row.chromosome)
            near = here & (np.abs(pos - int(row.base_pair_location)) <= PLANTED_WINDOW_BP)
            recovered += int((hit & near).any())
            best.append(float(min_p[near].min()) if near.any() else float("nan"))
            near_truth |= here & (np.abs(pos - int(row.base_pair_location)) <= FALSE_DISTANCE_BP)
        false = 0
        for c in np.unique(chrom[hit & ~near_truth]):
            positions = np.sort(pos[hit & ~near_truth & (chrom == c)])
            false += 1 + int((np.diff(positions) > MERGE_BP).sum())
        return recovered, false, best


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def embed_variant(name: str, config: dict, epochs: int, threads: int, workdir: Path) -> tuple[list, np.ndarray, float]:
    """Train (unless PCA) and embed every QC-passed subject; returns ids, embedding and training minutes."""
    pre = os.path.join(config["results"], "preprocess")
    cache, qc, splits, mask = (os.path.join(pre, f) for f in ("cache", "qc.tsv", "splits.tsv", "brain_mask.npy"))
    if name == "pca":
        started = time.perf_counter()
        ids, values, _ = embed_pca(cache, qc, splits, mask, ["train", "val", "test"],
                                   config["embed"]["pca_components"], seed=config["seed"])
        return ids, values, (time.perf_counter() - started) / 60
    model_config = configured(config["model"]["preset"], {**config["model"]["overrides"], **VARIANTS[name]})
    settings = TrainSettings.from_config({**config, "train": {**config["train"], "epochs": epochs}}, threads=threads)
    out = workdir / name
    # from scratch: a checkpoint of an earlier run (another budget) would be resumed
    shutil.rmtree(out, ignore_errors=True)
    outputs = {k: out / f for k, f in (("model", "model.pt"), ("metrics", "metrics.tsv"),
                                       ("loss_plot", "loss.png"), ("reconstruction_plot", "reconstruction.png"))}
    started = time.perf_counter()
    train_model(cache, qc, splits, mask, model_config, settings, outputs, out / "checkpoints")
    minutes = (time.perf_counter() - started) / 60
    ids, values, _ = embed_vit(outputs["model"], cache, qc, splits, ["train", "val", "test"], 16, "cpu")
    return ids, values, minutes


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = cohort_config(args.configfile)
    epochs = args.epochs or config["train"]["epochs"]
    genome = Genome(config)
    workdir = Path(config["results"]) / "bench_recovery"
    planted = list(genome.truth["effect"])
    rows = []
    for name in args.variants:
        ids, values, minutes = embed_variant(name, config, epochs, args.threads, workdir)
        spectrum = Spectrum.of(values)
        row = {"variant": name, "train_min": round(minutes, 1),
               "participation_ratio": round(spectrum.participation_ratio, 1), "dims_90pct": spectrum.dims_90pct}
        for effect in planted:
            row[f"r2_{effect}"] = round(cross_validated_r2(values, genome.measures.loc[ids, effect].to_numpy(float)), 3)
        min_p, joint_p, lambda_gc = genome.scan(ids, values)
        recovered, false, best = genome.loci(min_p)
        either, either_false, _ = genome.loci(np.fmin(min_p, joint_p))
        row.update({"planted_loci": f"{recovered}/{len(planted)}", "false_loci": false,
                    "with_joint": f"{either}/{len(planted)}", "false_with_joint": either_false,
                    "lambda_gc": f"{lambda_gc.min():.2f}-{lambda_gc.max():.2f}",
                    "best_p": " ".join(f"{p:.0e}" for p in best)})
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{args.configfile}: {len(ids)} subjects, {epochs} epochs per variant, {args.threads} threads, "
          f"{cpu_model()}")
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
