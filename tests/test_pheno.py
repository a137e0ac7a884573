"""The pheno stage: joining, exclusion reasons, covariate coding, transforms, errors, and plink2 readability."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from vitudip.config import ConfigError, stage_config
from vitudip.genetics.pheno import inverse_normal, prepare_phenotypes
from vitudip.genetics.settings import PhenoSettings
from vitudip.io.plink import write_bed
from vitudip.io.stage_tables import udip_table

ROOT = Path(__file__).resolve().parent.parent
N_SUBJECTS = 60
N_DIMS = 4
N_VARIANTS = 200
PLINK2 = shutil.which("plink2")
needs_plink2 = pytest.mark.skipif(PLINK2 is None, reason="plink2 is not on PATH")


def sid(i: int) -> str:
    """Subject ids with leading zeros, which must survive as strings."""
    return f"{i:05d}"


# Each reason at least once; the comments name the later reasons that also apply but must not win.
EXPECTED_REASONS = {
    sid(0): "QC excluded: low brain voxel count",
    sid(1): "QC excluded: unreadable",  # also no genotype
    sid(100): "no image",
    sid(101): "no image",  # also no genotype
    sid(59): "no genotype",
    sid(56): "no genotype",  # also no covariates
    sid(58): "no covariates",
    sid(57): "missing covariate: age",  # centre is missing too, but age comes first
    sid(55): "missing covariate: centre",
}
ANALYSED = [sid(i) for i in range(2, 55)]  # 53 subjects


def _genotype_ids() -> list[str]:
    """Genotyped subjects in a shuffled (non-sorted) order, plus one without an image."""
    ids = [sid(i) for i in range(N_SUBJECTS) if i not in (1, 56, 59)] + [sid(100)]
    return list(np.random.default_rng(3).permutation(ids))


def _write_genotypes(prefix: Path, ids: list[str], rng: np.random.Generator) -> None:
    freq = rng.uniform(0.1, 0.9, N_VARIANTS)
    dosages = rng.binomial(2, freq, size=(len(ids), N_VARIANTS)).astype(np.int8)
    variants = pd.DataFrame({"chrom": np.repeat([1, 2], N_VARIANTS // 2),
                             "id": [f"rs{i}" for i in range(N_VARIANTS)],
                             "pos": np.tile(np.arange(N_VARIANTS // 2) * 1000 + 1000, 2), "ref": "A", "alt": "G"})
    write_bed(prefix, dosages, variants, ids)


def _covariates(rng: np.random.Generator) -> pd.DataFrame:
    """Covariates for all but 00056 and 00058, with 00057's age and centre and 00055's centre missing."""
    ids = [sid(i) for i in range(N_SUBJECTS) if i not in (56, 58)] + [sid(100), sid(101)]
    n = len(ids)
    table = pd.DataFrame({"FID": ids, "IID": ids, "age": rng.uniform(45, 80, n).round(2),
                          "sex": rng.integers(0, 2, n), "centre": [f"c{k}" for k in rng.integers(1, 4, n)],
                          **{f"PC{k}": rng.normal(size=n) for k in (1, 2, 3)}})
    table.loc[table["IID"] == sid(57), ["age", "centre"]] = np.nan
    table.loc[table["IID"] == sid(55), "centre"] = np.nan
    return table


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Small consistent inputs: UDIPs, covariates, a .bed fileset and qc.tsv."""
    rng = np.random.default_rng(11)
    ids = [sid(i) for i in range(N_SUBJECTS)]
    values = rng.normal(size=(N_SUBJECTS, N_DIMS))
    values[10, 2] = np.nan  # a missing phenotype value stays NA
    paths = {"udips": tmp_path / "udips.tsv", "covariates": tmp_path / "covariates.tsv",
             "genotypes": tmp_path / "geno", "qc": tmp_path / "qc.tsv"}
    udip_table(ids, values).to_csv(paths["udips"], sep="\t", index=False)
    _covariates(rng).to_csv(paths["covariates"], sep="\t", index=False)
    _write_genotypes(paths["genotypes"], _genotype_ids(), rng)
    qc = pd.DataFrame({"subject_id": ids, "status": "ok", "reason": ""})
    qc.loc[0, ["status", "reason"]] = ["excluded", "low brain voxel count"]
    qc.loc[1, ["status", "reason"]] = ["excluded", "unreadable"]
    qc.to_csv(paths["qc"], sep="\t", index=False)
    return paths


def _outputs(tmp_path: Path) -> dict[str, Path]:
    return {key: tmp_path / "pheno" / f"{key}.tsv" for key in ("pheno", "covar", "samples", "exclusions")}


def _settings(**pheno) -> PhenoSettings:
    """PhenoSettings of a config's pheno section holding ``pheno`` (the schema's defaults elsewhere)."""
    return PhenoSettings.from_config(stage_config({"pheno": pheno}, PhenoSettings.CONFIG_KEYS))


def _run(inputs: dict[str, Path], tmp_path: Path, **overrides) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Run the stage with age, sex, centre, raw age terms and no outlier rule (and any overrides).

    Returns:
        The stage's summary and outputs.
    """
    options = {"covariates": ["age", "sex"], "categorical": ["centre"], "min_samples": 10, "centre_age": False,
               "outlier_sd": None, **overrides}
    out = _outputs(tmp_path)
    summary = prepare_phenotypes(inputs["udips"], inputs["covariates"], inputs["genotypes"], inputs["qc"],
                                 _settings(**options), out)
    tables = {key: pd.read_csv(path, sep="\t", dtype={"FID": str, "IID": str}) for key, path in out.items()}
    return summary, tables


def _read_input_covariates(inputs: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(inputs["covariates"], sep="\t", dtype={"FID": str, "IID": str}).set_index("IID")


# --------------------------------------------------------------------------- joining and exclusions


def test_join_and_one_reason_per_dropped_subject(inputs, tmp_path):
    summary, tables = _run(inputs, tmp_path)
    exclusions = tables["exclusions"]
    assert dict(zip(exclusions["IID"], exclusions["reason"])) == EXPECTED_REASONS
    assert list(exclusions.columns) == ["FID", "IID", "reason"]
    assert summary["n_samples"] == len(ANALYSED) and summary["n_excluded"] == len(EXPECTED_REASONS)
    assert summary["counts"] == {"with UDIPs": 60, "passing image QC": 58, "with genotypes": 56,
                                 "with covariates": 55, "with complete covariates": 53}


def test_outputs_follow_genotype_order(inputs, tmp_path):
    _, tables = _run(inputs, tmp_path)
    expected = [iid for iid in _genotype_ids() if iid in ANALYSED]
    assert expected != sorted(expected)  # the .fam order is not just sorted order
    for key in ("pheno", "covar", "samples"):
        assert list(tables[key]["IID"]) == expected, key
        assert list(tables[key]["FID"]) == expected, key
    assert list(tables["samples"].columns) == ["FID", "IID"]


def test_ids_with_leading_zeros_stay_strings(inputs, tmp_path):
    _run(inputs, tmp_path)
    for key, path in _outputs(tmp_path).items():
        rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
        expected = set(EXPECTED_REASONS) if key == "exclusions" else set(ANALYSED)
        assert {row[1] for row in rows} == expected, key
        assert {row[0] for row in rows} == expected, key


def test_pheno_table_format(inputs, tmp_path):
    _run(inputs, tmp_path)
    text = _outputs(tmp_path)["pheno"].read_text().splitlines()
    assert text[0].split("\t") == ["FID", "IID", "udip_000", "udip_001", "udip_002", "udip_003"]
    row = next(line for line in text if line.split("\t")[1] == sid(10))
    assert row.split("\t")[4] == "NA"


# --------------------------------------------------------------------------- covariate coding


def test_one_hot_drops_first_level(inputs, tmp_path):
    _, tables = _run(inputs, tmp_path)
    covar = tables["covar"].set_index("IID")
    assert list(covar.columns) == ["FID", "age", "sex", "centre_c2", "centre_c3"]
    centre = _read_input_covariates(inputs).loc[covar.index, "centre"]
    for level in ("c2", "c3"):
        np.testing.assert_array_equal(covar[f"centre_{level}"], (centre == level).astype(int))
    assert ((covar["centre_c2"] + covar["centre_c3"]) == 0).sum() == (centre == "c1").sum() > 0


def test_derived_terms(inputs, tmp_path):
    _, tables = _run(inputs, tmp_path, derived=["age2", "sex_age", "sex_age2"])
    covar = tables["covar"].set_index("IID")
    source = _read_input_covariates(inputs).loc[covar.index]
    age, sex = source["age"].to_numpy(), source["sex"].to_numpy()
    np.testing.assert_allclose(covar["age2"], age**2, rtol=1e-7)
    np.testing.assert_allclose(covar["sex_age"], sex * age, rtol=1e-7)
    np.testing.assert_allclose(covar["sex_age2"], sex * age**2, rtol=1e-7)


def test_centred_age_terms(inputs, tmp_path):
    _, tables = _run(inputs, tmp_path, derived=["age2", "sex_age", "sex_age2"], centre_age=True)
    covar = tables["covar"].set_index("IID")
    source = _read_input_covariates(inputs).loc[covar.index]
    age, sex = source["age"].to_numpy() - source["age"].mean(), source["sex"].to_numpy()
    np.testing.assert_allclose(covar["age2"], age**2, rtol=1e-6)
    np.testing.assert_allclose(covar["sex_age"], sex * age, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(covar["sex_age2"], sex * age**2, rtol=1e-6)
    np.testing.assert_allclose(covar["age"], source["age"], rtol=1e-7)  # age itself is not centred


def test_pcs_from_file(inputs, tmp_path):
    _, tables = _run(inputs, tmp_path, genetic_pcs=2)
    assert [c for c in tables["covar"].columns if c.startswith("PC")] == ["PC1", "PC2"]


@needs_plink2
def test_pcs_from_plink2(inputs, tmp_path):
    summary, tables = _run(inputs, tmp_path, genetic_pcs=2, pcs_from="plink2")
    covar = tables["covar"]
    assert summary["covariates"][-2:] == ["PC1", "PC2"]
    assert covar[["PC1", "PC2"]].notna().all().all() and len(covar) == len(ANALYSED)
    assert covar["PC1"].std() > 0 and abs(np.corrcoef(covar["PC1"], covar["PC2"])[0, 1]) < 0.5


# --------------------------------------------------------------------------- inverse-normal transform


def test_inverse_normal_is_monotone_standard_normal_and_keeps_nan():
    rng = np.random.default_rng(5)
    values = rng.exponential(size=500)
    values[[3, 70]] = np.nan
    values[10] = values[11]  # a tie
    out = inverse_normal(values)
    present = ~np.isnan(values)
    assert np.array_equal(np.isnan(out), ~present)
    order = np.argsort(values[present])
    assert np.all(np.diff(out[present][order]) >= 0)
    assert out[10] == out[11]
    n = present.sum()  # Blom: the smallest value maps to Φ⁻¹((1 - 3/8) / (n + 1/4))
    assert np.nanmin(out) == pytest.approx(norm.ppf((1 - 3 / 8) / (n + 1 / 4)))
    assert abs(out[present].mean()) < 1e-6 and abs(out[present].std() - 1) < 0.02


def test_inverse_normal_in_stage(inputs, tmp_path):
    _, tables = _run(inputs, tmp_path, inverse_normal=True)
    pheno = tables["pheno"].set_index("IID")
    raw = pd.read_csv(inputs["udips"], sep="\t", dtype={"IID": str}).set_index("IID").loc[pheno.index]
    for column in ("udip_000", "udip_002"):
        present = raw[column].notna()
        assert np.array_equal(pheno[column].notna(), present)
        assert (raw[column][present].rank() == pheno[column][present].rank()).all()
    assert pd.isna(pheno.loc[sid(10), "udip_002"])


# --------------------------------------------------------------------------- .psam input


@pytest.mark.parametrize("with_fid", [False, True])
def test_psam_input(inputs, tmp_path, with_fid):
    fam = pd.read_csv(inputs["genotypes"].with_suffix(".fam"), sep="\t", header=None, dtype=str)
    prefix = tmp_path / "pgeno"
    header = "#FID\tIID\tSEX\n" if with_fid else "#IID\tSEX\n"
    rows = [f"{f}\t{i}\tNA" if with_fid else f"{i}\tNA" for f, i in zip(fam[0], fam[1])]
    prefix.with_suffix(".psam").write_text(header + "\n".join(rows) + "\n")
    # the stage reads the samples and the variant IDs, but a fileset is recognised by all three files
    prefix.with_suffix(".pgen").touch()
    bim = pd.read_csv(inputs["genotypes"].with_suffix(".bim"), sep="\t", header=None, dtype=str)
    prefix.with_suffix(".pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"{c}\t{p}\t{i}\t{r}\t{a}\n" for c, i, p, a, r in zip(bim[0], bim[1], bim[3], bim[4], bim[5])))
    _, tables = _run({**inputs, "genotypes": prefix}, tmp_path)
    assert list(tables["samples"]["IID"]) == [iid for iid in _genotype_ids() if iid in ANALYSED]
    # plink2 reads a FID-less .psam as FID "0", so the outputs must say the same
    assert set(tables["pheno"]["FID"]) == ({"0"} if not with_fid else set(ANALYSED))


# --------------------------------------------------------------------------- errors


def _rewrite(path: Path, edit) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    edit(table).to_csv(path, sep="\t", index=False)


def test_outliers_are_dropped_from_the_gwas_with_their_reason(inputs, tmp_path):
    from vitudip.io.stage_tables import recon_table

    udips = pd.read_csv(inputs["udips"], sep="\t", dtype={"FID": str, "IID": str})
    extreme, broken = ANALYSED[3], ANALYSED[5]
    udips.loc[udips["IID"] == extreme, "udip_001"] = 40.0
    udips.to_csv(inputs["udips"], sep="\t", index=False)
    errors = np.full(len(udips), 1.0) + np.random.default_rng(0).normal(0, 0.05, len(udips))
    errors[(udips["IID"] == broken).to_numpy()] = 10.0
    recon = tmp_path / "recon_mse.tsv"
    recon_table(list(udips["IID"]), errors).to_csv(recon, sep="\t", index=False)
    out = _outputs(tmp_path)
    settings = _settings(covariates=["age", "sex"], categorical=["centre"], min_samples=10, centre_age=False,
                         outlier_sd=6.0)
    prepare_phenotypes(inputs["udips"], inputs["covariates"], inputs["genotypes"], inputs["qc"], settings, out,
                       recon_mse_path=recon)
    reasons = pd.read_csv(out["exclusions"], sep="\t", dtype=str).set_index("IID")["reason"]
    assert reasons[extreme].startswith("outlier: its UDIPs are") and "farthest: udip_001" in reasons[extreme]
    assert reasons[broken].startswith("outlier: log reconstruction error")
    pheno = pd.read_csv(out["pheno"], sep="\t", dtype={"IID": str})
    assert extreme not in set(pheno["IID"]) and broken not in set(pheno["IID"])
    assert len(pheno) == len(ANALYSED) - 2
    # without the rule both stay
    _, tables = _run(inputs, tmp_path / "kept")
    assert {extreme, broken} <= set(tables["pheno"]["IID"])


@pytest.mark.parametrize("change, expected", [
    (lambda ids: ["."] * len(ids), r"line 1: variant ID '\.' \(1:\d+\) is missing"),
    (lambda ids: [*ids[:5], ids[3], *ids[6:]], r"line 4: variant ID '.+' \(1:\d+\) is not unique"),
])
def test_missing_or_repeated_variant_ids_are_refused_before_any_gwas(inputs, tmp_path, change, expected):
    bim = inputs["genotypes"].with_suffix(".bim")
    table = pd.read_csv(bim, sep="\t", header=None, dtype=str)
    table[1] = change(list(table[1]))
    table.to_csv(bim, sep="\t", header=False, index=False)
    with pytest.raises(ValueError, match=expected) as err:
        _run(inputs, tmp_path)
    assert "--set-all-var-ids" in str(err.value)
    assert not (tmp_path / "pheno").exists()


def test_a_comma_separated_covariates_file_is_named_as_such(tmp_path):
    from vitudip.genetics.pheno import read_covariates

    path = tmp_path / "covariates.csv"
    path.write_text("FID,IID,age\n1,1,50\n")
    with pytest.raises(ValueError, match=r"covariates\.csv is comma-separated; it must be tab-separated"):
        read_covariates(path)


def test_missing_covariate_column(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"lacks column\(s\) bmi; available: FID, IID, age"):
        _run(inputs, tmp_path, covariates=["age", "bmi"])


def test_non_numeric_covariate(inputs, tmp_path):
    _rewrite(inputs["covariates"], lambda t: t.assign(age=t["age"].where(t["IID"] != sid(7), "old")))
    with pytest.raises(ValueError, match=f"column 'age' has non-numeric value 'old' for subject '{sid(7)}'"):
        _run(inputs, tmp_path)


def test_single_level_categorical(inputs, tmp_path):
    _rewrite(inputs["covariates"], lambda t: t.assign(site="A"))
    with pytest.raises(ValueError, match="categorical covariate 'site' has a single level 'A'"):
        _run(inputs, tmp_path, categorical=["site"])


@pytest.mark.parametrize("which", ["udips", "covariates", "genotypes", "qc"])
def test_duplicate_ids(inputs, tmp_path, which):
    if which == "genotypes":
        fam = inputs["genotypes"].with_suffix(".fam")
        lines = fam.read_text().splitlines()
        fam.write_text("\n".join([*lines, lines[0]]) + "\n")
        duplicate = lines[0].split("\t")[1]
    else:
        path = inputs[which]
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        pd.concat([table, table.iloc[[5]]]).to_csv(path, sep="\t", index=False)
        duplicate = sid(5)
    with pytest.raises(ValueError, match=f"{inputs[which].name}.* duplicate .*'{duplicate}'"):
        _run(inputs, tmp_path)


def test_too_few_samples_reports_each_step_and_writes_nothing(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"only 53 samples remain, fewer than min_samples=100 \(with UDIPs 60 -> "
                                         r"passing image QC 58 -> with genotypes 56 -> with covariates 55"):
        _run(inputs, tmp_path, min_samples=100)
    assert not any(path.exists() for path in _outputs(tmp_path).values())


def test_constant_covariate_after_filtering(inputs, tmp_path):
    # only the QC-excluded subject differs, so the column is constant over the analysed samples
    _rewrite(inputs["covariates"], lambda t: t.assign(batch=np.where(t["IID"] == sid(0), "2", "1")))
    with pytest.raises(ValueError, match="covariate 'batch' is constant"):
        _run(inputs, tmp_path, covariates=["age", "batch"])


def test_requested_pc_absent(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"genetic_pcs=5, pcs_from='file'\) lacks column\(s\) PC4, PC5"):
        _run(inputs, tmp_path, genetic_pcs=5)


def test_bad_settings():
    # the schema names the allowed terms
    with pytest.raises(ConfigError,
                       match=r"'pheno.derived\[0\]': 'age3' is not one of \['age2', 'sex_age', 'sex_age2'\]"):
        _settings(derived=["age3"])
    with pytest.raises(ValueError, match="clash with the PCs computed by plink2"):
        _settings(covariates=["PC1"], genetic_pcs=2, pcs_from="plink2")


# --------------------------------------------------------------------------- plink2 and the CLI


def _plink2_glm(genotypes: Path, out: dict[str, Path], prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLINK2, "--bfile", str(genotypes), "--pheno", str(out["pheno"]), "--covar", str(out["covar"]),
         "--glm", "hide-covar", "allow-no-covars", *extra, "--threads", "1", "--out", str(prefix)],
        capture_output=True, text=True)


def _check_glm(prefix: Path) -> None:
    """One result file per UDIP, every variant tested on the analysed samples (less a missing value)."""
    assert len(list(prefix.parent.glob(f"{prefix.name}.udip_*.glm.linear"))) == N_DIMS
    for dim, n in (("udip_000", len(ANALYSED)), ("udip_002", len(ANALYSED) - 1)):
        glm = pd.read_csv(f"{prefix}.{dim}.glm.linear", sep="\t")
        assert len(glm) == N_VARIANTS and glm["P"].notna().all() and (glm["OBS_CT"] == n).all()


@needs_plink2
def test_outputs_readable_by_plink2(inputs, tmp_path):
    _run(inputs, tmp_path, genetic_pcs=2)
    result = _plink2_glm(inputs["genotypes"], _outputs(tmp_path), tmp_path / "glm")
    assert result.returncode == 0, result.stdout + result.stderr
    _check_glm(tmp_path / "glm")


@needs_plink2
def test_derived_terms_in_plink2_need_centred_age(inputs, tmp_path):
    out, derived = _outputs(tmp_path), ["age2", "sex_age", "sex_age2"]
    _run(inputs, tmp_path, derived=derived, genetic_pcs=2)
    raw = _plink2_glm(inputs["genotypes"], out, tmp_path / "raw", "--covar-variance-standardize")
    assert raw.returncode != 0 and "VIF_TOO_HIGH" in raw.stdout + raw.stderr  # why centre_age exists
    _run(inputs, tmp_path, derived=derived, genetic_pcs=2, centre_age=True)
    result = _plink2_glm(inputs["genotypes"], out, tmp_path / "glm")
    assert result.returncode == 0, result.stdout + result.stderr
    _check_glm(tmp_path / "glm")


def test_cli(inputs, tmp_path):
    out = _outputs(tmp_path)
    command = [sys.executable, str(ROOT / "scripts" / "pheno.py"), "--udips", str(inputs["udips"]),
               "--covariates", str(inputs["covariates"]), "--genotypes", str(inputs["genotypes"]),
               "--qc", str(inputs["qc"]), "--settings", json.dumps({"pheno": {
                   "covariates": ["age", "sex"], "categorical": ["centre"], "derived": ["age2", "sex_age"],
                   "centre_age": False, "inverse_normal": True, "min_samples": 20, "outlier_sd": None}}),
               *[arg for key, path in out.items() for arg in (f"--{key}", str(path))]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    covar = pd.read_csv(out["covar"], sep="\t")
    assert list(covar.columns) == ["FID", "IID", "age", "sex", "age2", "sex_age", "centre_c2", "centre_c3"]
    assert "vitudip.pheno" in result.stderr and "with complete covariates 53" in result.stderr
