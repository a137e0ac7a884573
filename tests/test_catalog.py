"""Gathered GWAS-SSF files others accept: BGZF, a tabix index, GWAS Catalog metadata, no missing statistics."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml

from vitudip.genetics.catalog import StudyDescription, read_metadata
from vitudip.genetics.gather import gather_sumstats
from vitudip.genetics.sumstats import FILE_COLUMNS, read_sumstats, write_sumstats
from vitudip.io import atomic

ROOT = Path(__file__).resolve().parent.parent
STUDY = StudyDescription(genome_assembly="GRCh38", trait_description="ViT-UDIP {dimension} of T1 brain MRI",
                         sample_ancestry_category=("European",),
                         genotyping_technology=("Genome-wide genotyping array",),
                         analysis_software="vitudip 0.1.0 (plink2 --glm)", adjusted_covariates=("age", "sex"))


def gwas_ssf_tool() -> str | None:
    """The GWAS Catalog's validator: make test installs it in its own venv (it needs pandas 1.5 and numpy < 2)."""
    for candidate in (os.environ.get("GWAS_SSF"), ROOT / ".venv-ssf" / "bin" / "gwas-ssf", shutil.which("gwas-ssf")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def shard_table(chromosome: int, n: int, rng: np.random.Generator, untested: int = 0) -> pd.DataFrame:
    table = pd.DataFrame({
        "chromosome": chromosome,
        "base_pair_location": np.sort(rng.choice(10_000_000, n, replace=False)) + 1,
        "effect_allele": rng.choice(list("ACGT"), n), "other_allele": rng.choice(list("ACGT"), n),
        "beta": rng.normal(0, 0.1, n), "standard_error": np.full(n, 0.1),
        "effect_allele_frequency": rng.uniform(0.05, 0.95, n), "p_value": rng.uniform(1e-12, 1, n),
        "n": rng.integers(950, 1001, n),
    })
    # genotype IDs as files carry them: rsIDs on even chromosomes, chr:pos:ref:alt (colons) on odd ones
    table["variant_id"] = ([f"rs{chromosome}{i:05d}" for i in range(n)] if chromosome % 2 == 0 else
                           [f"{chromosome}:{r.base_pair_location}:{r.other_allele}:{r.effect_allele}"
                            for r in table.itertuples()])
    table.loc[table.index[:untested], ["beta", "standard_error", "p_value"]] = np.nan
    return table


@pytest.fixture(params=["joined", "rewritten"])
def gathered(request, tmp_path: Path) -> dict:
    """One-chromosome shards of one dimension over every autosome (the validator wants them all);
    ``rewritten``: one shard out of position order."""
    rng = np.random.default_rng(3)
    tables = {1: shard_table(1, 300, rng, untested=4), 2: shard_table(2, 200, rng, untested=1)}
    tables.update({c: shard_table(c, 20, rng) for c in range(3, 23)})
    shards = []
    for chromosome, table in tables.items():
        shard = tmp_path / "shards" / f"chr{chromosome}"
        written = table.iloc[::-1] if request.param == "rewritten" and chromosome == 2 else table
        write_sumstats(written, shard / "udip_000.tsv.gz")
        shards.append(shard)
    summary = gather_sumstats(shards, tmp_path / "sumstats", tmp_path / "lambda.tsv", tmp_path / "qq.png",
                              study=STUDY)
    expected = pd.concat(tables.values(), ignore_index=True).dropna(subset=["p_value"]).reset_index(drop=True)
    return {"path": tmp_path / "sumstats" / "udip_000.tsv.gz", "summary": summary, "expected": expected}


def test_a_gather_without_the_space_it_needs_names_the_folder_and_the_bytes_before_writing(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    shards = []
    for chromosome in (1, 2):
        shards.append(tmp_path / "shards" / f"chr{chromosome}")
        write_sumstats(shard_table(chromosome, 200, rng), shards[-1] / "udip_000.tsv.gz")
    needed = int(1.1 * sum((shard / "udip_000.tsv.gz").stat().st_size for shard in shards))
    real = shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: real(folder)._replace(free=needed - 1))
    with pytest.raises(ValueError) as caught:
        gather_sumstats(shards, tmp_path / "gwas" / "sumstats", tmp_path / "lambda.tsv", tmp_path / "qq.png")
    assert str(caught.value).startswith(f"gathering 1 dimensions of 2 shards needs about 0.00 GB ({needed:,} bytes) "
                                        f"for {tmp_path / 'gwas' / 'sumstats'}, but {tmp_path} has 0.00 GB "
                                        f"({needed - 1:,} bytes) free")
    assert not (tmp_path / "gwas").exists() and not (tmp_path / "lambda.tsv").exists()


def test_gathered_file_is_bgzf_without_untested_variants(gathered):
    path = gathered["path"]
    with open(path, "rb") as handle:  # a BGZF block: gzip with the "BC" extra subfield
        assert handle.read(16)[12:14] == b"BC"
    back = read_sumstats(path)
    pd.testing.assert_frame_equal(back[["chromosome", "base_pair_location", "variant_id"]],
                                  gathered["expected"][["chromosome", "base_pair_location", "variant_id"]],
                                  check_dtype=False)
    assert back["p_value"].notna().all()
    row = gathered["summary"].iloc[0]
    assert (row["n_variants"], row["n_untested"]) == (495 + 20 * 20, 5)


def test_a_region_reads_back_through_the_tabix_index(gathered):
    expected = gathered["expected"]
    start, end = 2_000_000, 5_000_000
    want = expected[(expected["chromosome"] == 2) & expected["base_pair_location"].between(start, end)]
    with pysam.TabixFile(os.fspath(gathered["path"])) as tabix:
        rows = [line.split("\t") for line in tabix.fetch("2", start - 1, end)]
    assert len(want) > 10
    assert [r[11] for r in rows] == list(want["variant_id"])


def test_variant_ids_take_the_catalogs_form_and_the_genotype_id_its_own_column(gathered):
    """variant_id is chromosome_position_other_effect, rsid the genotype ID only where it is an rsID; readers
    get the genotype ID back as variant_id."""
    raw = pd.read_csv(gathered["path"], sep="\t", dtype=str, keep_default_na=False)
    assert list(raw.columns) == FILE_COLUMNS
    expected = gathered["expected"]
    catalog = (expected["chromosome"].astype(str) + "_" + expected["base_pair_location"].astype(str) + "_"
               + expected["other_allele"] + "_" + expected["effect_allele"])
    assert raw["variant_id"].tolist() == catalog.tolist()
    assert raw["variant_id"].str.fullmatch(r"[A-Za-z0-9_]+").all()
    is_rs = expected["variant_id"].str.startswith("rs").to_numpy()
    assert 0 < is_rs.sum() < len(is_rs)
    assert (raw["rsid"].to_numpy()[is_rs] == expected["variant_id"].to_numpy()[is_rs]).all()
    assert (raw["rsid"].to_numpy()[~is_rs] == "NA").all()
    assert raw["genotype_id"].tolist() == expected["variant_id"].tolist()
    assert read_sumstats(gathered["path"])["variant_id"].tolist() == expected["variant_id"].tolist()


def test_metadata_describes_the_file(gathered):
    path = gathered["path"]
    meta = read_metadata(path)
    assert meta["data_file_name"] == "udip_000.tsv.gz"
    assert meta["data_file_md5sum"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert meta["samples"] == [{"sample_size": int(gathered["expected"]["n"].max()),
                                "sample_ancestry_category": ["European"]}]
    assert meta["trait_description"] == ["ViT-UDIP udip_000 of T1 brain MRI"]
    assert (meta["genome_assembly"], meta["coordinate_system"], meta["file_type"]) == ("GRCh38", "1-based",
                                                                                       "GWAS-SSF v1.0")
    assert meta["is_sorted"] is True and meta["is_harmonised"] is False
    assert yaml.safe_load(Path(f"{path}-meta.yaml").read_text())["adjusted_covariates"] == ["age", "sex"]


def test_the_gwas_catalog_validator_accepts_file_and_metadata(gathered):
    """With rsIDs and with chr:pos:ref:alt genotype IDs (which the Catalog refuses as a variant_id)."""
    tool = gwas_ssf_tool()
    if tool is None:
        pytest.skip("gwas-sumstats-tools is not installed (make test installs it in .venv-ssf)")
    run = subprocess.run([tool, "validate", "--infer-from-metadata", "--min-rows", "10", os.fspath(gathered["path"])],
                         capture_output=True, text=True, cwd=gathered["path"].parent)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Validation status: True" in run.stdout
    # the metadata parses as the catalog's own model
    python = Path(tool).parent / "python"
    check = ("import sys, yaml; from gwas_sumstats_tools.schema.metadata import SumStatsMetadata; "
             "SumStatsMetadata(**yaml.safe_load(open(sys.argv[1])))")
    model = subprocess.run([os.fspath(python), "-c", check, f"{gathered['path']}-meta.yaml"], capture_output=True,
                           text=True)
    assert model.returncode == 0, model.stderr


def test_the_study_description_comes_from_the_config_and_the_run(tmp_path):
    from vitudip.config import stage_config

    covar = tmp_path / "covar.tsv"
    covar.write_text("FID\tIID\tage\tsex\tPC1\n1\t1\t60\t0\t0.1\n")
    config = stage_config({"gwas": {"engine": "regenie", "catalog": {"sample_ancestry_category": ["European"]}},
                           "loci": {"genome_build": "GRCh38"}}, StudyDescription.CONFIG_KEYS)
    study = StudyDescription.from_config(config, covar)
    assert study.genome_assembly == "GRCh38" and study.sample_ancestry_category == ("European",)
    assert study.adjusted_covariates == ("age", "sex", "PC1")
    assert study.analysis_software.startswith("vitudip ") and "REGENIE" in study.analysis_software
    # the schema's defaults: ancestry not reported rather than guessed
    default = StudyDescription.from_config(stage_config({"gwas": {}, "loci": {}}, StudyDescription.CONFIG_KEYS), covar)
    assert default.sample_ancestry_category == ("NR",) and default.genome_assembly == "GRCh37"
    assert default.trait_description.format(dimension="udip_003").endswith("udip_003")
