"""The simulated demo cohort: subjects, genotypes, planted factors, images and truth tables."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm

from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.plink import write_bed
from vitudip.io.stage_tables import TRUTH_LOCI, TRUTH_MEASURES, TRUTH_REGIONS
from vitudip.simulate.brains import Ageing, BrainSimulator, Nuisance, PlantedEffect, Subject
from vitudip.simulate.genotypes import Genotypes, simulate_genotypes
from vitudip.simulate.settings import COHORT_FILES

log = logging.getLogger("vitudip.simulate")


@dataclass(frozen=True)
class CausalSpec:
    """How an effect's latent factor depends on one causal SNP.

    Args:
        variance_explained: share of the factor's variance due to the SNP.
        maf: target minor-allele frequency of the SNP.
        chromosome: chromosome to take it from.
        known: list the locus in ``known_loci.tsv`` (so it is not novel).
    """

    variance_explained: float
    maf: float
    chromosome: int
    known: bool


def parse_effects(entries: list[dict]) -> tuple[list[PlantedEffect], list[CausalSpec]]:
    """Split the config's ``simulate.effects`` entries into image and genetic parts, with clear errors."""
    effects, causal = [], []
    names = set()
    for i, e in enumerate(entries):
        where = f"simulate.effects[{i}] ('{e.get('name', '?')}')"
        if e["name"] in names:
            raise ValueError(f"{where}: duplicate effect name")
        names.add(e["name"])
        if not 0 < e["variance_explained"] < 1:
            raise ValueError(f"{where}: variance_explained must lie in (0, 1), got {e['variance_explained']}")
        if not 0.01 <= e["maf"] <= 0.5:
            raise ValueError(f"{where}: maf must lie in [0.01, 0.5], got {e['maf']}")
        try:
            effects.append(PlantedEffect(e["name"], e["region"], e.get("side", "both"), e["kind"], e["strength"]))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        causal.append(CausalSpec(e["variance_explained"], e["maf"], e["chromosome"], e.get("known", False)))
    return effects, causal


def pick_causal_snps(genotypes: Genotypes, specs: list[CausalSpec], rng: np.random.Generator,
                     min_gap_bp: int = 2_000_000) -> list[int]:
    """One variant per effect: MAF nearest the target, in the middle 60 % of its chromosome, loci kept apart.

    Returns:
        Column indices into ``genotypes.dosages``.
    """
    v = genotypes.variants
    chosen: list[int] = []
    for i, spec in enumerate(specs):
        on_chrom = v.index[v["chrom"] == spec.chromosome].to_numpy()
        if on_chrom.size == 0:
            raise ValueError(f"simulate.effects[{i}]: chromosome {spec.chromosome} is not among "
                             "simulate.genotypes.chromosomes")
        pos = v.loc[on_chrom, "pos"].to_numpy()
        lo, hi = np.quantile(pos, [0.2, 0.8])
        ok = (pos >= lo) & (pos <= hi)
        for j in chosen:
            if v.at[j, "chrom"] == spec.chromosome:
                ok &= np.abs(pos - v.at[j, "pos"]) >= min_gap_bp
        candidates = on_chrom[ok]
        if candidates.size == 0:
            raise ValueError(f"simulate.effects[{i}]: no room for another causal SNP on chromosome {spec.chromosome}")
        gap = np.abs(v.loc[candidates, "maf"].to_numpy() - spec.maf)
        near = candidates[gap <= gap.min() + 0.01]
        chosen.append(int(rng.choice(near)))
    return chosen


def planted_factors(dosages: np.ndarray, specs: list[CausalSpec], rng: np.random.Generator) -> np.ndarray:
    """Standardised latent factors: sqrt(h²)·standardised dosage + sqrt(1 - h²)·noise.

    Args:
        dosages: (n_subjects, n_effects) dosages of each effect's causal SNP.
        specs: the effects' genetic settings.

    Returns:
        (n_subjects, n_effects) float array.
    """
    g = dosages.astype(float)
    g = (g - g.mean(0)) / g.std(0)
    h2 = np.array([s.variance_explained for s in specs])
    noise = rng.standard_normal(g.shape)
    return np.sqrt(h2) * g + np.sqrt(1 - h2) * noise


def synthetic_genes(variants: pd.DataFrame, spacing_bp: int, rng: np.random.Generator) -> pd.DataFrame:
    """A gene table (chromosome, start, end, gene) with genes every ~``spacing_bp`` along each chromosome."""
    rows = []
    for chrom, pos in variants.groupby("chrom")["pos"]:
        starts = np.arange(int(pos.min()), int(pos.max()), spacing_bp) + rng.integers(0, spacing_bp // 2, 1)
        lengths = rng.integers(5_000, 120_000, starts.size)
        for k, (s, n) in enumerate(zip(starts, lengths)):
            rows.append((int(chrom), int(s), int(s + n), f"SIM{int(chrom)}G{k + 1:03d}"))
    return pd.DataFrame(rows, columns=["chromosome", "start", "end", "gene"])


def known_loci_table(truth: pd.DataFrame, variants: pd.DataFrame, n_decoys: int, window_bp: int,
                     rng: np.random.Generator) -> pd.DataFrame:
    """Known loci: a window around each effect marked ``known`` plus decoys at random SNPs elsewhere."""
    rows = [(r.chromosome, max(1, r.base_pair_location - window_bp), r.base_pair_location + window_bp,
             f"{r.effect} (simulated known)") for r in truth.itertuples() if r.known]
    far = np.ones(len(variants), bool)
    for r in truth.itertuples():
        same = variants["chrom"].to_numpy() == r.chromosome
        far &= ~(same & (np.abs(variants["pos"].to_numpy() - r.base_pair_location) < 5 * window_bp))
    for j in rng.choice(np.flatnonzero(far), size=min(n_decoys, int(far.sum())), replace=False):
        c, p = int(variants.at[j, "chrom"]), int(variants.at[j, "pos"])
        rows.append((c, max(1, p - window_bp), p + window_bp, "decoy (simulated known, no planted effect)"))
    table = pd.DataFrame(rows, columns=["chromosome", "start", "end", "trait"])
    table["source"] = "simulated"
    return table.sort_values(["chromosome", "start"]).reset_index(drop=True)


_WORKER: dict = {}


def _synthesize_one(job: tuple[int, str, Subject, str]) -> tuple[int, dict[str, float]]:
    """Worker: one subject's image, written to disk; returns its realised measures."""
    index, subject_id, subject, path = job
    sim: BrainSimulator = _WORKER["simulator"]
    rng = np.random.default_rng([_WORKER["seed"], 2, index])
    image, measures = sim.synthesize(subject, rng)
    nib.save(nib.Nifti1Image(image, sim.affine), path)
    return index, measures


def _dataclass_from(cls, values: dict):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def simulate_cohort(settings: dict, outdir: str | os.PathLike, seed: int, threads: int = 1) -> None:
    """Write the whole simulated cohort (see ``COHORT_FILES``) under ``outdir``, atomically.

    Args:
        settings: the config's ``simulate`` section (already schema-checked).
        outdir: output folder.
        seed: the study seed; the same settings and seed give the same files.
        threads: worker processes for the images.
    """
    start = time.time()
    outdir = Path(outdir)
    effects, specs = parse_effects(settings["effects"])
    n = int(settings["n_subjects"])
    gset = settings["genotypes"]
    rng = np.random.default_rng([seed, 1])
    ids = [str(1_000_001 + i) for i in range(n)]
    male = rng.random(n) < 0.5
    age_lo, age_hi = settings["age_range"]
    age = np.round(rng.uniform(age_lo, age_hi, n), 1)
    n_centres = int(settings["centres"])
    centre = rng.integers(0, n_centres, n)
    nuisance = _dataclass_from(Nuisance, settings["nuisance"])
    site_gain = np.exp(nuisance.site_gain * rng.standard_normal(n_centres))

    log.info("simulating genotypes: %d subjects, chromosomes %s, %.1f Mb each", n, gset["chromosomes"],
             gset["length_mb"])
    geno = simulate_genotypes(
        n_individuals=n, chromosomes=list(gset["chromosomes"]), length_bp=int(gset["length_mb"] * 1e6), seed=seed,
        ne=gset["ne"], recombination_rate=gset["recombination_rate"], mutation_rate=gset["mutation_rate"],
        min_maf=gset["min_maf"],
    )
    log.info("%d variants with MAF >= %s", geno.dosages.shape[1], gset["min_maf"])
    causal = pick_causal_snps(geno, specs, rng)
    factors = planted_factors(geno.dosages[:, causal], specs, rng)

    log.info("building the brain simulator on the %d mm grid", settings["voxel_mm"])
    sim = BrainSimulator(settings["voxel_mm"], effects, _dataclass_from(Ageing, settings["ageing"]), nuisance)
    _WORKER.update(simulator=sim, seed=seed)

    with staged_outputs({k: outdir / v for k, v in COHORT_FILES.items()}) as out:
        out["images"].mkdir()
        jobs = [(i, ids[i], Subject(factors[i], float(age[i]), bool(male[i]), float(site_gain[centre[i]])),
                 str(out["images"] / f"{ids[i]}.nii.gz")) for i in range(n)]
        measures: list[dict] = [{}] * n
        ctx = mp.get_context("fork")
        with ctx.Pool(max(1, threads)) as pool:
            for i, m in tqdm(pool.imap_unordered(_synthesize_one, jobs, chunksize=4), total=n,
                             desc="images", unit="subject", mininterval=5):
                measures[i] = m
        write_tsv(pd.DataFrame({"subject_id": ids, "path": [f"images/{s}.nii.gz" for s in ids]}), out["samples"])
        write_tsv(pd.DataFrame({"FID": ids, "IID": ids, "age": age, "sex": male.astype(int),
                                "centre": [f"centre{c + 1}" for c in centre]}), out["covariates"])

        write_bed(out["bed"].with_suffix(""), geno.dosages, geno.variants, ids, sex=np.where(male, 1, 2))

        truth = _truth_loci(geno, causal, effects, specs, factors)
        TRUTH_LOCI.write(truth, out["truth_loci"])
        TRUTH_REGIONS.write(_truth_regions(sim, effects), out["truth_regions"])
        table = pd.DataFrame(measures)
        table.insert(0, "subject_id", ids)
        for j, e in enumerate(effects):
            table[f"factor_{e.name}"] = factors[:, j]
        TRUTH_MEASURES.write(table, out["truth_measures"])
        write_tsv(known_loci_table(truth, geno.variants, int(settings["known_decoys"]),
                                   int(settings["known_window_kb"] * 1000), rng), out["known_loci"])
        write_tsv(synthetic_genes(geno.variants, int(settings["gene_spacing_kb"] * 1000), rng), out["genes"])
    log.info("simulated cohort written to %s in %.0f s", outdir, time.time() - start)


def _truth_loci(geno: Genotypes, causal: list[int], effects: list[PlantedEffect], specs: list[CausalSpec],
                factors: np.ndarray) -> pd.DataFrame:
    """Every causal SNP with its effect on its factor, as realised in this sample."""
    rows = []
    for j, (col, effect, spec) in enumerate(zip(causal, effects, specs)):
        v = geno.variants.iloc[col]
        dosage = geno.dosages[:, col].astype(float)
        slope = np.polyfit(dosage, factors[:, j], 1)[0]
        r2 = np.corrcoef(dosage, factors[:, j])[0, 1] ** 2
        rows.append({
            "effect": effect.name, "variant_id": v["id"], "chromosome": int(v["chrom"]),
            "base_pair_location": int(v["pos"]), "effect_allele": v["alt"], "other_allele": v["ref"],
            "effect_allele_frequency": float(dosage.mean() / 2), "maf": float(v["maf"]),
            "beta_per_allele_sd": float(slope), "variance_explained": float(r2),
            "variance_explained_target": spec.variance_explained,
            "region": effect.region, "side": effect.side, "kind": effect.kind, "strength_per_sd": effect.strength,
            "known": bool(spec.known),
        })
    return pd.DataFrame(rows)


def _truth_regions(sim: BrainSimulator, effects: list[PlantedEffect]) -> pd.DataFrame:
    """Which atlas labels each effect changes, and how big they are on the template."""
    rows = []
    voxel_ml = sim.voxel_mm**3 / 1000.0
    for effect, labels in zip(effects, sim.effect_labels):
        rows.append({
            "effect": effect.name, "region": effect.region, "side": effect.side, "kind": effect.kind,
            "atlas_labels": ";".join(sim.atlas.names[k - 1] for k in labels),
            "template_volume_ml": float(np.isin(sim.atlas.labels, labels).sum()) * voxel_ml,
        })
    return pd.DataFrame(rows)
