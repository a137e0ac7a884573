"""Chromosome X: the torch engine against plink2 --glm's defaults (male coding, sex covariate, PAR), hard calls and
PGEN dosages; chromosome names as files spell them."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.genetics.dosages import open_genotypes
from vitudip.genetics.gwas_inputs import load_gwas_inputs, select_variants, sex_covariate_on_x
from vitudip.genetics.linear import linear_gwas
from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.sumstats import read_sumstats
from vitudip.io.plink import read_bim, write_bed

pgenlib = pytest.importorskip("pgenlib")
needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N_SAMPLES = 900
#: samples whose sex the .fam/.psam does not know (plink2 leaves them out on X when it adds sex)
N_UNKNOWN_SEX = 25
PHENOTYPES = ["udip_000", "udip_001"]
#: variants per chromosome: an autosome, non-PAR X and the pseudo-autosomal region
LAYOUT = {"1": 20, "X": 40, "XY": 10}
#: the planted X variant (its index in the fileset) and its effect on udip_000 per ALT allele (in males: per 0..2)
CAUSAL_X, EFFECT = 25, 0.35


@dataclass
class XCohort:
    folder: Path
    sex: np.ndarray
    dosages: np.ndarray
    variants: pd.DataFrame
    ids: list[str]
    pheno: Path


def _genotypes(rng: np.random.Generator, sex: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Hard calls: diploid on chromosome 1 and XY; on X females diploid, males hemizygous (0 or 2), a few male
    heterozygous calls (errors plink2 keeps as 1) and no missing call (plink2 drops those per variant, the torch
    engine imputes them, so they would not compare)."""
    blocks, rows = [], []
    for chrom, count in LAYOUT.items():
        frequency = rng.uniform(0.1, 0.5, count)
        calls = rng.binomial(2, frequency, (sex.size, count))
        if chrom == "X":
            male = sex == 1
            calls[male] = 2 * (rng.random((int(male.sum()), count)) < frequency)
            calls[np.flatnonzero(male)[:3], :3] = 1
        blocks.append(calls)
        start = {"1": 1_000_000, "X": 3_000_000, "XY": 100_000}[chrom]
        rows += [{"chrom": chrom, "pos": start + 1000 * i, "ref": "A", "alt": "G"} for i in range(count)]
    variants = pd.DataFrame(rows)
    variants["id"] = [f"{r.chrom}:{r.pos}:A:G" for r in variants.itertuples()]
    return np.concatenate(blocks, axis=1).astype(np.int8), variants


def _write_pgen(prefix: Path, dosages: np.ndarray, variants: pd.DataFrame, ids: list[str], sex: np.ndarray) -> None:
    n, m = dosages.shape
    with pgenlib.PgenWriter(bytes(f"{prefix}.pgen", "utf-8"), n, m, False, dosage_present=True) as writer:
        writer.append_dosages_batch(dosages.T.astype(np.float32).copy())
    pvar = variants.rename(columns={"chrom": "#CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})
    pvar[["#CHROM", "POS", "ID", "REF", "ALT"]].to_csv(f"{prefix}.pvar", sep="\t", index=False)
    pd.DataFrame({"#FID": ids, "IID": ids, "SEX": np.where(sex == 0, "NA", sex.astype(str))}).to_csv(
        f"{prefix}.psam", sep="\t", index=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> XCohort:
    folder = tmp_path_factory.mktemp("chrx")
    rng = np.random.default_rng(23)
    sex = rng.choice([1, 2], N_SAMPLES)
    sex[rng.choice(N_SAMPLES, N_UNKNOWN_SEX, replace=False)] = 0
    calls, variants = _genotypes(rng, sex)
    ids = [f"s{i}" for i in range(N_SAMPLES)]
    # the .bim spells X and XY as plink's numbers, the .pvar as names with a chr prefix
    write_bed(folder / "hard", calls, variants.assign(chrom=variants["chrom"].map({"1": "1", "X": "23", "XY": "25"})),
              ids, sex=sex)
    # dosages: the hard calls moved off the integers, on the PGEN's 1/16384 grid
    dosages = np.clip(calls + rng.normal(0, 0.15, calls.shape), 0, 2)
    dosages = np.round(dosages * 16384) / 16384
    _write_pgen(folder / "dosage", dosages, variants.assign(chrom="chr" + variants["chrom"]), ids, sex)
    if shutil.which("plink2"):
        # plink2 writes males' non-PAR X as haploid calls (ploidy 1, P(ALT) = dosage / 2), as UK Biobank's
        # imputed BGEN holds them
        subprocess.run(["plink2", "--pfile", str(folder / "dosage"), "--export", "bgen-1.2", "ref-first",
                        "--out", str(folder / "bgen")], check=True, capture_output=True)
    age = rng.uniform(45, 80, N_SAMPLES)
    pheno = pd.DataFrame({"FID": ids, "IID": ids})
    # a sex difference in the phenotype: left out of the model, it would bias the X test
    nuisance = 0.02 * age + 0.5 * (sex == 2)
    pheno["udip_000"] = EFFECT * calls[:, CAUSAL_X] + nuisance + rng.normal(size=N_SAMPLES)
    pheno["udip_001"] = nuisance + rng.normal(size=N_SAMPLES)
    pheno.loc[rng.random(N_SAMPLES) < 0.05, "udip_001"] = np.nan
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="NA")
    covariates = pd.DataFrame({"FID": ids, "IID": ids, "age": age, "pc1": rng.normal(size=N_SAMPLES)})
    covariates.to_csv(folder / "covar.tsv", sep="\t", index=False)
    # the same with sex as a covariate of its own (coded 0/1, unknown as 0.5: it is a linear function of the
    # .fam sex over the samples of known sex, which is what plink2's VIF check sees)
    covariates.assign(female=np.where(sex == 0, 0.5, (sex == 2).astype(float))).to_csv(
        folder / "covar_sex.tsv", sep="\t", index=False)
    return XCohort(folder, sex, dosages, variants, ids, folder / "pheno.tsv")


def _both(cohort: XCohort, prefix: str, covar: str) -> tuple[dict, dict]:
    folder = cohort.folder
    args = (folder / prefix, cohort.pheno, folder / covar)
    ours = linear_gwas(*args, folder / f"torch_{prefix}_{covar}", device="cpu", block_size=16, progress=False)
    theirs = plink2_gwas(*args, folder / f"plink2_{prefix}_{covar}")
    return ({p.name: read_sumstats(p) for p in ours}, {p.name: read_sumstats(p) for p in theirs})


@needs_plink2
@pytest.mark.parametrize("prefix", ["hard", "dosage", "bgen"])
@pytest.mark.parametrize("covar", ["covar.tsv", "covar_sex.tsv"])
def test_torch_engine_matches_plink2_on_x(cohort: XCohort, prefix: str, covar: str) -> None:
    """Both files print six significant digits, so beta and p agree to about two roundings (relative 1e-5); the
    PGEN's dosages lie on plink2's 1/16384 grid, so it reads the same numbers as the torch engine. The BGEN's
    16-bit probabilities are rounded to that grid by plink2 and not by the torch engine (relative 1e-3)."""
    if prefix == "bgen":
        male_x = (cohort.sex == 1)[:, None] & (cohort.variants["chrom"] == "X").to_numpy()[None, :]
        with open_genotypes(cohort.folder / "bgen") as reader:
            read = reader.read_block(np.arange(len(cohort.variants)))
        # the haploid calls are read as plink2 imports them, 0..2
        np.testing.assert_allclose(read[male_x], cohort.dosages[male_x], atol=1e-4)
        assert read[male_x].max() > 1.9
    tolerance = 1e-3 if prefix == "bgen" else 1e-5
    ours, theirs = _both(cohort, prefix, covar)
    sex_added = covar == "covar.tsv"
    on_x = (cohort.variants["chrom"] == "X").to_numpy()
    for name in ours:
        a, b = ours[name], theirs[name]
        for column in ("chromosome", "base_pair_location", "variant_id", "effect_allele", "n"):
            pd.testing.assert_series_equal(a[column], b[column])
        relative_beta = np.abs(a["beta"] - b["beta"]) / np.abs(b["beta"])
        log_p = np.abs(np.log10(a["p_value"]) - np.log10(b["p_value"]))
        print(f"{prefix} {covar} {name}: max relative |Δbeta| {relative_beta.max():.2g}, "
              f"max |Δ-log10 p| {log_p.max():.2g}")
        assert relative_beta.max() <= tolerance
        assert log_p.max() <= tolerance
        np.testing.assert_allclose(a["effect_allele_frequency"], b["effect_allele_frequency"], atol=2e-6)
        # X is written as 23, and so is the pseudo-autosomal region
        assert a["chromosome"].tolist() == [1] * LAYOUT["1"] + [23] * (LAYOUT["X"] + LAYOUT["XY"])
        # samples of unknown sex leave X's regressions exactly when sex is added there; never elsewhere
        n = a["n"].to_numpy()
        assert len(set(n[on_x])) == 1 and len(set(n[~on_x])) == 1
        assert (n[on_x][0] < n[~on_x][0]) == sex_added
        if name == "udip_000.tsv.gz":  # complete: every sample of unknown sex leaves
            assert n[on_x][0] == n[~on_x][0] - N_UNKNOWN_SEX * sex_added
    causal = ours["udip_000.tsv.gz"].iloc[CAUSAL_X]
    assert causal["p_value"] < 1e-8 and abs(causal["beta"] - EFFECT) < 0.1


def test_sex_covariate_on_x_follows_plink2(cohort: XCohort, tmp_path: Path) -> None:
    """plink2 adds sex when both sexes are known, not when the covariates hold it or only one sex is there."""
    folder = cohort.folder
    assert sex_covariate_on_x(load_gwas_inputs(folder / "hard", cohort.pheno, folder / "covar.tsv"))
    assert not sex_covariate_on_x(load_gwas_inputs(folder / "hard", cohort.pheno, folder / "covar_sex.tsv"))
    for ext in ("bed", "bim"):
        shutil.copy(folder / f"hard.{ext}", tmp_path / f"women.{ext}")
    fam = pd.read_csv(folder / "hard.fam", sep="\t", header=None)
    fam[4] = np.where(fam[4] == 1, 2, fam[4])
    fam.to_csv(tmp_path / "women.fam", sep="\t", header=False, index=False)
    assert not sex_covariate_on_x(load_gwas_inputs(tmp_path / "women", cohort.pheno, folder / "covar.tsv"))


def test_chromosome_names_are_read_as_plink2_reads_them(cohort: XCohort, tmp_path: Path) -> None:
    """23, chrX and X are one chromosome; XY is not X (plink2 --chr X leaves it out)."""
    bim = read_bim(cohort.folder / "hard")
    assert bim["chrom"].drop_duplicates().tolist() == ["1", "X", "XY"]
    for wanted in (["X"], ["23"], ["chrX"]):
        assert select_variants(bim, wanted, "hard.bim").size == LAYOUT["X"]
    assert select_variants(bim, ["25"], "hard.bim").size == LAYOUT["XY"]


def test_unreadable_chromosome_code_names_file_and_line(cohort: XCohort, tmp_path: Path) -> None:
    lines = (cohort.folder / "hard.bim").read_text().splitlines()
    lines[4] = "chrUn_gl000220\t" + lines[4].split("\t", 1)[1]
    (tmp_path / "odd.bim").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"odd\.bim line 5: chromosome 'chrUn_gl000220' is not a code plink2 reads"):
        read_bim(tmp_path / "odd")


def test_torch_engine_refuses_y_and_mt(cohort: XCohort, tmp_path: Path) -> None:
    for ext in ("bed", "fam"):
        shutil.copy(cohort.folder / f"hard.{ext}", tmp_path / f"mt.{ext}")
    bim = pd.read_csv(cohort.folder / "hard.bim", sep="\t", header=None, dtype=str)
    bim.loc[:5, 0] = "MT"
    bim.to_csv(tmp_path / "mt.bim", sep="\t", header=False, index=False)
    with pytest.raises(ValueError, match="Y or MT"):
        linear_gwas(tmp_path / "mt", cohort.pheno, cohort.folder / "covar.tsv", tmp_path / "out", device="cpu",
                    progress=False)
