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


@dataclass(frozen=True)
class Participants:
    """Who is in the cohort: identities and covariates, drawn before anything genetic.

    Args:
        ids: subject ids, also the PLINK FID and IID.
        male: one sex per subject.
        age: one age per subject, years to one decimal.
        centre: one assessment-centre index per subject, from 0.
        centre_gain: one multiplicative image-intensity gain per centre.
    """

    ids: list[str]
    male: np.ndarray
    age: np.ndarray
    centre: np.ndarray
    centre_gain: np.ndarray

    def subject(self, index: int, factors: np.ndarray) -> Subject:
        """What the image of subject ``index`` depends on.

        Args:
            index: the subject's row.
            factors: its planted latent factors, one per effect.
        """
        return Subject(factors, float(self.age[index]), bool(self.male[index]),
                       float(self.centre_gain[self.centre[index]]))


def _draw_participants(settings: dict, nuisance: Nuisance, rng: np.random.Generator) -> Participants:
    """Ids, sex, age, centre and the centres' intensity gains.

    Args:
        settings: the config's ``simulate`` section.
        nuisance: the image nuisance settings (its ``site_gain`` spreads the centres' gains).
        rng: the cohort's generator; the draws come in a fixed order, so a seed gives the same cohort.
    """
    n = int(settings["n_subjects"])
    ids = [str(1_000_001 + i) for i in range(n)]
    male = rng.random(n) < 0.5
    age_lo, age_hi = settings["age_range"]
    age = np.round(rng.uniform(age_lo, age_hi, n), 1)
    n_centres = int(settings["centres"])
    centre = rng.integers(0, n_centres, n)
    centre_gain = np.exp(nuisance.site_gain * rng.standard_normal(n_centres))
    return Participants(ids, male, age, centre, centre_gain)


def _cohort_genotypes(genotype_settings: dict, n_subjects: int, seed: int) -> Genotypes:
    """The cohort's genotypes, logged as they are made.

    Args:
        genotype_settings: the config's ``simulate.genotypes`` section.
        n_subjects: individuals to simulate.
        seed: the study seed.
    """
    chromosomes, length_mb = genotype_settings["chromosomes"], genotype_settings["length_mb"]
    log.info("simulating genotypes: %d subjects, chromosomes %s, %.1f Mb each", n_subjects, chromosomes, length_mb)
    geno = simulate_genotypes(
        n_individuals=n_subjects, chromosomes=list(chromosomes), length_bp=int(length_mb * 1e6), seed=seed,
        ne=genotype_settings["ne"], recombination_rate=genotype_settings["recombination_rate"],
        mutation_rate=genotype_settings["mutation_rate"], min_maf=genotype_settings["min_maf"],
    )
    log.info("%d variants with MAF >= %s", geno.dosages.shape[1], genotype_settings["min_maf"])
    return geno


_WORKER: dict = {}


def _synthesize_one(job: tuple[int, str, Subject, str]) -> tuple[int, dict[str, float]]:
    """Worker: one subject's image, written to disk; returns its realised measures."""
    index, subject_id, subject, path = job
    sim: BrainSimulator = _WORKER["simulator"]
    rng = np.random.default_rng([_WORKER["seed"], 2, index])
    image, measures = sim.synthesize(subject, rng)
    nib.save(nib.Nifti1Image(image, sim.affine), path)
    return index, measures


def _synthesize_images(sim: BrainSimulator, participants: Participants, factors: np.ndarray,
                       images_dir: Path, seed: int, threads: int) -> list[dict[str, float]]:
    """Write every subject's image as ``<id>.nii.gz`` into ``images_dir``, in worker processes.

    Args:
        sim: the brain simulator.
        participants: the cohort.
        factors: (n_subjects, n_effects) planted latent factors.
        images_dir: an existing, empty folder.
        seed: the study seed; each image has its own generator from it and the subject's row, so the images
            do not depend on which worker makes them.
        threads: worker processes.

    Returns:
        Each subject's realised measures, in subject order.
    """
    # the forked workers inherit the simulator rather than receiving a pickled copy per job
    _WORKER.update(simulator=sim, seed=seed)
    ids = participants.ids
    jobs = [(i, ids[i], participants.subject(i, factors[i]), str(images_dir / f"{ids[i]}.nii.gz"))
            for i in range(len(ids))]
    measures: list[dict] = [{}] * len(ids)
    ctx = mp.get_context("fork")
    with ctx.Pool(max(1, threads)) as pool:
        for i, m in tqdm(pool.imap_unordered(_synthesize_one, jobs, chunksize=4), total=len(ids),
                         desc="images", unit="subject", mininterval=5):
            measures[i] = m
    return measures


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
    # every cohort-level draw comes from this one generator, in this order (participants, causal SNPs, factors,
    # known loci, genes): reordering the steps would change the cohort a seed gives
    rng = np.random.default_rng([seed, 1])
    nuisance = _dataclass_from(Nuisance, settings["nuisance"])
    participants = _draw_participants(settings, nuisance, rng)
    geno = _cohort_genotypes(settings["genotypes"], len(participants.ids), seed)
    causal = pick_causal_snps(geno, specs, rng)
    factors = planted_factors(geno.dosages[:, causal], specs, rng)

    log.info("building the brain simulator on the %d mm grid", settings["voxel_mm"])
    sim = BrainSimulator(settings["voxel_mm"], effects, _dataclass_from(Ageing, settings["ageing"]), nuisance)

    with staged_outputs({k: outdir / v for k, v in COHORT_FILES.items()}) as out:
        out["images"].mkdir()
        measures = _synthesize_images(sim, participants, factors, out["images"], seed, threads)
        _write_participant_files(participants, geno, out)
        truth = _truth_loci(geno, causal, effects, specs, factors)
        TRUTH_LOCI.write(truth, out["truth_loci"])
        TRUTH_REGIONS.write(_truth_regions(sim, effects), out["truth_regions"])
        TRUTH_MEASURES.write(_truth_measures(participants.ids, measures, effects, factors), out["truth_measures"])
        write_tsv(known_loci_table(truth, geno.variants, int(settings["known_decoys"]),
                                   int(settings["known_window_kb"] * 1000), rng), out["known_loci"])
        write_tsv(synthetic_genes(geno.variants, int(settings["gene_spacing_kb"] * 1000), rng), out["genes"])
    log.info("simulated cohort written to %s in %.0f s", outdir, time.time() - start)


def _write_participant_files(participants: Participants, geno: Genotypes, out: dict[str, Path]) -> None:
    """The samples table, the covariates and the PLINK fileset.

    Args:
        participants: the cohort.
        geno: its genotypes.
        out: ``COHORT_FILES`` key -> staged path.
    """
    ids, male = participants.ids, participants.male
    write_tsv(pd.DataFrame({"subject_id": ids, "path": [f"images/{s}.nii.gz" for s in ids]}), out["samples"])
    write_tsv(pd.DataFrame({"FID": ids, "IID": ids, "age": participants.age, "sex": male.astype(int),
                            "centre": [f"centre{c + 1}" for c in participants.centre]}), out["covariates"])
    write_bed(out["bed"].with_suffix(""), geno.dosages, geno.variants, ids, sex=np.where(male, 1, 2))


def _truth_measures(ids: list[str], measures: list[dict[str, float]], effects: list[PlantedEffect],
                    factors: np.ndarray) -> pd.DataFrame:
    """Each subject's realised image measures and planted factors.

    Args:
        ids: subject ids, in subject order.
        measures: each subject's realised measures, in the same order.
        effects: the planted effects, in factor order.
        factors: (n_subjects, n_effects) planted latent factors.
    """
    table = pd.DataFrame(measures)
    table.insert(0, "subject_id", ids)
    for j, e in enumerate(effects):
        table[f"factor_{e.name}"] = factors[:, j]
    return table


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
