"""The torch engine on dosages read in process (PGEN with pgenlib, BGEN 1.2 with vitudip.io.bgen) against plink2."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.genetics.dosages import open_genotypes
from vitudip.genetics.linear import linear_association, linear_gwas
from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.sumstats import read_sumstats
from vitudip.io.plink import write_bed

pgenlib = pytest.importorskip("pgenlib")
needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N_SAMPLES = 300
N_VARIANTS = 200
PHENOTYPES = ["udip_000", "udip_001", "udip_002"]
#: the phenotype with missing values (its own missingness group)
GAPPY = "udip_002"
#: variants with a few missing dosages
WITH_MISSING = np.arange(10, 200, 20)
#: samples of the genotype files absent from the tables (the engines use the intersection)
EXTRA_SAMPLES = 5


@dataclass
class Cohort:
    folder: Path
    dosages: np.ndarray  # (samples, variants) as stored (PGEN's 1/16384 grid), NaN = missing
    variants: pd.DataFrame
    ids: list[str]
    pheno: Path
    covar: Path


def _write_pgen(prefix: Path, dosages: np.ndarray, variants: pd.DataFrame, ids: list[str], hard_calls: bool) -> None:
    """A .pgen with pgenlib (dosages, or hard calls), with its .pvar and .psam."""
    n, m = dosages.shape
    with pgenlib.PgenWriter(bytes(f"{prefix}.pgen", "utf-8"), n, m, False, dosage_present=not hard_calls) as writer:
        if hard_calls:
            writer.append_biallelic_batch(np.where(np.isnan(dosages), -9, dosages).T.astype(np.int8).copy())
        else:
            writer.append_dosages_batch(np.where(np.isnan(dosages), -9, dosages).T.astype(np.float32).copy())
    pvar = variants.rename(columns={"chrom": "#CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})
    pvar[["#CHROM", "POS", "ID", "REF", "ALT"]].to_csv(f"{prefix}.pvar", sep="\t", index=False)
    pd.DataFrame({"#FID": ids, "IID": ids, "SEX": "NA"}).to_csv(f"{prefix}.psam", sep="\t", index=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """Non-integer dosages (a hard call plus noise, clipped to [0, 2]) on two chromosomes, a few missing."""
    folder = tmp_path_factory.mktemp("dosages")
    rng = np.random.default_rng(7)
    n = N_SAMPLES + EXTRA_SAMPLES
    frequency = rng.uniform(0.05, 0.5, N_VARIANTS)
    frequency[3:6] = 0.4  # the causal variants, common enough to be found
    calls = rng.binomial(2, frequency, size=(n, N_VARIANTS)).astype(np.float64)
    # on the PGEN grid (1/16384), so what is written is exactly what every reader gives back
    dosages = np.round(np.clip(calls + rng.normal(0, 0.3, calls.shape), 0, 2) * 16384) / 16384
    for variant in WITH_MISSING:
        dosages[rng.choice(n, 3, replace=False), variant] = np.nan
    half = N_VARIANTS // 2
    variants = pd.DataFrame({
        "chrom": ["1"] * half + ["2"] * half, "pos": np.r_[np.arange(half), np.arange(half)] * 1000 + 5000,
        "id": [f"rs{i}" for i in range(N_VARIANTS)], "ref": rng.choice(list("AC"), N_VARIANTS),
        "alt": rng.choice(list("GT"), N_VARIANTS),
    })
    ids = [f"x{i}" for i in range(EXTRA_SAMPLES)] + [f"s{i:03d}" for i in range(N_SAMPLES)]
    analysed = ids[EXTRA_SAMPLES:]
    covar = pd.DataFrame({"FID": analysed, "IID": analysed, "age": rng.uniform(40, 80, N_SAMPLES),
                          "sex": rng.integers(0, 2, N_SAMPLES)})
    pheno = pd.DataFrame({"FID": analysed, "IID": analysed})
    genetic = np.nan_to_num(dosages[EXTRA_SAMPLES:], nan=1.0)
    for j, name in enumerate(PHENOTYPES):
        pheno[name] = 0.5 * genetic[:, 3 + j] + 0.01 * covar["age"] + rng.normal(size=N_SAMPLES)
    pheno.loc[rng.random(N_SAMPLES) < 0.1, GAPPY] = np.nan
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="NA")
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    _write_pgen(folder / "dosage", dosages, variants, ids, hard_calls=False)
    _write_pgen(folder / "hard", np.round(dosages), variants, ids, hard_calls=True)
    calls = np.round(dosages)
    write_bed(folder / "hard_bed", np.where(np.isnan(calls), -1, calls).astype(np.int8), variants, ids)
    if shutil.which("plink2"):
        subprocess.run(["plink2", "--pfile", str(folder / "dosage"), "--export", "bgen-1.2", "bits=16", "ref-first",
                        "--out", str(folder / "bgen")], check=True, capture_output=True)
    return Cohort(folder, dosages, variants, ids, folder / "pheno.tsv", folder / "covar.tsv")


def _read_dir(paths: list[Path]) -> dict[str, pd.DataFrame]:
    return {path.name.removesuffix(".tsv.gz"): read_sumstats(path) for path in paths}


def _torch(cohort: Cohort, prefix: str, out: str, **kwargs: object) -> dict[str, pd.DataFrame]:
    return _read_dir(linear_gwas(cohort.folder / prefix, cohort.pheno, cohort.covar, cohort.folder / out,
                                 block_size=64, device="cpu", progress=False, **kwargs))


def _plink2(cohort: Cohort, prefix: str, out: str) -> dict[str, pd.DataFrame]:
    return _read_dir(plink2_gwas(cohort.folder / prefix, cohort.pheno, cohort.covar, cohort.folder / out))


# --------------------------------------------------------------------------- the readers


@pytest.mark.parametrize("prefix", ["dosage", "hard", "hard_bed", pytest.param("bgen", marks=needs_plink2)])
def test_blocks_hold_the_written_dosages(cohort: Cohort, prefix: str) -> None:
    expected = np.round(cohort.dosages) if prefix.startswith("hard") else cohort.dosages
    variants, rows = np.array([151, 10, 3, 199]), np.array([7, 0, 300, 2])
    with open_genotypes(cohort.folder / prefix) as reader:
        assert reader.samples["IID"].tolist() == cohort.ids
        pd.testing.assert_frame_equal(reader.variants, cohort.variants[["chrom", "id", "pos", "ref", "alt"]])
        block = reader.read_block(variants, rows)
        whole = reader.read_block(variants)
        # a second subset after the first (pgenlib keeps the last one)
        assert reader.read_block(variants, rows[:2]).shape == (2, 4)
    assert block.dtype == np.float32 and block.shape == (4, 4)
    # BGEN: 16-bit probabilities, so within 1/65535 of the stored dosage
    tolerance = 2e-5 if prefix == "bgen" else 0
    np.testing.assert_allclose(block, expected[np.ix_(rows, variants)], atol=tolerance)
    np.testing.assert_allclose(whole, expected[:, variants], atol=tolerance)
    assert np.isnan(whole).sum() == 3  # variant 10 has three missing dosages


def test_reader_refuses_an_index_past_the_end(cohort: Cohort) -> None:
    with open_genotypes(cohort.folder / "dosage") as reader:
        with pytest.raises(IndexError, match=r"out of range for the 200 variants of .*dosage\.pvar"):
            reader.read_block(np.array([N_VARIANTS]))
        with pytest.raises(IndexError, match=r"sample row out of range .*dosage\.psam"):
            reader.read_block(np.array([0]), np.array([N_SAMPLES + EXTRA_SAMPLES]))


# --------------------------------------------------------------------------- against plink2 --glm


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    """The variants without a missing dosage (plink2 drops such samples per variant, the torch engine imputes)."""
    return frame.loc[~frame["variant_id"].isin([f"rs{i}" for i in WITH_MISSING])].reset_index(drop=True)


@needs_plink2
@pytest.mark.parametrize(("prefix", "tolerance"), [("dosage", 1e-5), ("hard", 1e-5), ("bgen", 1e-4)])
def test_torch_engine_matches_plink2_on_dosages(cohort: Cohort, prefix: str, tolerance: float) -> None:
    """plink2 keeps dosages on a 1/16384 grid: exact for the PGEN written on it (six digits, as both files
    print), rounded from a BGEN's 16-bit probabilities, which the torch engine reads as they are: there beta
    differs by up to ~1e-5 standard errors, which is relative 1e-2 for a beta near 0 (relative 1e-4 holds
    for |t| > 2)."""
    ours, theirs = _torch(cohort, prefix, f"torch_{prefix}"), _plink2(cohort, prefix, f"plink2_{prefix}")
    assert sorted(ours) == sorted(theirs) == PHENOTYPES
    for name in PHENOTYPES:
        a, b = _complete(ours[name]), _complete(theirs[name])
        assert len(a) == N_VARIANTS - WITH_MISSING.size
        for column in ("variant_id", "effect_allele", "other_allele", "n"):
            pd.testing.assert_series_equal(a[column], b[column])
        relative_beta = np.abs(a["beta"] - b["beta"]) / np.abs(b["beta"])
        beta_in_se = np.abs(a["beta"] - b["beta"]) / b["standard_error"]
        log_p = np.abs(np.log10(a["p_value"]) - np.log10(b["p_value"]))
        print(f"{prefix} {name}: max relative |Δbeta| {relative_beta.max():.2g}, max |Δbeta|/se "
              f"{beta_in_se.max():.2g}, max |Δ-log10 p| {log_p.max():.2g}")
        associated = (np.abs(b["beta"]) > 2 * b["standard_error"]).to_numpy()
        assert relative_beta[associated].max() <= tolerance
        if prefix != "bgen":
            assert relative_beta.max() <= tolerance
        assert beta_in_se.max() <= tolerance
        assert log_p.max() <= tolerance
        np.testing.assert_allclose(a["effect_allele_frequency"], b["effect_allele_frequency"], atol=2e-6)
    # the planted effect of variant 3 on udip_000 is found, on ALT
    assert ours["udip_000"]["p_value"].iloc[3] < 1e-6 and ours["udip_000"]["beta"].iloc[3] > 0


@needs_plink2
def test_bgen_tests_the_same_allele_as_the_pgen(cohort: Cohort) -> None:
    """BGEN is read REF-first, as plink2 is told to read it: the same effect allele and sign as the PGEN."""
    pgen, bgen = _torch(cohort, "dosage", "torch_allele_pgen"), _torch(cohort, "bgen", "torch_allele_bgen")
    for name in PHENOTYPES:
        pd.testing.assert_series_equal(bgen[name]["effect_allele"], pgen[name]["effect_allele"])
        np.testing.assert_allclose(bgen[name]["beta"], pgen[name]["beta"], rtol=1e-3, atol=1e-5)


def test_hard_call_pgen_gives_the_bed_results(cohort: Cohort) -> None:
    pgen, bed = _torch(cohort, "hard", "torch_hard"), _torch(cohort, "hard_bed", "torch_hard_bed")
    for name in PHENOTYPES:
        pd.testing.assert_frame_equal(pgen[name], bed[name])


def test_missing_dosages_are_mean_imputed_within_each_phenotypes_samples(cohort: Cohort) -> None:
    ours = _torch(cohort, "dosage", "torch_missing", chromosomes=[1])
    pheno = pd.read_csv(cohort.pheno, sep="\t")
    covar = pd.read_csv(cohort.covar, sep="\t")[["age", "sex"]].to_numpy()
    variant = int(WITH_MISSING[0])
    for name in PHENOTYPES:
        keep = pheno[name].notna().to_numpy()
        dosage = cohort.dosages[EXTRA_SAMPLES:, variant][keep]
        assert np.isnan(dosage).any()
        imputed = np.where(np.isnan(dosage), np.nanmean(dosage), dosage)
        direct = linear_association(imputed[:, None], pheno[name].to_numpy()[keep], covar[keep])
        row = ours[name].iloc[variant]
        assert row["n"] == keep.sum()  # no sample dropped
        np.testing.assert_allclose(row["beta"], direct.beta[0, 0], rtol=1e-5)
        np.testing.assert_allclose(row["p_value"], direct.p_value[0, 0], rtol=1e-5)
        np.testing.assert_allclose(row["effect_allele_frequency"], np.nanmean(dosage) / 2, rtol=1e-5)


# --------------------------------------------------------------------------- bad inputs


@needs_plink2
def test_bgen_without_its_sample_file_is_named(cohort: Cohort, tmp_path: Path) -> None:
    shutil.copy(cohort.folder / "bgen.bgen", tmp_path / "lonely.bgen")
    with pytest.raises(FileNotFoundError, match=r"not found: .*lonely\.sample; .*lonely\.bgen needs its Oxford "
                                                r"\.sample file: at .*lonely\.sample, or named by inputs\."):
        linear_gwas(tmp_path / "lonely", cohort.pheno, cohort.covar, tmp_path / "out")


@needs_plink2
def test_bgen_sample_file_of_another_size_is_refused(cohort: Cohort, tmp_path: Path) -> None:
    shutil.copy(cohort.folder / "bgen.bgen", tmp_path / "g.bgen")
    lines = (cohort.folder / "bgen.sample").read_text().splitlines()
    (tmp_path / "g.sample").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"g\.bgen holds 305 samples but .*g\.sample lists 304"):
        open_genotypes(tmp_path / "g")


@needs_plink2
@pytest.mark.parametrize("prefix", ["dosage", "bgen"])
def test_sample_ids_matching_no_table_give_the_overlap_error(cohort: Cohort, prefix: str, tmp_path: Path) -> None:
    pheno = pd.read_csv(cohort.pheno, sep="\t", dtype=str)
    pheno[["FID", "IID"]] = "other_" + pheno[["FID", "IID"]]
    pheno.to_csv(tmp_path / "pheno.tsv", sep="\t", index=False)
    sample_file = {"dosage": r"dosage\.psam", "bgen": r"bgen\.sample"}[prefix]
    with pytest.raises(ValueError, match=rf"no sample is in all of .*pheno\.tsv, .*covar\.tsv and .*{sample_file}"):
        linear_gwas(cohort.folder / prefix, tmp_path / "pheno.tsv", cohort.covar, tmp_path / "out")


def test_multiallelic_pvar_is_refused_naming_the_variant(cohort: Cohort, tmp_path: Path) -> None:
    for ext in (".pgen", ".psam"):
        shutil.copy(cohort.folder / f"dosage{ext}", tmp_path / f"m{ext}")
    pvar = (cohort.folder / "dosage.pvar").read_text().splitlines()
    fields = pvar[6].split("\t")
    pvar[6] = "\t".join([*fields[:4], fields[4] + ",A"])
    (tmp_path / "m.pvar").write_text("\n".join(pvar) + "\n")
    with pytest.raises(ValueError, match=r"m\.pvar: variant 'rs5' \(1:10000\) has several ALT alleles"):
        open_genotypes(tmp_path / "m")
