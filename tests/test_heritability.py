"""SNP heritability and genetic correlation by randomized HE regression, where the truth is known.

Phenotypes are simulated here on the project's coalescent genotypes (realistic LD) with known h² from 1,000
causal variants, and the estimates are checked against that truth and against exact HE on the full GRM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vitudip.genetics.dosages import open_genotypes
from vitudip.genetics.heritability import (
    MIN_BLOCK_SPAN_BP,
    estimate,
    genotype_products,
    heritability,
    heritability_stage,
    jackknife_blocks,
    load_phenotypes,
    moment_estimates,
    random_vectors,
)
from vitudip.genetics.settings import HeritabilitySettings
from vitudip.io.plink import write_bed
from vitudip.simulate.genotypes import simulate_genotypes

N_SAMPLES = 3000
CAUSAL = 1000
#: the simulated traits: (name, h²); the last two share genetics with r_g = RG
TRAITS = [("h2_020", 0.2), ("h2_050", 0.5), ("null", 0.0), ("pleio_a", 0.5), ("pleio_b", 0.4)]
RG = 0.6
REPLICATES = 30


def _settings(**changes) -> HeritabilitySettings:
    values = dict(random_vectors=20, jackknife_blocks=100, block_size=2048, device="cpu", inverse_normal=False,
                  seed=3)
    return HeritabilitySettings(**{**values, **changes})


def _standardised(dosages: np.ndarray) -> np.ndarray:
    z = dosages.astype(np.float64)
    z -= z.mean(0)
    return z / z.std(0)


def _genetic_values(z: np.ndarray, rng: np.random.Generator, n: int = 1) -> np.ndarray:
    """(samples, n) genetic values of CAUSAL random variants with standard normal effects, each scaled to variance 1."""
    values = np.column_stack([z[:, rng.choice(z.shape[1], CAUSAL, replace=False)] @ rng.standard_normal(CAUSAL)
                              for _ in range(n)])
    return (values - values.mean(0)) / values.std(0)


def _trait(genetic: np.ndarray, h2: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(genetic))
    return np.sqrt(h2) * genetic + np.sqrt(1 - h2) * (noise - noise.mean()) / noise.std()


@dataclass
class Cohort:
    prefix: Path
    pheno: Path
    covar: Path
    z: np.ndarray  # standardised genotypes, for the exact references
    ids: list[str]
    pair_rg: float  # the realised correlation of the pleiotropic pair's genetic values


def _write_tables(folder: Path, ids: list[str], traits: dict[str, np.ndarray], rng: np.random.Generator,
                  name: str = "pheno") -> tuple[Path, Path]:
    age = rng.uniform(45, 80, len(ids))
    sex = rng.integers(0, 2, len(ids)).astype(float)
    pheno = pd.DataFrame({"FID": ids, "IID": ids, **{k: v + 0.05 * age + 0.5 * sex for k, v in traits.items()}})
    covar = pd.DataFrame({"FID": ids, "IID": ids, "age": age, "sex": sex})
    pheno.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    return folder / f"{name}.tsv", folder / "covar.tsv"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    folder = tmp_path_factory.mktemp("heritability")
    genotypes = simulate_genotypes(N_SAMPLES, [1, 2, 3, 4], 4_000_000, seed=21, progress=False)
    ids = [f"s{i}" for i in range(N_SAMPLES)]
    write_bed(folder / "geno", genotypes.dosages, genotypes.variants, ids)
    z = _standardised(genotypes.dosages)
    rng = np.random.default_rng(5)
    genetic = _genetic_values(z, rng, 2)
    # the pair's effects on the same causal variants correlate by RG (the bivariate model r_g describes)
    causal = z[:, rng.choice(z.shape[1], CAUSAL, replace=False)]
    effects = rng.standard_normal((CAUSAL, 2)) @ np.array([[1, RG], [0, np.sqrt(1 - RG**2)]])
    pair = causal @ effects
    pair = (pair - pair.mean(0)) / pair.std(0)
    columns = [genetic[:, 0], genetic[:, 1], np.zeros(N_SAMPLES), pair[:, 0], pair[:, 1]]
    traits = {name: _trait(g, h2, rng) for (name, h2), g in zip(TRAITS, columns)}
    pheno, covar = _write_tables(folder, ids, traits, rng)
    return Cohort(folder / "geno", pheno, covar, z, ids, float(np.corrcoef(pair, rowvar=False)[0, 1]))


@pytest.fixture(scope="module")
def estimates(cohort: Cohort) -> pd.DataFrame:
    phenotypes = load_phenotypes(cohort.prefix, cohort.pheno, cohort.covar, "vit")
    result, variants, _ = heritability(cohort.prefix, phenotypes, _settings(), progress=False)
    p = len(phenotypes.names)
    return pd.DataFrame({"h2": result.estimates.h2, "se": result.se[:p]}, index=phenotypes.names), result


def test_known_heritability_is_recovered_within_two_standard_errors(estimates) -> None:
    table, _ = estimates
    for name, h2 in TRAITS:
        row = table.loc[name]
        # 2 SE for the heritable traits; the trait without genetics sits 2.2 SE above zero at this seed, within
        # the chance that five traits give (the replicates below check the SE's size on 60 traits)
        assert abs(row["h2"] - h2) < (3 if h2 == 0 else 2) * row["se"], (name, row.to_dict())
    # and the SE is tight enough that this says something: 0.2 and 0.5 are told apart, and from zero
    assert (table["se"] < 0.1).all() and table.loc["h2_020", "h2"] > 2 * table.loc["h2_020", "se"]


def test_a_pleiotropic_pair_has_its_genetic_correlation(cohort: Cohort, estimates) -> None:
    _, result = estimates
    names = [name for name, _ in TRAITS]
    a, b, null = names.index("pleio_a"), names.index("pleio_b"), names.index("h2_050")
    p = len(names)
    rg_se = result.se[p:p + p * p].reshape(p, p)
    # the truth of this sample is its genetic values' correlation (RG in expectation over the effects)
    assert abs(cohort.pair_rg - RG) < 0.15
    assert abs(result.estimates.rg[a, b] - cohort.pair_rg) < 2 * rg_se[a, b] and rg_se[a, b] < 0.2
    # independent genetics: r_g near zero; the trait without genetics has none to correlate
    assert abs(result.estimates.rg[a, null]) < 2 * rg_se[a, null]
    assert result.estimates.rg[a, a] == pytest.approx(1.0)


@pytest.mark.parametrize("true_h2", [0.0, 0.3])
def test_the_standard_error_matches_the_spread_over_replicate_traits(cohort: Cohort, tmp_path: Path,
                                                                     true_h2: float) -> None:
    """REPLICATES traits of one h², each with its own causal variants: their estimates scatter as their SE says."""
    rng = np.random.default_rng(17)
    genetic = _genetic_values(cohort.z, rng, REPLICATES)
    traits = {f"r{i}": _trait(genetic[:, i], true_h2, rng) for i in range(REPLICATES)}
    pheno, covar = _write_tables(tmp_path, cohort.ids, traits, rng)
    phenotypes = load_phenotypes(cohort.prefix, pheno, covar, "vit")
    result, _, _ = heritability(cohort.prefix, phenotypes, _settings(), progress=False)
    h2, se = result.estimates.h2, result.se[:REPLICATES]
    assert abs(h2.mean() - true_h2) < 3 * h2.std(ddof=1) / np.sqrt(REPLICATES)
    # the SD of 30 draws is itself uncertain by ~13 %: a factor of 1.6 either way is a real miss
    assert 1 / 1.6 < h2.std(ddof=1) / se.mean() < 1.6, (h2.std(ddof=1), se.mean())


def _exact_he(z: np.ndarray, y: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, float, float]:
    """HE regression on the full GRM of standardised genotypes z: h² of each column of residualised y, and the
    exact M tr(K_P) and M² tr(K_P²)."""
    n, m = z.shape
    projection = np.eye(n) - basis @ basis.T
    k = projection @ (z @ z.T / m) @ projection
    t, tau, dof = np.sum(k * k), np.trace(k), n - basis.shape[1]
    s = np.einsum("ia,ij,ja->a", y, k, y)
    yy = np.einsum("ia,ia->a", y, y)
    sigma_g = (dof * s - tau * yy) / (t * dof - tau**2)
    sigma_e = (t * yy - tau * s) / (t * dof - tau**2)
    return sigma_g / (sigma_g + sigma_e), tau * m, t * m**2


def test_it_agrees_with_exact_he_on_the_full_grm(cohort: Cohort, tmp_path: Path) -> None:
    n, m = 500, 4000
    rng = np.random.default_rng(8)
    with open_genotypes(cohort.prefix) as genotypes:
        dosages = genotypes.read_block(np.arange(m), np.arange(n))
        variants = genotypes.variants.iloc[:m]
    small = tmp_path / "small"
    ids = cohort.ids[:n]
    write_bed(small, dosages.astype(np.int8), variants, ids)
    z = _standardised(dosages)
    genetic = _genetic_values(z, rng, 2)
    pheno, covar = _write_tables(tmp_path, ids, {"a": _trait(genetic[:, 0], 0.5, rng),
                                                 "b": _trait(genetic[:, 1], 0.8, rng)}, rng)
    phenotypes = load_phenotypes(small, pheno, covar, "vit")
    exact_h2, exact_trace, exact_trace_square = _exact_he(z, phenotypes.residuals, phenotypes.basis)
    settings = _settings(random_vectors=100, block_size=512)
    with open_genotypes(small) as genotypes:
        blocks = jackknife_blocks(genotypes.variants["chrom"], genotypes.variants["pos"], 10)
        vectors = random_vectors(n, settings.random_vectors, phenotypes.basis, settings.seed)
        products = genotype_products(genotypes, np.arange(m), blocks, phenotypes, vectors, 512,
                                     torch.device("cpu"), progress=False)
    # every product but the trace of K_P² is exact
    assert products.trace.sum() == pytest.approx(exact_trace, rel=1e-10)
    y = phenotypes.residuals
    exact = moment_estimates(products.cross.sum(0), products.trace.sum(), int(products.variants.sum()),
                             exact_trace_square, y.T @ y, phenotypes.dof, [np.arange(2)])
    np.testing.assert_allclose(exact.h2, exact_h2, rtol=1e-8)
    # the random vectors' trace, and so h², agree with the exact ones within the random vectors' own error
    per_vector = products.gram.sum(axis=(0, 1))
    trace_se = per_vector.std(ddof=1) / np.sqrt(per_vector.size)
    assert abs(per_vector.mean() - exact_trace_square) < 3 * trace_se and trace_se < 0.03 * exact_trace_square
    result = estimate(products, phenotypes, [np.arange(2)])
    assert (np.abs(result.estimates.h2 - exact_h2) < 3 * result.se_random[:2]).all()
    assert (result.se_random[:2] < 0.05).all(), result.se_random[:2]


def test_jackknife_blocks_are_at_least_a_megabase_and_at_least_two() -> None:
    chromosomes = pd.Series(["1"] * 1000 + ["2"] * 1000)
    positions = pd.Series(np.concatenate([np.linspace(1, 30e6, 1000), np.linspace(1, 20e6, 1000)]).astype(int))
    blocks = jackknife_blocks(chromosomes, positions, 100)
    assert len(blocks) == 49  # 50 Mb - 2 bp, blocks of >= 1 Mb
    assert sum(b.size for b in blocks) == 2000 and all(np.diff(np.concatenate(blocks)) == 1)
    assert len(jackknife_blocks(chromosomes, positions, 10)) == 10
    short = pd.Series(np.arange(2000) * 100)  # 0.2 Mb
    assert len(jackknife_blocks(chromosomes, short, 100)) == 2
    assert MIN_BLOCK_SPAN_BP == 1_000_000


def test_the_stage_writes_every_table_with_the_baseline_and_without_relatives(cohort: Cohort, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    baseline = pd.DataFrame({"FID": cohort.ids, "IID": cohort.ids,
                             **{f"udip_{i:03d}": rng.standard_normal(N_SAMPLES) for i in range(3)}})
    baseline.to_csv(tmp_path / "pca.tsv", sep="\t", index=False)
    qc = pd.DataFrame({"FID": cohort.ids, "IID": cohort.ids, "status": ["related"] * 10 + ["ok"] * (N_SAMPLES - 10),
                       "reason": ""})
    qc.to_csv(tmp_path / "sample_qc.tsv", sep="\t", index=False)
    outputs = {"heritability": tmp_path / "h2.tsv", "correlation": tmp_path / "rg.tsv",
               "summary": tmp_path / "summary.tsv", "figure": tmp_path / "h2.png"}
    heritability_stage(_settings(), cohort.prefix, cohort.pheno, cohort.covar, "vit", outputs,
                       baseline=tmp_path / "pca.tsv", sample_qc=tmp_path / "sample_qc.tsv", progress=False)
    table = pd.read_csv(outputs["heritability"], sep="\t")
    assert list(table["embedding"]) == ["vit"] * len(TRAITS) + ["pca"] * 3
    assert (table["n"] == N_SAMPLES - 10).all() and (table["se"] > 0).all()
    # the baseline's random dimensions have no heritability
    assert (table.loc[table["embedding"] == "pca", "z"].abs() < 3).all()
    pairs = pd.read_csv(outputs["correlation"], sep="\t")
    p = len(table)
    assert len(pairs) == p * (p - 1) // 2 and pairs["phenotypic_r"].between(-1, 1).all()
    summary = pd.read_csv(outputs["summary"], sep="\t")
    assert list(summary["embedding"]) == ["vit", "pca"] and (summary["jackknife_blocks"] == 15).all()
    assert summary.at[0, "above_2se"] >= 4 and summary.at[1, "above_2se"] == 0
    assert "only 15 jackknife blocks" in summary.at[0, "se_note"]
    assert outputs["figure"].stat().st_size > 0


def test_a_missing_phenotype_or_baseline_sample_is_named(cohort: Cohort, tmp_path: Path) -> None:
    pheno = pd.read_csv(cohort.pheno, sep="\t", dtype=str)
    pheno.loc[3, "null"] = "NA"
    pheno.to_csv(tmp_path / "gappy.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"phenotype 'null' in .*gappy.tsv is missing for 1 analysed sample"):
        load_phenotypes(cohort.prefix, tmp_path / "gappy.tsv", cohort.covar, "vit")
    short = pd.DataFrame({"FID": cohort.ids[:5], "IID": cohort.ids[:5], "udip_000": np.arange(5.0)})
    short.to_csv(tmp_path / "pca.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"UDIP table .*pca.tsv lacks 2995 analysed sample\(s\), e.g. 's5'"):
        load_phenotypes(cohort.prefix, cohort.pheno, cohort.covar, "vit", baseline=tmp_path / "pca.tsv")


def test_a_phenotype_the_covariates_explain_is_named(tmp_path: Path) -> None:
    n, rng = 50, np.random.default_rng(0)
    ids = [f"s{i}" for i in range(n)]
    variants = pd.DataFrame({"chrom": 1, "id": [f"v{i}" for i in range(10)], "pos": np.arange(10) * 1000 + 1,
                             "ref": "A", "alt": "G"})
    write_bed(tmp_path / "geno", rng.integers(0, 3, (n, 10)).astype(np.int8), variants, ids)
    age = rng.uniform(40, 80, n)
    pd.DataFrame({"FID": ids, "IID": ids, "udip_000": rng.standard_normal(n), "udip_001": 3.7 * age + 1}).to_csv(
        tmp_path / "pheno.tsv", sep="\t", index=False)
    pd.DataFrame({"FID": ids, "IID": ids, "age": age}).to_csv(tmp_path / "covar.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"phenotype 'udip_001' has no variation left after the covariates of "
                                         r".*covar.tsv"):
        load_phenotypes(tmp_path / "geno", tmp_path / "pheno.tsv", tmp_path / "covar.tsv", "vit")
