"""Joint tests across dimensions: power for spread effects, null calibration, MANOVA identity, files, engine hook."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vitudip.genetics.joint_correlation import phenotype_correlation
from vitudip.genetics.joint_null import (
    JointCalibrationError,
    effective_lambda_limit,
    fit_null,
    lambda_standard_error,
    null_calibration,
)
from vitudip.genetics.joint_stage import correlation_from_tables, permute_tables, summarise_joint
from vitudip.genetics.joint_stats import JointTest, MinPNull, z_scores
from vitudip.genetics.joint_sumstats import joint_from_sumstats
from vitudip.genetics.joint_table import JOINT_COLUMNS, JointSummary, read_joint, read_joint_chunks
from vitudip.genetics.linear import linear_association, linear_gwas
from vitudip.genetics.pvalue_sketch import CHI2_STEP, PValueSketch
from vitudip.genetics.sumstats import CHI2_1DF_MEDIAN, genomic_inflation, read_sumstats, write_sumstats
from vitudip.io.plink import write_bed


def _correlated_noise(rng: np.random.Generator, n: int, k: int, factors: int = 3) -> np.ndarray:
    """(n, k) noise with a few shared factors: strongly correlated dimensions, as in an embedding."""
    loadings = rng.normal(size=(k, factors))
    covariance = loadings @ loadings.T + 0.3 * np.eye(k) + 0.5
    return rng.standard_normal((n, k)) @ np.linalg.cholesky(covariance).T


def _genotypes(rng: np.random.Generator, n: int, v: int) -> np.ndarray:
    return rng.binomial(2, rng.uniform(0.1, 0.5, v), size=(n, v)).astype(np.int8)


def _z_and_p(dosages: np.ndarray, y: np.ndarray, c: np.ndarray, block: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension z (the normal quantile of p, signed by beta) and p from the torch engine's least squares."""
    z, p = [], []
    for start in range(0, dosages.shape[1], block):
        result = linear_association(dosages[:, start : start + block], y, c)
        z.append(z_scores(result.beta, result.standard_error, result.p_value))
        p.append(result.p_value)
    return np.vstack(z), np.vstack(p)


# --------------------------------------------------------------------------- the tests


def test_spread_effect_is_found_by_the_joint_test_and_by_no_single_dimension() -> None:
    rng = np.random.default_rng(7)
    n, k, v = 3000, 30, 400
    dosages = _genotypes(rng, n, v)
    covariates = rng.normal(size=(n, 2))
    # an embedding-like spectrum (eigenvalues decaying by 0.85) in random directions
    directions = np.linalg.qr(rng.normal(size=(k, k)))[0]
    eigenvalues = 0.85 ** np.arange(k)
    eigenvalues *= k / eigenvalues.sum()
    noise = rng.standard_normal((n, k)) * np.sqrt(eigenvalues) @ directions.T
    # the variant moves the phenotype along eigen-directions 2-11: a small effect on every one of the 30 dimensions
    effect = 0.07 * directions[:, 1:11] @ (np.sqrt(eigenvalues[1:11]) * rng.choice([-1.0, 1.0], 10))
    y = noise + np.outer(dosages[:, 0], effect) + covariates @ rng.normal(size=(2, k))
    z, p = _z_and_p(dosages, y, covariates)
    correlation = phenotype_correlation(y, covariates)
    eigen = JointTest.from_correlation(correlation).test(z, p)  # the default: the top eigen-directions
    assert eigen.p_value[0] < 5e-8
    assert p[0].min() > 5e-8  # no single dimension reaches genome-wide significance
    assert eigen.min_p_familywise[0] > 5e-8
    # the full-rank test spends 30 degrees of freedom: weaker than the eigen test, still ahead of min-P
    full = JointTest.from_correlation(correlation, method="full").test(z, p)
    assert eigen.p_value[0] < full.p_value[0] < full.min_p_familywise[0]
    for result in (eigen, full):
        assert (result.p_value[1:] > 5e-8).all()  # no false hit among the null variants


@pytest.fixture(scope="module")
def null_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    n, k, v = 1000, 30, 20000
    covariates = rng.normal(size=(n, 2))
    y = _correlated_noise(rng, n, k) + covariates @ rng.normal(size=(2, k))
    z, p = _z_and_p(_genotypes(rng, n, v), y, covariates)
    return {"y": y, "covariates": covariates, "z": z, "p": p}


@pytest.mark.parametrize("settings", [{"method": "eigen"}, {"method": "eigen", "k": 10}, {"method": "full"}])
def test_null_lambda_of_the_joint_statistic_is_near_one(null_data: dict[str, np.ndarray], settings: dict) -> None:
    test = JointTest.from_correlation(phenotype_correlation(null_data["y"], null_data["covariates"]), **settings)
    result = test.test(null_data["z"], null_data["p"])
    assert 0.95 <= genomic_inflation(result.p_value) <= 1.05
    # min-P's family-wise p is uniform on the null: its λ and its 5 % and 1 % tails
    assert 0.95 <= genomic_inflation(result.min_p_familywise) <= 1.05
    assert 0.045 <= np.mean(result.min_p_familywise < 0.05) <= 0.055
    assert 0.008 <= np.mean(result.min_p_familywise < 0.01) <= 0.012
    calibration = null_calibration(PValueSketch.of(result.p_value), PValueSketch.of(result.min_p_familywise))
    assert calibration.ok


def test_full_rank_statistic_equals_manova() -> None:
    """With score z-scores z0 = t / sqrt(1 + t²/d), z0'R⁻¹z0 = d (1 - Wilks Λ); Hotelling T² = d (1 - Λ) / Λ."""
    rng = np.random.default_rng(3)
    n, k, v = 200, 6, 8
    dosages = _genotypes(rng, n, v)
    covariates = rng.normal(size=(n, 3))
    y = _correlated_noise(rng, n, k, 2) + dosages[:, :1] * rng.normal(0, 0.3, k) + covariates @ rng.normal(size=(3, k))
    result = linear_association(dosages, y, covariates)
    t = result.beta / result.standard_error
    d = n - covariates.shape[1] - 2
    z0 = t / np.sqrt(1 + t**2 / d)
    statistic, df = JointTest.from_correlation(phenotype_correlation(y, covariates), method="full").statistic(z0)
    assert (df == k).all()
    null_design = np.column_stack([np.ones(n), covariates])

    def sscp(design: np.ndarray) -> np.ndarray:
        residuals = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        return residuals.T @ residuals

    s0 = sscp(null_design)
    for j in range(v):
        s1 = sscp(np.column_stack([null_design, dosages[:, j]]))
        wilks = np.linalg.det(s1) / np.linalg.det(s0)
        assert statistic[j] == pytest.approx(d * (1 - wilks), rel=1e-9)
        # Hotelling's T² of the multivariate regression, from its own beta and residual covariance
        g = dosages[:, j] - null_design @ np.linalg.lstsq(null_design, dosages[:, j].astype(float), rcond=None)[0]
        beta = (y.T @ g) / (g @ g)
        hotelling = beta @ np.linalg.solve(s1 / d, beta) * (g @ g)
        assert statistic[j] / (1 - statistic[j] / d) == pytest.approx(hotelling, rel=1e-9)
    # the Wald t the pipeline uses differs from z0 by O(t²/d) only
    wald, _ = JointTest.from_correlation(phenotype_correlation(y, covariates), method="full").statistic(t)
    assert np.allclose(wald, statistic, rtol=0.2)
    assert not np.allclose(wald, statistic, rtol=1e-6)


@pytest.mark.parametrize("settings", [{"method": "eigen"}, {"method": "eigen", "k": 5}, {"method": "full"}])
def test_permuting_the_dimensions_changes_nothing(null_data: dict[str, np.ndarray], settings: dict) -> None:
    names = [f"udip_{i:03d}" for i in range(30)]
    order = np.random.default_rng(0).permutation(30)
    y, c = null_data["y"], null_data["covariates"]
    z, p = null_data["z"][:500], null_data["p"][:500]
    original = JointTest.from_correlation(phenotype_correlation(y, c), names, **settings)
    permuted = JointTest.from_correlation(phenotype_correlation(y[:, order], c), [names[i] for i in order], **settings)
    a, b = original.test(z, p), permuted.test(z[:, order], p[:, order])
    assert original.df == permuted.df
    np.testing.assert_allclose(a.statistic, b.statistic, rtol=1e-10)
    np.testing.assert_allclose(a.p_value, b.p_value, rtol=1e-8)
    assert [names[i] for i in a.min_p_index] == [permuted.dimensions[i] for i in b.min_p_index]
    # the engine hook reorders columns by name
    hooked = original.test_association([names[i] for i in order], (z * 2)[:, order], np.full_like(z, 2.0),
                                       p[:, order])
    np.testing.assert_allclose(hooked.statistic, a.statistic, rtol=1e-12)


def test_singular_correlation_is_regularised_with_a_logged_reason(
    null_data: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    y, c = null_data["y"][:, :10], null_data["covariates"]
    duplicated = np.column_stack([y, y[:, 3]])  # an exact copy: R is singular
    z = null_data["z"][:300, :10]
    with caplog.at_level(logging.WARNING, logger="vitudip.gwas"):
        test = JointTest.from_correlation(phenotype_correlation(duplicated, c), method="full")
    assert any("singular" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert "singular" in test.reason and test.df == 10
    statistic, df = test.statistic(np.column_stack([z, z[:, 3]]))
    reference, _ = JointTest.from_correlation(phenotype_correlation(y, c), method="full").statistic(z)
    assert (df == 10).all()
    np.testing.assert_allclose(statistic, reference, rtol=1e-6)  # the duplicate adds nothing
    with caplog.at_level(logging.WARNING, logger="vitudip.gwas"):
        eigen = JointTest.from_correlation(phenotype_correlation(duplicated, c), method="eigen", k=11)
    assert eigen.df == 10 and "11 asked for" in eigen.reason


# --------------------------------------------------------------------------- pieces


def test_missing_z_scores_use_the_observed_dimensions(null_data: dict[str, np.ndarray]) -> None:
    correlation = phenotype_correlation(null_data["y"][:, :8], null_data["covariates"])
    test = JointTest.from_correlation(correlation, method="full")
    z, p = null_data["z"][:20, :8].copy(), null_data["p"][:20, :8].copy()
    z[0, 2] = p[0, 2] = np.nan
    z[1] = p[1] = np.nan
    result = test.test(z, p)
    kept = [i for i in range(8) if i != 2]
    sub = JointTest.from_correlation(correlation[np.ix_(kept, kept)], method="full")
    assert result.df[0] == 7 and result.statistic[0] == pytest.approx(sub.statistic(z[:1, kept])[0][0], rel=1e-12)
    assert result.df[1] == 0 and np.isnan(result.statistic[1]) and np.isnan(result.p_value[1])
    assert result.min_p_index[1] == -1 and np.isnan(result.min_p_familywise[1])
    assert (result.df[2:] == 8).all()


def test_phenotype_correlation_is_of_the_covariate_residuals() -> None:
    rng = np.random.default_rng(2)
    c = rng.normal(size=(300, 2))
    y = _correlated_noise(rng, 300, 4) + c @ rng.normal(size=(2, 4)) * 3
    design = np.column_stack([np.ones(300), c])
    residuals = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(phenotype_correlation(y, c), np.corrcoef(residuals.T), atol=1e-12)
    y[rng.random(300) < 0.2, 1] = np.nan  # pairwise-complete with each dimension residualised on its own samples
    correlation = phenotype_correlation(y, c)
    observed = ~np.isnan(y[:, 1])
    own = y[observed, 1] - design[observed] @ np.linalg.lstsq(design[observed], y[observed, 1], rcond=None)[0]
    assert correlation[0, 1] == pytest.approx(np.corrcoef(residuals[observed, 0], own)[0, 1], rel=1e-10)
    with pytest.raises(ValueError, match="dimension 2 has no variance left"):
        phenotype_correlation(np.column_stack([y[:, 0], y[:, 2], c[:, 0] * 2 + 1]), c)


def test_min_p_null_is_exact_for_independent_and_conservative_in_the_tail() -> None:
    independent = MinPNull.from_correlation(np.eye(20))
    x = np.array([0.2, 1e-2, 1e-4, 1e-8, 1e-30, 1e-310])
    np.testing.assert_allclose(independent.familywise(x), -np.expm1(20 * np.log1p(-x)), rtol=0.03)
    correlated = np.full((20, 20), 0.9) + 0.1 * np.eye(20)
    null = MinPNull.from_correlation(correlated)
    rng = np.random.default_rng(5)
    draws = np.abs(rng.standard_normal((400_000, 20)) @ np.linalg.cholesky(correlated).T).max(axis=1)
    empirical = np.mean(2 * stats.norm.sf(draws) < 1e-4)  # a tail level below the Monte Carlo table
    assert empirical <= null.familywise(np.array([1e-4]))[0] <= 3 * empirical
    assert null.familywise(np.array([5e-8]))[0] < 20 * 5e-8  # tighter than Bonferroni


def test_bad_settings_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        JointTest.from_correlation(np.eye(3), method="ridge")
    with pytest.raises(ValueError, match="k = 4 is outside"):
        JointTest.from_correlation(np.eye(3), k=4)
    with pytest.raises(ValueError, match="not a covariance"):
        JointTest.from_correlation(2 * np.eye(3))
    test = JointTest.from_correlation(np.eye(3), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"missing \['c'\], extra \['d'\]"):
        test.column_order(["a", "b", "d"], "the block")


def test_null_calibration_raises_and_logs_on_inflation(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(4)
    inflated = stats.chi2.sf(1.3 * stats.chi2.isf(rng.random(20000), 10), 10)
    with caplog.at_level(logging.ERROR, logger="vitudip.gwas"), pytest.raises(JointCalibrationError, match="inflated"):
        null_calibration(PValueSketch.of(inflated), PValueSketch.of(rng.random(20000)), what="perm/joint.tsv.gz")
    assert any("perm/joint.tsv.gz" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_an_inflated_null_of_a_study_too_small_for_its_dimensions_names_that_cause() -> None:
    rng = np.random.default_rng(4)
    inflated = stats.chi2.sf(1.3 * stats.chi2.isf(rng.random(20000), 10), 10)
    # 37 subjects for 128 dimensions: R is singular; no choice of eigen-directions helps
    with pytest.raises(JointCalibrationError) as small:
        null_calibration(PValueSketch.of(inflated), PValueSketch.of(rng.random(20000)), subjects=37, dimensions=128)
    message = str(small.value)
    assert "the cause is the study's size: 37 subjects are too few for a joint test of 128 dimensions" in message
    assert "singular" in message and "below 1408 subjects" in message and "keep fewer eigen-directions" not in message
    # a study large enough: the advice stays the eigen-directions
    with pytest.raises(JointCalibrationError, match="keep fewer eigen-directions"):
        null_calibration(PValueSketch.of(inflated), PValueSketch.of(rng.random(20000)), subjects=1408, dimensions=128)


def test_lambda_standard_error_matches_the_spread_of_null_runs() -> None:
    # 400 null runs of 2,000 uniform p-values: λGC's SD is the formula's (2.33 / sqrt(2000) = 0.052)
    rng = np.random.default_rng(8)
    lambdas = [genomic_inflation(rng.random(2000)) for _ in range(400)]
    assert np.std(lambdas) == pytest.approx(lambda_standard_error(2000), rel=0.15)
    assert lambda_standard_error(2000) == pytest.approx(0.052, abs=0.001)


def test_the_null_limit_allows_a_small_runs_noise_but_not_inflation_beyond_it() -> None:
    # few variants: a calibrated run may reach 1 + 3.09 SE; many: the configured limit rules
    assert effective_lambda_limit(1.1, 1000) == pytest.approx(1 + 3.09 * lambda_standard_error(1000), abs=1e-3)
    assert effective_lambda_limit(1.1, 1000) > 1.2 and effective_lambda_limit(1.1, 100_000) == 1.1
    rng = np.random.default_rng(9)
    noisy = stats.chi2.sf(1.12 * stats.chi2.isf(rng.random(1000), 1), 1)  # λ about 1.12 of 1,000 variants
    assert null_calibration(PValueSketch.of(noisy), PValueSketch.of(rng.random(1000))).limit > 1.12
    with pytest.raises(JointCalibrationError, match="inflated"):
        null_calibration(PValueSketch.of(stats.chi2.sf(1.12 * stats.chi2.isf(rng.random(100_000), 1), 1)),
                         PValueSketch.of(rng.random(100_000)))


def test_fit_null_recovers_a_chi_square() -> None:
    rng = np.random.default_rng(6)
    fit = fit_null(stats.chi2.rvs(12, size=20000, random_state=rng), rng.random(20000))
    assert fit.gamma_shape == pytest.approx(6, rel=0.05) and fit.gamma_scale == pytest.approx(2, rel=0.05)
    assert fit.beta_a == pytest.approx(1, rel=0.05) and fit.beta_b == pytest.approx(1, rel=0.05)
    assert fit.statistic_p(np.array([stats.chi2.isf(1e-3, 12)]))[0] == pytest.approx(1e-3, rel=0.3)


# --------------------------------------------------------------------------- files and the engine


@pytest.fixture(scope="module")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("joint")
    rng = np.random.default_rng(8)
    n, k, v = 400, 5, 250
    dosages = _genotypes(rng, n, v)
    ids = [f"s{i:04d}" for i in range(n)]
    variants = pd.DataFrame({"chrom": np.repeat([1, 2], [150, 100]), "id": [f"rs{i}" for i in range(v)],
                             "pos": np.concatenate([np.arange(150), np.arange(100)]) * 1000 + 1_000_001,
                             "ref": "A", "alt": "G"})
    write_bed(folder / "geno", dosages, variants, ids)
    covariates = rng.normal(size=(n, 2))
    y = _correlated_noise(rng, n, k, 2) + np.outer(dosages[:, 7], [0.3, -0.3, 0.3, -0.3, 0.3])
    names = [f"udip_{i:03d}" for i in range(k)]
    pheno = pd.DataFrame(y, columns=names)
    covar = pd.DataFrame(covariates, columns=["age", "pc1"])
    for table in (pheno, covar):
        table.insert(0, "IID", ids)
        table.insert(0, "FID", ids)
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False)
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    names_read, correlation = correlation_from_tables(folder / "geno", folder / "pheno.tsv", folder / "covar.tsv")
    test = JointTest.from_correlation(correlation, names_read, method="full")
    paths = linear_gwas(folder / "geno", folder / "pheno.tsv", folder / "covar.tsv", folder / "gwas", block_size=64,
                        device="cpu", progress=False, joint=test, joint_path=folder / "engine_joint.tsv.gz")
    return {"folder": folder, "test": test, "paths": paths, "y": y, "covariates": covariates, "dosages": dosages,
            "names": names}


def test_correlation_from_tables_matches_the_arrays(small_study: dict) -> None:
    np.testing.assert_allclose(small_study["test"].correlation,
                               phenotype_correlation(small_study["y"], small_study["covariates"]), atol=1e-9)


def test_engine_hook_writes_the_joint_file(small_study: dict) -> None:
    table = read_joint(small_study["folder"] / "engine_joint.tsv.gz")
    assert list(table.columns) == JOINT_COLUMNS and len(table) == 250
    z, p = _z_and_p(small_study["dosages"], small_study["y"], small_study["covariates"])
    expected = small_study["test"].test(z, p)
    np.testing.assert_allclose(table["statistic"], expected.statistic, rtol=1e-5)
    np.testing.assert_allclose(table["min_p_familywise"], expected.min_p_familywise, rtol=1e-5)
    assert table["p_value"].idxmin() == 7 and (table["df"] == 5).all() and (table["n"] == 400).all()
    assert set(table["min_p_dimension"]) <= set(small_study["names"])
    with pytest.raises(ValueError, match="both joint"):
        linear_gwas(small_study["folder"] / "geno", small_study["folder"] / "pheno.tsv",
                    small_study["folder"] / "covar.tsv", small_study["folder"] / "x", joint=small_study["test"])


def test_joint_from_sumstats_streams_in_chunks_like_the_engine(small_study: dict, tmp_path: Path) -> None:
    summary = joint_from_sumstats(small_study["paths"], small_study["test"], tmp_path / "joint.tsv.gz",
                                  chunk_size=37, progress=False)
    table = read_joint(summary.path)
    engine = read_joint(small_study["folder"] / "engine_joint.tsv.gz")
    pd.testing.assert_frame_equal(table[JOINT_COLUMNS[:5] + ["df", "n", "min_p_dimension"]],
                                  engine[JOINT_COLUMNS[:5] + ["df", "n", "min_p_dimension"]])
    np.testing.assert_allclose(table["statistic"], engine["statistic"], rtol=1e-4)  # %.6g beta and se
    assert summary.n_variants == 250 and summary.n_genome_wide >= 1
    qq = tmp_path / "qq.png"
    assert summarise_joint(summary, qq).n_variants == 250 and qq.stat().st_size > 0


def test_the_joint_file_is_read_back_in_chunks_with_lambda_within_the_sketch_bound(small_study: dict,
                                                                                   tmp_path: Path) -> None:
    path = small_study["folder"] / "engine_joint.tsv.gz"
    whole = read_joint(path)
    chunks = list(read_joint_chunks(path, ["p_value", "min_p_dimension", "chromosome"], chunk_rows=60))
    assert [len(c) for c in chunks] == [60, 60, 60, 60, 10]
    assert list(chunks[0].columns) == ["p_value", "min_p_dimension", "chromosome"]
    assert chunks[0]["chromosome"].dtype == np.int64
    np.testing.assert_array_equal(pd.concat(chunks, ignore_index=True)["p_value"], whole["p_value"])
    summary = JointSummary.of_file(path, chunk_rows=60)
    for streamed, exact in ((summary.lambda_gc, genomic_inflation(whole["p_value"])),
                            (summary.lambda_min_p, genomic_inflation(whole["min_p_familywise"]))):
        assert abs(streamed - exact) <= max(CHI2_STEP / CHI2_1DF_MEDIAN, 1e-4 * exact)
    assert summary.n_genome_wide == int((whole["p_value"] < 5e-8).sum())
    assert summary.n_genome_wide_min_p == int((whole["min_p_familywise"] < 5e-8).sum())
    assert summary.statistic.min_p == whole["p_value"].min()


def _rewrite(path: Path, out: Path, edit) -> Path:
    write_sumstats(edit(read_sumstats(path)), out)
    return out


def test_joint_from_sumstats_refuses_unsorted_or_repeated_variants(small_study: dict, tmp_path: Path) -> None:
    paths = {p.name.removesuffix(".tsv.gz"): p for p in small_study["paths"]}
    swapped = dict(paths, udip_002=_rewrite(paths["udip_002"], tmp_path / "a" / "udip_002.tsv.gz",
                                            lambda f: f.iloc[[1, 0, *range(2, len(f))]]))
    with pytest.raises(ValueError, match=r"line 3 of .*udip_002.tsv.gz is variant 1:1000001:G:A, before .* sorted"):
        joint_from_sumstats(swapped, small_study["test"], tmp_path / "j.tsv.gz", progress=False)
    repeated = dict(paths, udip_001=_rewrite(paths["udip_001"], tmp_path / "b" / "udip_001.tsv.gz",
                                             lambda f: f.iloc[[0, *range(len(f))]]))
    with pytest.raises(ValueError, match=r"line 3 of .*udip_001.tsv.gz repeats variant 1:1000001:G:A"):
        joint_from_sumstats(repeated, small_study["test"], tmp_path / "j.tsv.gz", chunk_size=100, progress=False)
    with pytest.raises(ValueError, match=r"missing \['udip_004'\]"):
        joint_from_sumstats({k: v for k, v in paths.items() if k != "udip_004"}, small_study["test"],
                            tmp_path / "j.tsv.gz", progress=False)
    assert not (tmp_path / "j.tsv.gz").exists()  # nothing half written
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("chunk_size", [37, 1000])
def test_a_variant_one_dimension_lacks_is_tested_over_the_others(small_study: dict, tmp_path: Path,
                                                                 chunk_size: int) -> None:
    """gwas_gather drops a dimension's untested variants, so the files can list different variants."""
    paths = {p.name.removesuffix(".tsv.gz"): p for p in small_study["paths"]}
    lacking = {3: "udip_001", 7: "udip_004", 150: "udip_000", 151: "udip_000", 249: "udip_002"}  # rows dropped
    edited = dict(paths)
    for name in set(lacking.values()):
        rows = [r for r, d in lacking.items() if d == name]
        edited[name] = _rewrite(paths[name], tmp_path / "in" / f"{name}.tsv.gz", lambda f, rows=rows: f.drop(rows))
    summary = joint_from_sumstats(edited, small_study["test"], tmp_path / "joint.tsv.gz", chunk_size=chunk_size,
                                  progress=False)
    table = read_joint(summary.path)
    assert len(table) == 250 and summary.n_variants == 250
    z, p = _z_and_p(small_study["dosages"], small_study["y"], small_study["covariates"])
    names = small_study["names"]
    for row, name in lacking.items():
        z[row, names.index(name)] = p[row, names.index(name)] = np.nan
    expected = small_study["test"].test(z, p)
    np.testing.assert_array_equal(table["df"], expected.df)
    df = table["df"].to_numpy()
    assert (df[list(lacking)] == 4).all() and (np.delete(df, list(lacking)) == 5).all()
    np.testing.assert_allclose(table["statistic"], expected.statistic, rtol=1e-4)
    np.testing.assert_allclose(table["min_p_familywise"], expected.min_p_familywise, rtol=1e-4)
    engine = read_joint(small_study["folder"] / "engine_joint.tsv.gz")
    pd.testing.assert_frame_equal(table[JOINT_COLUMNS[:5]], engine[JOINT_COLUMNS[:5]])  # same variants, same order


def test_z_scores_from_p_keep_the_wald_null_calibrated_in_small_samples() -> None:
    """beta / SE is t-distributed; its squares summed over directions inflate the null, the p's quantile does not."""
    rng = np.random.default_rng(4)
    t = rng.standard_t(30, size=(100_000, 8))
    p = 2 * stats.t.sf(np.abs(t), 30)
    z = z_scores(t, np.ones_like(t), p)
    np.testing.assert_allclose(np.abs(z), stats.norm.isf(p / 2))
    np.testing.assert_array_equal(np.sign(z), np.sign(t))
    as_ratio = genomic_inflation(stats.chi2.sf(np.square(t).sum(axis=1), 8))
    as_quantile = genomic_inflation(stats.chi2.sf(np.square(z).sum(axis=1), 8))
    assert as_ratio > 1.07 and abs(as_quantile - 1) < 0.02
    # below the double range the p says nothing more: beta / SE is kept; NaN stays NaN
    np.testing.assert_array_equal(z_scores(np.array([50.0, -3.0, np.nan]), np.ones(3), np.array([0.0, np.nan, 0.1])),
                                  [50.0, -3.0, np.nan])


def test_permute_tables_moves_phenotypes_and_covariates_together(small_study: dict, tmp_path: Path) -> None:
    folder = small_study["folder"]
    permute_tables(folder / "pheno.tsv", folder / "covar.tsv", tmp_path / "p.tsv", tmp_path / "c.tsv", seed=1)
    pheno, covar = pd.read_csv(folder / "pheno.tsv", sep="\t"), pd.read_csv(folder / "covar.tsv", sep="\t")
    new_pheno, new_covar = pd.read_csv(tmp_path / "p.tsv", sep="\t"), pd.read_csv(tmp_path / "c.tsv", sep="\t")
    assert list(new_pheno["IID"]) == list(pheno["IID"]) and list(new_covar["IID"]) == list(covar["IID"])
    source = pd.Index(pheno["udip_000"]).get_indexer(new_pheno["udip_000"])  # where each new row came from
    assert (source >= 0).all() and (source != np.arange(len(source))).mean() > 0.9
    np.testing.assert_array_equal(new_pheno["udip_003"], pheno["udip_003"].to_numpy()[source])
    np.testing.assert_array_equal(new_covar["age"], covar["age"].to_numpy()[source])
