"""The simulated cohort in UK Biobank's layout: bulk T1 folders, per-chromosome BGENs, one .sample, mfi tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.config import validate_config
from vitudip.imaging.ukb import ukb_samples
from vitudip.io.bgen import BgenFile
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.plink import read_bed, read_bim
from vitudip.simulate.cohort import simulate_cohort
from vitudip.simulate.ukb_layout import write_ukb_layout
from vitudip.validate import check_genotype_filesets

N = 20
MULTIPLE = 10
WITHDRAWN = 2
SOFT_SD = 0.05
EFFECTS = [
    dict(name="ventricles_volume", region="Lateral_Ventricle", side="both", kind="volume", strength=0.15,
         variance_explained=0.3, maf=0.3, chromosome=1, known=True),
    dict(name="thalamus_intensity", region="Thalamus", side="both", kind="intensity", strength=0.05,
         variance_explained=0.3, maf=0.3, chromosome=2),
]
MFI_COLUMNS = ["alternate_id", "rsid", "position", "allele1", "allele2", "MAF", "minor_allele", "info"]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """A 20-subject cohort at 2 mm on two 0.5 Mb chromosomes, and its UK Biobank layout."""
    raw = {
        "results": "unused", "seed": 5,
        "inputs": {"samples": "s", "covariates": "c", "genotypes": "g"},
        "simulate": {"enabled": True, "n_subjects": N, "voxel_mm": 2,
                     "genotypes": {"chromosomes": [1, 2], "length_mb": 0.5}, "effects": EFFECTS,
                     "known_decoys": 1},
        "preprocess": {"input_voxel_mm": 2, "pad_to": [96, 112, 96]},
    }
    config = validate_config(raw)
    cohort = tmp_path_factory.mktemp("cohort")
    simulate_cohort(config["simulate"], cohort, seed=config["seed"], threads=2)
    paths = write_ukb_layout(cohort, tmp_path_factory.mktemp("ukb") / "layout", genotyped_multiple=MULTIPLE,
                             withdrawn=WITHDRAWN, soft_sd=SOFT_SD, seed=3)
    return cohort, paths


def _eids(paths: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(paths["eids"], sep="\t", dtype=str)


def _sample_ids(paths: dict[str, Path]) -> pd.DataFrame:
    """The .sample's rows after its two header lines."""
    return pd.read_csv(paths["sample"], sep=" ", skiprows=[1], dtype=str)


def _bgen(paths: dict[str, Path], chrom: str) -> BgenFile:
    return BgenFile(str(paths["bgen"]).format(chromosome=chrom))


def _original_records(bgen: BgenFile, bim: pd.DataFrame) -> np.ndarray:
    """The BGEN record of each simulated variant of ``bim`` (matched on position and both alleles)."""
    key = bgen.variants["pos"].astype(str) + bgen.variants["ref"] + bgen.variants["alt"]
    records = pd.Index(key).get_indexer(bim["pos"].astype(str) + bim["ref"] + bim["alt"])
    assert (records >= 0).all()
    return records


def test_every_chromosome_has_a_ukb_bgen_of_all_genotyped_participants(layout):
    cohort, paths = layout
    bim = read_bim(cohort / "geno")
    samples = _sample_ids(paths)
    n = MULTIPLE * N + WITHDRAWN
    assert paths["sample"].name == f"ukb12345_imp_chr1_v3_s{n}.sample"
    assert list(samples.columns) == ["ID_1", "ID_2", "missing", "sex"]
    assert len(samples) == n and (samples["ID_1"] == samples["ID_2"]).all()
    negative = samples["ID_1"][samples["ID_1"].str.startswith("-")]
    assert sorted(negative) == ["-1", "-2"]
    assert samples["ID_1"].str.fullmatch(r"-\d|\d{7}").all() and samples["ID_1"].is_unique
    assert set(samples["sex"]) == {"1", "2"}
    for chrom in bim["chrom"].unique():
        path = Path(str(paths["bgen"]).format(chromosome=chrom))
        assert path.name == f"ukb22828_c{chrom}_b0_v3.bgen" and Path(f"{path}.bgi").is_file()
        with _bgen(paths, chrom) as bgen:
            assert bgen.header.n_samples == n and bgen.header.sample_ids is None
            assert set(bgen.variants["chrom"]) == {chrom.zfill(2)}
            assert len(bgen.variants) > (bim["chrom"] == chrom).sum()


def test_the_input_checks_pass_the_layout_s_bgens(layout):
    # split multi-allelic sites sharing an rsID and IDs without one are made unique by prepare_genotypes: no
    # variant ID is refused, and every chromosome's BGEN fits the one .sample
    _, paths = layout
    genotypes = GenotypeInput(str(paths["bgen"])[: -len(".bgen")], str(paths["sample"]))
    assert check_genotype_filesets(genotypes, ["1", "2"]) == 2


def test_imaged_subjects_carry_their_softened_hard_calls(layout):
    cohort, paths = layout
    bim = read_bim(cohort / "geno")
    rows = pd.Index(_sample_ids(paths)["ID_1"]).get_indexer(_eids(paths)["eid"])
    assert (rows >= 0).all()
    hard_all = read_bed(cohort / "geno").astype(float)
    others = np.setdiff1d(np.arange(MULTIPLE * N + WITHDRAWN), rows)
    for chrom in bim["chrom"].unique():
        on = (bim["chrom"] == chrom).to_numpy()
        hard = hard_all[:, on]
        with _bgen(paths, chrom) as bgen:
            records = _original_records(bgen, bim[on])
            dosage = bgen.read_dosages(records, rows)
            rest = bgen.read_dosages(records, others)
        gap = np.abs(dosage - hard)
        # at most a shift of 6 sd plus the 8-bit rounding; mostly within 0.1 of the call
        assert gap.max() <= 6 * SOFT_SD + 1 / 255
        assert (np.round(dosage) == hard).mean() >= 0.95
        assert (gap <= 0.1).mean() >= 0.95
        softened = (gap > 1.5 / 255).mean()
        assert 0.2 < softened < 0.4, softened
        # the other participants: drawn in HWE at each variant's frequency among the imaged
        assert np.corrcoef(hard.mean(0), rest.mean(0))[0, 1] > 0.9
        assert rest.shape[0] == (MULTIPLE - 1) * N + WITHDRAWN


def test_split_multiallelic_sites_and_a_variant_without_rsid(layout):
    cohort, paths = layout
    bim = read_bim(cohort / "geno")
    causal = pd.read_csv(cohort / "truth" / "loci.tsv", sep="\t")
    for chrom in bim["chrom"].unique():
        with _bgen(paths, chrom) as bgen:
            v = bgen.variants
            twin = np.flatnonzero(v["id"].duplicated(keep="first").to_numpy())
            assert twin.size >= 1
            first = twin - 1
            assert (v["id"].to_numpy()[first] == v["id"].to_numpy()[twin]).all()
            assert (v["pos"].to_numpy()[first] == v["pos"].to_numpy()[twin]).all()
            assert (v["ref"].to_numpy()[first] == v["ref"].to_numpy()[twin]).all()
            assert (v["alt"].to_numpy()[first] != v["alt"].to_numpy()[twin]).all()
            rare = bgen.read_dosages(twin)
            carriers = (rare > 0.5).sum(0)
            assert (carriers >= 1).all() and (carriers <= 0.05 * rare.shape[0]).all()
            unnamed = v["id"][v["id"].str.fullmatch(rf"{chrom}:\d+_[ACGT]+_[ACGT]+")]
            assert len(unnamed) == 1
            row = v.loc[unnamed.index[0]]
            assert unnamed.iloc[0] == f"{chrom}:{row['pos']}_{row['ref']}_{row['alt']}"
            for locus in causal[causal["chromosome"] == int(chrom)].itertuples():
                hit = v[v["id"] == locus.variant_id]
                assert len(hit) == 1
                assert (hit["ref"].iloc[0], hit["alt"].iloc[0]) == (locus.other_allele, locus.effect_allele)


def test_mfi_tables_list_every_bgen_record(layout):
    cohort, paths = layout
    causal = set(pd.read_csv(cohort / "truth" / "loci.tsv", sep="\t")["variant_id"])
    for chrom in read_bim(cohort / "geno")["chrom"].unique():
        mfi = pd.read_csv(str(paths["mfi"]).format(chromosome=chrom), sep=" ", header=None, names=MFI_COLUMNS,
                          dtype={"rsid": str, "alternate_id": str})
        with _bgen(paths, chrom) as bgen:
            v = bgen.variants
            freq = bgen.read_dosages(np.arange(len(v))).mean(0) / 2
        assert len(mfi) == len(v)
        assert (mfi["rsid"] == v["id"]).all() and (mfi["position"] == v["pos"]).all()
        assert (mfi["allele1"] == v["ref"]).all() and (mfi["allele2"] == v["alt"]).all()
        assert (mfi["alternate_id"] == chrom + ":" + v["pos"].astype(str) + "_" + v["ref"] + "_" + v["alt"]).all()
        assert np.allclose(mfi["MAF"], np.minimum(freq, 1 - freq), atol=1e-3)
        assert (mfi["minor_allele"] == np.where(freq <= 0.5, v["alt"], v["ref"])).all()
        assert set(mfi["info"]) == {0.95, 0.2}
        assert 0 < (mfi["info"] < 0.3).mean() < 0.06
        assert (mfi.loc[mfi["rsid"].isin(causal), "info"] == 0.95).all()


def test_bulk_folders_are_found_by_ukb_samples(layout, caplog):
    cohort, paths = layout
    eids = _eids(paths)
    found = ukb_samples(paths["bulk"])
    assert sorted(found["subject_id"]) == sorted(eids["eid"]) and len(found) == N
    assert "has no" in caplog.text
    assert len(os.listdir(paths["bulk"])) == N + 2
    simulated = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str)
    image_of = dict(zip(simulated["subject_id"], simulated["path"]))
    subject_of = dict(zip(eids["eid"], eids["subject_id"]))
    for row in found.itertuples():
        assert Path(row.path).name == "T1_unbiased_brain_linear.nii.gz"
        assert Path(row.path).resolve() == (cohort / image_of[subject_of[row.subject_id]]).resolve()


def test_covariates_are_in_showcase_coding(layout):
    cohort, paths = layout
    simulated = pd.read_csv(cohort / "covariates.tsv", sep="\t", dtype={"IID": str})
    ukb = pd.read_csv(paths["covariates"], sep="\t", dtype={"FID": str, "IID": str})
    eid_of = dict(zip(*_eids(paths).to_numpy().T))
    assert list(ukb.columns) == ["FID", "IID", "age", "sex", "centre"]
    assert list(ukb["IID"]) == list(ukb["FID"]) == [eid_of[s] for s in simulated["IID"]]
    assert ukb["IID"].str.fullmatch(r"\d{7}").all() and not set(ukb["IID"]) & set(simulated["IID"])
    assert list(ukb["sex"]) == list(simulated["sex"]) and set(ukb["sex"]) <= {0, 1}
    expected = simulated["centre"].str.removeprefix("centre").astype(int) + 11024
    assert list(ukb["centre"]) == list(expected) and set(ukb["centre"]) <= {11025, 11026, 11027}
    assert np.allclose(ukb["age"], simulated["age"])
    # the .sample's sex is PLINK's coding of the same
    samples = _sample_ids(paths).set_index("ID_1")
    assert list(samples.loc[ukb["IID"], "sex"].astype(int)) == list(np.where(ukb["sex"] == 1, 1, 2))
    assert (paths["truth"] / "loci.tsv").read_text() == (cohort / "truth" / "loci.tsv").read_text()
    assert paths["known_loci"].read_text() == (cohort / "known_loci.tsv").read_text()
    assert paths["genes"].is_file()
    measures = pd.read_csv(paths["truth"] / "measures.tsv", sep="\t", dtype={"subject_id": str})
    assert sorted(measures["subject_id"]) == sorted(ukb["IID"])


def test_refuses_to_replace_the_cohort(tmp_path):
    with pytest.raises(ValueError, match="would replace the cohort"):
        write_ukb_layout(tmp_path / "cohort", tmp_path)
