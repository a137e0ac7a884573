"""GWAS engines: the torch engine against plink2 and direct least squares, allele orientation, sharding, bad inputs."""

from __future__ import annotations

import gzip
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from vitudip.external_tools import ToolError, run_tool
from vitudip.genetics.linear import _ieee_float32_matmul, linear_association, linear_gwas
from vitudip.genetics.plink2 import glm_to_sumstats, plink2_gwas
from vitudip.genetics.pvalue_sketch import CHI2_STEP, LOG_STEP, PValueSketch
from vitudip.genetics.sumstats import (
    CHI2_1DF_MEDIAN,
    SMALLEST_P,
    SUMSTATS_COLUMNS,
    genomic_inflation,
    read_sumstats,
    read_sumstats_chunks,
    write_sumstats,
)
from vitudip.io.plink import read_bed, write_bed
from vitudip.simulate.genotypes import ld_r2, simulate_genotypes

needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N_SAMPLES = 600
PHENOTYPES = [f"udip_{i:03d}" for i in range(6)]
MISSING_PHENOTYPE = "udip_005"
NULL_PHENOTYPE = "udip_003"
#: phenotype -> ALT-allele effects (in phenotype SD units) of the two causal SNPs.
CAUSAL_EFFECTS = {
    "udip_000": (0.5, 0.0),
    "udip_001": (0.0, -0.5),
    "udip_002": (0.4, 0.4),
    "udip_003": (0.0, 0.0),
    "udip_004": (0.0, 0.0),
    "udip_005": (0.5, 0.0),
}


@dataclass
class Dataset:
    folder: Path
    prefix: Path
    pheno: Path
    covar: Path
    dosages: np.ndarray
    variants: pd.DataFrame
    causal: tuple[int, int]  # variant indices, one per chromosome


def _causal_variants(variants: pd.DataFrame) -> tuple[int, int]:
    """One common variant per chromosome, in the middle of it."""
    chosen = []
    for chrom in (1, 2):
        candidates = np.flatnonzero((variants["chrom"] == chrom).to_numpy() & (variants["maf"] > 0.25).to_numpy())
        chosen.append(int(candidates[candidates.size // 2]))
    return chosen[0], chosen[1]


def _write_tables(folder: Path, ids: list[str], dosages: np.ndarray, causal: tuple[int, int]) -> tuple[Path, Path]:
    """Covariates (age, 0/1 sex, a PC) and six phenotypes; one phenotype ~10 % missing."""
    rng = np.random.default_rng(3)
    n = len(ids)
    covar = pd.DataFrame(
        {"FID": ids, "IID": ids, "age": rng.uniform(45, 80, n), "sex": rng.integers(0, 2, n), "pc1": rng.normal(size=n)}
    )
    pheno = pd.DataFrame({"FID": ids, "IID": ids})
    nuisance = 0.02 * covar["age"].to_numpy() + 0.3 * covar["sex"].to_numpy()
    for name, (effect_a, effect_b) in CAUSAL_EFFECTS.items():
        genetic = effect_a * dosages[:, causal[0]] + effect_b * dosages[:, causal[1]]
        pheno[name] = genetic + nuisance + rng.normal(size=n)
    pheno.loc[rng.random(n) < 0.1, MISSING_PHENOTYPE] = np.nan
    pheno_path, covar_path = folder / "pheno.tsv", folder / "covar.tsv"
    pheno.to_csv(pheno_path, sep="\t", index=False, na_rep="NA")
    covar.to_csv(covar_path, sep="\t", index=False)
    return pheno_path, covar_path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = tmp_path_factory.mktemp("gwas")
    genotypes = simulate_genotypes(N_SAMPLES, [1, 2], 1_000_000, seed=11, progress=False)
    # The .fam holds 10 extra samples absent from the tables: the engines must use the intersection.
    ids = [f"s{i:04d}" for i in range(N_SAMPLES)]
    extra = np.random.default_rng(5).integers(0, 3, size=(10, genotypes.dosages.shape[1])).astype(np.int8)
    prefix = folder / "geno"
    write_bed(prefix, np.vstack([extra, genotypes.dosages]), genotypes.variants, [f"x{i}" for i in range(10)] + ids)
    causal = _causal_variants(genotypes.variants)
    pheno, covar = _write_tables(folder, ids, genotypes.dosages, causal)
    return Dataset(folder, prefix, pheno, covar, genotypes.dosages, genotypes.variants, causal)


def _read_all(paths: list[Path]) -> dict[str, pd.DataFrame]:
    return {path.name.removesuffix(".tsv.gz"): read_sumstats(path) for path in paths}


@pytest.fixture(scope="module")
def torch_results(dataset: Dataset) -> dict[str, pd.DataFrame]:
    paths = linear_gwas(dataset.prefix, dataset.pheno, dataset.covar, dataset.folder / "torch",
                        block_size=1000, device="cpu", progress=False)
    return _read_all(paths)


@pytest.fixture(scope="module")
def plink2_results(dataset: Dataset) -> dict[str, pd.DataFrame]:
    if shutil.which("plink2") is None:
        pytest.skip("plink2 not on PATH")
    return _read_all(plink2_gwas(dataset.prefix, dataset.pheno, dataset.covar, dataset.folder / "plink2"))


# --------------------------------------------------------------------------- agreement


def test_linear_association_matches_direct_least_squares() -> None:
    rng = np.random.default_rng(0)
    n = 200
    dosages = rng.integers(0, 3, size=(n, 5)).astype(np.int8)
    covariates = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    phenotypes = rng.normal(size=(n, 3)) + dosages[:, :3] * 0.3
    phenotypes[rng.random(n) < 0.2, 1] = np.nan
    result = linear_association(dosages, phenotypes, covariates)
    for j in range(3):
        keep = ~np.isnan(phenotypes[:, j])
        for v in range(5):
            design = np.column_stack([np.ones(keep.sum()), covariates[keep], dosages[keep, v]])
            coef, rss, *_ = np.linalg.lstsq(design, phenotypes[keep, j], rcond=None)
            df = keep.sum() - design.shape[1]
            se = np.sqrt(rss[0] / df * np.linalg.inv(design.T @ design)[-1, -1])
            p = 2 * stats.t.sf(abs(coef[-1] / se), df)
            np.testing.assert_allclose(result.beta[v, j], coef[-1], rtol=1e-10)
            np.testing.assert_allclose(result.standard_error[v, j], se, rtol=1e-10)
            np.testing.assert_allclose(result.p_value[v, j], p, rtol=1e-8)
        assert result.n[j] == keep.sum()


def test_float32_products_stay_close_to_float64() -> None:
    """The GPU's precision (float32 block products, float64 covariate projection), run on the CPU."""
    rng = np.random.default_rng(5)
    n = 3000
    dosages = rng.binomial(2, rng.uniform(0.05, 0.5, 200), size=(n, 200)).astype(np.int8)
    covariates = np.column_stack([rng.uniform(45, 80, n), rng.integers(0, 2, n), rng.normal(size=n)])
    phenotypes = 0.01 * covariates[:, :1] + rng.normal(size=(n, 4)) + 0.3 * dosages[:, :4]
    exact = linear_association(dosages, phenotypes, covariates, dtype=torch.float64)
    single = linear_association(dosages, phenotypes, covariates, dtype=torch.float32)
    # beta's error is measured in standard errors: a null beta near 0 has no meaningful relative error
    beta_in_se = np.abs(single.beta - exact.beta) / exact.standard_error
    log_p = np.abs(np.log10(single.p_value) - np.log10(exact.p_value))
    print(f"float32 vs float64: max |Δbeta|/se {beta_in_se.max():.2g}, max |Δ-log10 p| {log_p.max():.2g}")
    assert beta_in_se.max() < 1e-3
    assert log_p.max() < 1e-3


def test_tf32_is_off_inside_a_cuda_run_and_restored_after() -> None:
    """The CUDA-only precision guard touches only backend flags, so it can run without a GPU."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with _ieee_float32_matmul(torch.device("cuda")):
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_monomorphic_variant_gives_nan() -> None:
    rng = np.random.default_rng(1)
    dosages = np.column_stack([np.ones(50), rng.integers(0, 3, 50)]).astype(np.int8)
    result = linear_association(dosages, rng.normal(size=50), rng.normal(size=(50, 1)))
    assert np.isnan(result.beta[0, 0]) and np.isnan(result.p_value[0, 0])
    assert np.isfinite(result.beta[1, 0])


def test_missing_calls_are_mean_imputed() -> None:
    rng = np.random.default_rng(2)
    dosages = rng.integers(0, 3, size=(80, 1)).astype(np.int8)
    with_missing = dosages.copy()
    with_missing[:4, 0] = -1
    imputed = dosages.astype(float)
    imputed[:4, 0] = dosages[4:, 0].mean()
    y, c = rng.normal(size=80), rng.normal(size=(80, 2))
    got = linear_association(with_missing, y, c)
    # the same regression on the explicitly imputed dosage
    design = np.column_stack([np.ones(80), c, imputed[:, 0]])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    np.testing.assert_allclose(got.beta[0, 0], coef[-1], rtol=1e-10)
    np.testing.assert_allclose(got.alt_frequency[0, 0], dosages[4:, 0].mean() / 2, rtol=1e-12)


@needs_plink2
def test_torch_engine_matches_plink2(
    torch_results: dict[str, pd.DataFrame], plink2_results: dict[str, pd.DataFrame]
) -> None:
    assert sorted(torch_results) == sorted(plink2_results) == PHENOTYPES
    for name in PHENOTYPES:
        ours, theirs = torch_results[name], plink2_results[name]
        assert list(ours.columns) == SUMSTATS_COLUMNS
        pd.testing.assert_series_equal(ours["variant_id"], theirs["variant_id"])
        pd.testing.assert_series_equal(ours["effect_allele"], theirs["effect_allele"])
        pd.testing.assert_series_equal(ours["n"], theirs["n"])
        relative_beta = np.abs(ours["beta"] - theirs["beta"]) / np.abs(theirs["beta"])
        log_p = np.abs(np.log10(ours["p_value"]) - np.log10(theirs["p_value"]))
        frequency = np.abs(ours["effect_allele_frequency"] - theirs["effect_allele_frequency"])
        print(f"{name}: max relative |Δbeta| {relative_beta.max():.2g}, max |Δ-log10 p| {log_p.max():.2g}")
        # Both files hold 6 significant digits, so two roundings bound the difference.
        assert relative_beta.max() <= 1e-5
        assert log_p.max() <= 1e-5
        assert frequency.max() <= 1e-6


def test_n_counts_each_phenotypes_samples(dataset: Dataset, torch_results: dict[str, pd.DataFrame]) -> None:
    observed = pd.read_csv(dataset.pheno, sep="\t")[PHENOTYPES].notna().sum()
    assert observed[MISSING_PHENOTYPE] < N_SAMPLES * 0.95
    for name in PHENOTYPES:
        assert (torch_results[name]["n"] == observed[name]).all()


def test_causal_snps_are_top_hits(dataset: Dataset, torch_results: dict[str, pd.DataFrame]) -> None:
    for name, effects in CAUSAL_EFFECTS.items():
        table = torch_results[name]
        for causal, effect in zip(dataset.causal, effects):
            chrom = dataset.variants["chrom"].iloc[causal]
            on_chrom = (table["chromosome"] == chrom).to_numpy()
            top = int(np.flatnonzero(on_chrom)[np.argmin(table["p_value"].to_numpy()[on_chrom])])
            if effect == 0:
                assert table["p_value"].iloc[top] > 1e-6, (name, chrom)
                continue
            # the top hit is the causal SNP or a proxy in near-perfect LD with it
            r2 = ld_r2(dataset.dosages[:, causal], dataset.dosages[:, top])[0, 0]
            assert r2 > 0.9, (name, chrom, r2)
            assert table["p_value"].iloc[causal] < 5e-8
            assert np.sign(table["beta"].iloc[causal]) == np.sign(effect)


def test_null_phenotype_lambda_near_one(torch_results: dict[str, pd.DataFrame]) -> None:
    lam = genomic_inflation(torch_results[NULL_PHENOTYPE]["p_value"])
    print(f"λGC of the null phenotype: {lam:.3f}")
    assert 0.8 < lam < 1.25


# --------------------------------------------------------------------------- orientation and sharding


def _flipped_copy(dataset: Dataset, folder: Path) -> Path:
    """The same genotypes with REF and ALT swapped in the .bim and the dosages."""
    swapped = dataset.variants.rename(columns={"ref": "alt", "alt": "ref"})
    dosages = read_bed(dataset.prefix)
    flipped = np.where(dosages < 0, dosages, 2 - dosages).astype(np.int8)
    prefix = folder / "flipped"
    ids = pd.read_csv(f"{dataset.prefix}.fam", sep="\t", header=None)[1].astype(str).tolist()
    write_bed(prefix, flipped, swapped, ids)
    return prefix


@pytest.mark.parametrize("engine", ["torch", "plink2"])
def test_flipping_ref_and_alt_flips_beta_and_effect_allele(
    engine: str, dataset: Dataset, torch_results: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    if engine == "plink2" and shutil.which("plink2") is None:
        pytest.skip("plink2 not on PATH")
    prefix = _flipped_copy(dataset, tmp_path)
    run = {"torch": lambda: linear_gwas(prefix, dataset.pheno, dataset.covar, tmp_path / "out", progress=False),
           "plink2": lambda: plink2_gwas(prefix, dataset.pheno, dataset.covar, tmp_path / "out")}[engine]
    flipped = _read_all(run())
    for name in ("udip_000", MISSING_PHENOTYPE):
        original, other = torch_results[name], flipped[name]
        pd.testing.assert_series_equal(other["effect_allele"], original["other_allele"], check_names=False)
        pd.testing.assert_series_equal(other["other_allele"], original["effect_allele"], check_names=False)
        np.testing.assert_allclose(other["beta"], -original["beta"], rtol=1e-5)
        np.testing.assert_allclose(other["effect_allele_frequency"], 1 - original["effect_allele_frequency"],
                                   atol=2e-6)
        np.testing.assert_allclose(other["p_value"], original["p_value"], rtol=1e-5)


def test_plink2_report_with_ref_as_a1_is_flipped_to_alt(tmp_path: Path) -> None:
    report = tmp_path / "x.glm.linear"
    report.write_text(
        "#CHROM\tPOS\tID\tREF\tALT\tA1\tA1_FREQ\tOBS_CT\tBETA\tSE\tT_STAT\tP\tERRCODE\n"
        "1\t10\trs1\tA\tG\tA\t0.2\t100\t0.5\t0.1\t5\t1e-6\t.\n"
        "1\t20\trs2\tC\tT\tT\t0.3\t100\t-0.2\t0.1\t-2\t0.04\t.\n"
        "1\t30\trs3\tC\tT\tT\tNA\t100\tNA\tNA\tNA\tNA\tCONST_ALLELE\n"
    )
    table = glm_to_sumstats(report)
    assert table["effect_allele"].tolist() == ["G", "T", "T"]
    np.testing.assert_allclose(table["beta"], [-0.5, -0.2, np.nan])
    np.testing.assert_allclose(table["effect_allele_frequency"], [0.8, 0.3, np.nan])


def _concat(parts: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    names = sorted({name for part in parts for name in part})
    return {
        name: pd.concat([part[name] for part in parts if name in part], ignore_index=True) for name in names
    }


def test_sharded_runs_concatenate_to_the_whole(
    dataset: Dataset, torch_results: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    by_chromosome = _concat([
        _read_all(linear_gwas(dataset.prefix, dataset.pheno, dataset.covar, tmp_path / f"chr{c}",
                              chromosomes=[c], progress=False))
        for c in (1, "chr2")
    ])
    by_phenotype = _concat([
        _read_all(linear_gwas(dataset.prefix, dataset.pheno, dataset.covar, tmp_path / f"set{i}",
                              phenotypes=subset, progress=False))
        for i, subset in enumerate([PHENOTYPES[:2], PHENOTYPES[2:]])
    ])
    for sharded in (by_chromosome, by_phenotype):
        assert sorted(sharded) == PHENOTYPES
        for name in PHENOTYPES:
            pd.testing.assert_frame_equal(sharded[name], torch_results[name])


@needs_plink2
def test_plink2_chromosome_shards_concatenate_to_the_whole(
    dataset: Dataset, plink2_results: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    sharded = _concat([
        _read_all(plink2_gwas(dataset.prefix, dataset.pheno, dataset.covar, tmp_path / f"chr{c}", chromosomes=[c]))
        for c in (1, 2)
    ])
    for name in PHENOTYPES:
        pd.testing.assert_frame_equal(sharded[name], plink2_results[name])


# --------------------------------------------------------------------------- bad inputs


Edit = Callable[[pd.DataFrame], pd.DataFrame]


def _edited(dataset: Dataset, folder: Path, edits: dict[str, Edit]) -> tuple[Path, Path]:
    """Copies of the phenotype and covariate tables ("pheno", "covar"), changed by ``edits``."""
    tables = {kind: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
              for kind, path in (("pheno", dataset.pheno), ("covar", dataset.covar))}
    paths = {kind: folder / f"{kind}.tsv" for kind in tables}
    for kind, table in tables.items():
        edits.get(kind, lambda unchanged: unchanged)(table).to_csv(paths[kind], sep="\t", index=False)
    return paths["pheno"], paths["covar"]


def _set(column: str, row: int, value: str) -> Edit:
    """An edit that puts ``value`` at ``row`` of ``column``."""
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[row, column] = value
        return table
    return edit


BAD_INPUTS = {
    "no overlapping ids": ("pheno", lambda t: t.assign(FID="other" + t["FID"], IID="other" + t["IID"]),
                           r"no sample is in all of .*pheno\.tsv.*covar\.tsv.*geno\.fam"),
    "NaN covariate": ("covar", _set("age", 5, "NA"), r"covariate 'age' .* missing \(NaN\) for subject 's0005'"),
    "non-numeric covariate": ("covar", _set("pc1", 7, "high"),
                              r"covariate 'pc1' .* not a finite number for subject 's0007': 'high'"),
    "constant phenotype": ("pheno", lambda t: t.assign(udip_004="1.5"), r"phenotype 'udip_004' .* constant"),
    "collinear covariates": (
        "covar",
        lambda t: t.assign(age_plus_sex=(t["age"].astype(float) + 2 * t["sex"].astype(float)).astype(str)),
        r"'age_plus_sex' is a linear combination of 'age', 'sex'",
    ),
    "constant covariate": ("covar", lambda t: t.assign(site="3"), r"covariate 'site' is constant"),
}


@pytest.mark.parametrize("engine", ["torch", "plink2"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_give_one_clear_error(case: str, engine: str, dataset: Dataset, tmp_path: Path) -> None:
    which, edit, message = BAD_INPUTS[case]
    pheno, covar = _edited(dataset, tmp_path, {which: edit})
    run = linear_gwas if engine == "torch" else plink2_gwas
    if engine == "plink2" and shutil.which("plink2") is None:
        pytest.skip("plink2 not on PATH")
    with pytest.raises(ValueError, match=message):
        run(dataset.prefix, pheno, covar, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.tsv.gz"))


@needs_plink2
def test_plink2_refuses_a_phenotype_it_would_read_as_case_control(dataset: Dataset, tmp_path: Path) -> None:
    pheno, covar = _edited(dataset, tmp_path, {"pheno": lambda t: t.assign(udip_002=(t.index % 2 + 1).astype(str))})
    with pytest.raises(ValueError, match=r"phenotype 'udip_002' .* only 0/1/2 values.*torch"):
        plink2_gwas(dataset.prefix, pheno, covar, tmp_path / "out")


@needs_plink2
def test_minus_nine_is_a_value_not_missing(dataset: Dataset, tmp_path: Path) -> None:
    """plink2 reads -9 as missing by default; both engines must keep such a sample."""
    pheno, covar = _edited(dataset, tmp_path, {"covar": _set("pc1", 3, "-9"), "pheno": _set("udip_000", 4, "-9")})
    ours = _read_all(linear_gwas(dataset.prefix, pheno, covar, tmp_path / "torch", chromosomes=[1],
                                 phenotypes=["udip_000"], progress=False))["udip_000"]
    theirs = _read_all(plink2_gwas(dataset.prefix, pheno, covar, tmp_path / "plink2", chromosomes=[1]))["udip_000"]
    assert (ours["n"] == N_SAMPLES).all() and (theirs["n"] == N_SAMPLES).all()
    np.testing.assert_allclose(ours["beta"], theirs["beta"], rtol=1e-5)


def test_missing_genotype_files_are_named(dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no genotype files for prefix .*nowhere: expected .*nowhere\.bed"):
        linear_gwas(tmp_path / "nowhere", dataset.pheno, dataset.covar, tmp_path / "out")
    # an incomplete fileset names exactly the files that are missing
    (tmp_path / "half.bed").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"not found: .*half\.bim, .*half\.fam$"):
        linear_gwas(tmp_path / "half", dataset.pheno, dataset.covar, tmp_path / "out")


def test_missing_plink2_binary_names_the_torch_engine(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"'plink2' is not on PATH.*torch"):
        plink2_gwas(dataset.prefix, dataset.pheno, dataset.covar, tmp_path / "out")


@needs_plink2
def test_plink2_failure_quotes_its_log(tmp_path: Path) -> None:
    prefix = tmp_path / "failed"
    with pytest.raises(ToolError, match=r"exit code \d+\); end of its log:\n(.|\n)*Error"):
        run_tool(["plink2", "--bfile", str(tmp_path / "absent"), "--freq", "--out", str(prefix)], "allele frequencies",
                 logging.getLogger("vitudip.gwas"), Path(f"{prefix}.log"))


# --------------------------------------------------------------------------- sumstats files


def test_sumstats_round_trip_floors_p_and_numbers_chromosomes(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "chromosome": ["chr1", "X"], "base_pair_location": [10, 20], "effect_allele": ["A", "T"],
        "other_allele": ["G", "C"], "beta": [0.1234567, np.nan], "standard_error": [0.01, np.nan],
        "effect_allele_frequency": [0.25, 0.5], "p_value": [1.234567e-300, 0.0], "variant_id": ["rs1", "rs2"],
        "n": [100, 100],
    })
    path = write_sumstats(frame, tmp_path / "x.tsv.gz")
    back = read_sumstats(path)
    assert back["chromosome"].tolist() == [1, 23]
    np.testing.assert_allclose(back["p_value"], [1.23457e-300, SMALLEST_P], rtol=1e-12)
    assert np.isnan(back["beta"].iloc[1])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_read_sumstats_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("chromosome\tbeta\n1\t0.1\n")
    with pytest.raises(ValueError, match=r"bad\.tsv lacks column\(s\) base_pair_location"):
        read_sumstats(path)


def test_genomic_inflation() -> None:
    rng = np.random.default_rng(4)
    assert genomic_inflation(rng.uniform(size=200_000)) == pytest.approx(1.0, abs=0.02)
    inflated = stats.chi2.sf(1.5 * stats.chi2.isf(rng.uniform(size=200_000), 1), 1)
    assert genomic_inflation(np.append(inflated, np.nan)) == pytest.approx(1.5, abs=0.03)
    # the median is taken from the middle p-values only: the same as over every variant's chi²
    for n in (1, 2, 999, 1000):
        p = rng.uniform(size=n) ** 2
        direct = np.median(stats.chi2.isf(p, 1)) / 0.4549364
        assert genomic_inflation(p) == pytest.approx(direct, rel=1e-12)


def test_streamed_lambda_is_within_its_bound_of_the_exact_median(tmp_path: Path) -> None:
    """The sketch's λGC, fed in chunks, equals the exact median-based λGC within the bound its module states."""
    rng = np.random.default_rng(11)
    for inflation in (0.9, 1.0, 1.07, 2.5, 60.0):  # 60: past the equal-width bins, the relative bound holds
        p = stats.chi2.sf(inflation * stats.chi2.isf(rng.uniform(size=300_001), 1), 1)
        p[rng.integers(0, p.size, 50)] = np.nan
        sketch = PValueSketch()
        for chunk in np.array_split(p, 7):
            sketch.add(chunk)
        exact = genomic_inflation(p)
        bound = max(CHI2_STEP / CHI2_1DF_MEDIAN, LOG_STEP * exact)
        assert abs(sketch.lambda_gc() - exact) <= bound, (inflation, sketch.lambda_gc(), exact)
        assert sketch.n == np.isfinite(p).sum() and sketch.min_p == np.nanmin(p)
    assert np.isnan(PValueSketch.of(np.array([np.nan])).lambda_gc())


def test_sketch_qq_points_keep_the_smallest_p_exactly() -> None:
    rng = np.random.default_rng(12)
    p = rng.uniform(size=50_000) ** 2
    expected, observed = PValueSketch.of(p).qq_points(max_points=200)
    ordered = np.sort(p)
    np.testing.assert_allclose(observed[:1000], -np.log10(ordered[:1000]))
    # the thinned body comes from the bins: within a bin width of the true quantile
    ranks = np.round(len(p) * 10 ** -expected[1000:] - 0.5).astype(int)
    np.testing.assert_allclose(observed[1000:], -np.log10(ordered[ranks]), atol=1e-3)


def test_the_chunked_reader_gives_compact_kinds_and_names_bad_cells(tmp_path: Path) -> None:
    n = 2_503
    rng = np.random.default_rng(13)
    frame = pd.DataFrame({
        "chromosome": ["22"] * (n - 3) + ["X"] * 3, "base_pair_location": np.arange(n) + 10, "effect_allele": "A",
        "other_allele": "G", "beta": rng.normal(size=n), "standard_error": 0.1, "effect_allele_frequency": 0.2,
        "p_value": rng.uniform(size=n), "variant_id": [f"v{i}" for i in range(n)], "n": 50})
    path = write_sumstats(frame, tmp_path / "x.tsv.gz")
    chunks = list(read_sumstats_chunks(path, ["p_value", "chromosome", "variant_id"], chunk_rows=1000,
                                       keep_text=True))
    assert [len(c.frame) for c in chunks] == [1000, 1000, 503] and [c.first_line for c in chunks] == [2, 1002, 2002]
    assert list(chunks[0].frame.columns) == ["p_value", "chromosome", "variant_id"]
    assert chunks[0].frame["chromosome"].dtype == np.int8 and chunks[-1].frame["chromosome"].iloc[-1] == 23
    assert chunks[1].text.count(b"\n") == 1000 and chunks[1].text.split(b"\t", 1)[0] == b"22"
    joined = pd.concat([c.frame for c in chunks], ignore_index=True)
    assert joined["variant_id"].tolist() == frame["variant_id"].tolist()  # the genotype ID, not the Catalog's
    np.testing.assert_allclose(joined["p_value"], frame["p_value"], rtol=1e-5)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    fields = lines[1500].split("\t")
    fields[7] = "oops"
    lines[1500] = "\t".join(fields)
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"bad\.tsv line 1501, column p_value: 'oops' is not a number"):
        list(read_sumstats_chunks(bad, ["p_value"], chunk_rows=1000))
    with pytest.raises(ValueError, match=r"bad\.tsv lacks column\(s\) rsid2; available"):
        list(read_sumstats_chunks(bad, ["rsid2"]))
