"""The simulated cohort: files, determinism, and planted effects that are really in the images."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from vitudip.config import validate_config
from vitudip.imaging.grid import mni_grid
from vitudip.io.plink import read_bed, read_bim, read_fam
from vitudip.simulate.brains import Ageing, BrainSimulator, Nuisance, Subject
from vitudip.simulate.cohort import parse_effects, simulate_cohort
from vitudip.simulate.settings import COHORT_FILES

N = 160
H2 = 0.3
EFFECTS = [
    dict(name="ventricles_volume", region="Lateral_Ventricle", side="both", kind="volume", strength=0.15,
         variance_explained=H2, maf=0.3, chromosome=1, known=True),
    dict(name="thalamus_intensity", region="Thalamus", side="both", kind="intensity", strength=0.05,
         variance_explained=H2, maf=0.3, chromosome=2),
    dict(name="left_hippocampus_intensity", region="Hippocampus", side="left", kind="intensity", strength=0.05,
         variance_explained=H2, maf=0.3, chromosome=3),
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A 160-subject cohort at 2 mm with three planted effects on three 2 Mb chromosomes."""
    raw = {
        "results": "unused", "seed": 11,
        "inputs": {"samples": "s", "covariates": "c", "genotypes": "g"},
        "simulate": {"enabled": True, "n_subjects": N, "voxel_mm": 2,
                     "genotypes": {"chromosomes": [1, 2, 3], "length_mb": 2.0}, "effects": EFFECTS,
                     "known_decoys": 2},
        "preprocess": {"input_voxel_mm": 2, "pad_to": [96, 112, 96]},
    }
    config = validate_config(raw)
    outdir = tmp_path_factory.mktemp("cohort")
    simulate_cohort(config["simulate"], outdir, seed=config["seed"], threads=2)
    return outdir, config


def _read(outdir, key):
    return pd.read_csv(outdir / COHORT_FILES[key], sep="\t", dtype={"subject_id": str, "FID": str, "IID": str})


def test_every_file_is_written_with_consistent_ids(cohort):
    outdir, _ = cohort
    for rel in COHORT_FILES.values():
        assert (outdir / rel).exists(), rel
    assert not list(outdir.glob(".tmp-*")), "staging folder left behind"
    samples = _read(outdir, "samples")
    covariates = _read(outdir, "covariates")
    fam = read_fam(outdir / "geno")
    assert len(samples) == N and samples["subject_id"].is_unique
    assert list(covariates["IID"]) == list(samples["subject_id"]) == list(fam["iid"]) == list(fam["fid"])
    assert set(covariates["sex"]) == {0, 1} and covariates["age"].between(45, 80).all()
    assert covariates["centre"].nunique() == 3
    # PLINK sex codes 1 = male, 2 = female agree with the covariate (1 = male)
    assert (np.where(covariates["sex"] == 1, 1, 2) == fam["sex"].to_numpy()).all()
    shape, affine = mni_grid(2)
    img = nib.load(outdir / "images" / samples["path"].iloc[0].split("/")[-1])
    assert img.shape == shape and np.allclose(img.affine, affine)
    data = img.get_fdata()
    assert np.isfinite(data).all() and (data > 0).sum() > 100_000 and data.min() == 0


def test_planted_measure_tracks_its_causal_snp_at_the_configured_strength(cohort):
    outdir, _ = cohort
    truth = _read(outdir, "truth_loci")
    measures = _read(outdir, "truth_measures")
    covariates = _read(outdir, "covariates")
    bim = read_bim(outdir / "geno")
    centres = pd.get_dummies(covariates["centre"]).to_numpy(float)[:, 1:]
    design = np.column_stack([np.ones(N), covariates["age"], covariates["sex"], centres])
    for row in truth.itertuples():
        dosage = read_bed(outdir / "geno", int(np.flatnonzero(bim["id"] == row.variant_id)[0]))[:, 0].astype(float)
        factor = measures[f"factor_{row.effect}"].to_numpy()
        # the factor carries the SNP at the configured variance explained (sampling error ~ 1/sqrt(N))
        assert abs(np.corrcoef(dosage, factor)[0, 1] - np.sqrt(H2)) < 3 / np.sqrt(N)
        # the image's measured region carries the factor at the configured strength per SD
        log_measure = np.log(measures[row.effect].to_numpy())
        coef = np.linalg.lstsq(np.column_stack([design, factor]), log_measure, rcond=None)[0][-1]
        assert coef == pytest.approx(np.log1p(row.strength_per_sd), rel=0.3), row.effect
        assert truth.loc[truth.effect == row.effect, "variance_explained"].iloc[0] == pytest.approx(
            np.corrcoef(dosage, factor)[0, 1] ** 2, rel=1e-4)


def test_non_causal_snps_do_not_track_the_measure(cohort):
    outdir, _ = cohort
    truth = _read(outdir, "truth_loci")
    measures = _read(outdir, "truth_measures")
    bim = read_bim(outdir / "geno")
    dosages = read_bed(outdir / "geno").astype(float)
    for row in truth.itertuples():
        y = measures[row.effect].to_numpy()
        r = np.abs([np.corrcoef(d, y)[0, 1] if d.std() > 0 else 0.0 for d in dosages.T])
        causal = int(np.flatnonzero(bim["id"] == row.variant_id)[0])
        unlinked = (bim["chrom"] != str(row.chromosome)).to_numpy()
        assert r[causal] > r[unlinked].max(), row.effect
        assert np.median(r[unlinked]) < 0.1


def test_ventricles_grow_with_age(cohort):
    outdir, _ = cohort
    measures = _read(outdir, "truth_measures")
    covariates = _read(outdir, "covariates")
    assert np.corrcoef(covariates["age"], np.log(measures["ventricle_volume_ml"]))[0, 1] > 0.3


def test_known_loci_list_known_effects_and_decoys_only(cohort):
    outdir, _ = cohort
    truth = _read(outdir, "truth_loci")
    known = _read(outdir, "known_loci")
    assert list(known.columns[:4]) == ["chromosome", "start", "end", "trait"]

    def covered(row):
        same = known[known.chromosome == row.chromosome]
        return bool(((same.start <= row.base_pair_location) & (same.end >= row.base_pair_location)).any())

    assert [covered(r) for r in truth.itertuples()] == list(truth["known"])
    assert known["trait"].str.startswith("decoy").sum() == 2
    genes = _read(outdir, "genes")
    assert (genes["end"] > genes["start"]).all() and genes["gene"].is_unique


def _simulator(voxel_mm=2, nuisance=None):
    effects, _ = parse_effects([dict(e, side=e.get("side", "both")) for e in EFFECTS])
    return BrainSimulator(voxel_mm, effects, Ageing(), nuisance or Nuisance())


def test_same_seed_same_image_and_nuisance_changes_it():
    # scanner-like nuisance: every knob on, the geometric ones included
    sim = _simulator(nuisance=Nuisance(scale_sd=0.05, warp_mm=1.5, bias=0.1, noise=0.02, site_gain=0.02))
    subject = Subject(np.array([1.0, -1.0, 0.5]), age=70.0, male=True)
    a, ma = sim.synthesize(subject, np.random.default_rng(3))
    b, mb = sim.synthesize(subject, np.random.default_rng(3))
    c, _ = sim.synthesize(subject, np.random.default_rng(4))
    assert np.array_equal(a, b) and ma == mb
    assert not np.array_equal(a, c)
    # the random warp and scaling move the brain's outline, not only its intensities
    assert ((a > 0) != (c > 0)).sum() > 1000
    clean = _simulator(nuisance=Nuisance(scale_sd=0, warp_mm=0, bias=0, noise=0, site_gain=0))
    x, _ = clean.synthesize(subject, np.random.default_rng(3))
    y, _ = clean.synthesize(subject, np.random.default_rng(4))
    assert np.array_equal(x, y), "without nuisance the image depends only on the subject"


def test_one_sided_effect_changes_only_that_side():
    clean = _simulator(nuisance=Nuisance(scale_sd=0, warp_mm=0, bias=0, noise=0, site_gain=0))
    base, _ = clean.synthesize(Subject(np.zeros(3), age=62.0, male=True), np.random.default_rng(0))
    up, _ = clean.synthesize(Subject(np.array([0.0, 0.0, 2.0]), age=62.0, male=True), np.random.default_rng(0))
    changed = np.argwhere(base != up)
    left = clean.atlas.mask("Hippocampus", "left")
    right = clean.atlas.mask("Hippocampus", "right")
    assert changed.size and left[tuple(changed.T)].mean() > 0.9
    assert not (base != up)[right].any()
    # x < 0 in MNI is the left hemisphere: the changed voxels sit there
    mm = clean.affine[:3, :3] @ changed.T + clean.affine[:3, 3:4]
    assert (mm[0] < 0).all()


def test_one_mm_grid_matches_uk_biobank():
    effects, _ = parse_effects([dict(EFFECTS[1], side="both")])
    sim = BrainSimulator(1, effects, Ageing(), Nuisance())
    image, _ = sim.synthesize(Subject(np.zeros(1), 60.0, False), np.random.default_rng(0))
    shape, affine = mni_grid(1)
    assert image.shape == shape == (182, 218, 182)
    assert np.allclose(sim.affine, affine)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(region="Thalmus"), "'Thalmus' is not a Harvard-Oxford region; did you mean thalamus"),
        (dict(region="Brain-Stem", side="left"), "has no left side"),
        (dict(strength=1.5), "strength 1.5 must lie in (0, 1)"),
        (dict(variance_explained=1.2), "variance_explained must lie in (0, 1)"),
        (dict(kind="shape"), "kind must be one of"),
    ],
)
def test_impossible_effects_are_clear_errors(change, message):
    with pytest.raises(ValueError) as err:
        effects, _ = parse_effects([dict(EFFECTS[1], **change)])
        BrainSimulator(2, effects, Ageing(), Nuisance())
    assert message in str(err.value)
