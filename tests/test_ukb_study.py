"""A study laid out as UK Biobank ships it, run by the workflow on config changes only."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.sumstats import read_sumstats
from vitudip.imaging.ukb import ukb_samples
from vitudip.io.atomic import write_tsv
from vitudip.io.stage_tables import SAMPLE_SELECTION
from vitudip.simulate.ukb_layout import write_ukb_layout

from tiny_study import snakemake

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")]


@pytest.mark.slow
def test_a_uk_biobank_shaped_study_runs_on_config_changes_only(tiny_run, tiny_config, tmp_path):
    """Per-chromosome 8-bit BGENs of 10x more genotyped participants than imaged ones, withdrawn negative IDs,
    split multi-allelic records under one rsID, "01" chromosome codes, mfi tables, a .sample named apart,
    field-31 sex and field-54 centres, bulk <eid>_20252_2_0 folders."""
    assert tiny_run.run.returncode == 0, tiny_run.output[-3000:]
    layout = write_ukb_layout(tiny_run.workdir / ".test" / "results" / "demo", tmp_path / "ukb")
    write_tsv(ukb_samples(layout["bulk"]), tmp_path / "samples.tsv")
    results = tmp_path / "results"
    config = tiny_config
    config["results"] = str(results)
    config["simulate"]["enabled"] = False
    config["inputs"] = {"samples": str(tmp_path / "samples.tsv"), "covariates": str(layout["covariates"]),
                        "genotypes": str(layout["bgen"]).removesuffix(".bgen"),
                        "genotype_samples": str(layout["sample"]), "known_loci": str(layout["known_loci"]),
                        "genes": str(layout["genes"])}
    config["genotype_qc"].update(ukb_mfi=str(layout["mfi"]), require_info=True)
    config.setdefault("gwas", {})["chromosomes"] = [1, 2]
    # 40 subjects: the permuted null's min-P λ is noise at this size (tests/test_joint_stage.py checks it)
    config.setdefault("joint", {})["calibrate"] = False
    path = tmp_path / "ukb.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, configfile=path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]

    selection = SAMPLE_SELECTION.read(results / "genotypes" / "sample_selection.tsv")
    assert len(selection) == 402 and (selection["reason"] == "").sum() == 40
    assert (selection["reason"] == "withdrawn (negative ID)").sum() == 2
    qc = pd.read_csv(results / "genotypes" / "variant_qc.tsv", sep="\t").set_index("chromosome")
    # the mfi's badly imputed records are removed by INFO; soft dosages are no missing calls
    assert qc.at["all", "removed_info"] > 0 and qc.at["all", "removed_call_rate"] == 0
    pvar = pd.read_csv(results / "genotypes" / "chr1.pvar", sep="\t", dtype=str)
    assert pvar["ID"].is_unique and set(pvar["#CHROM"]) == {"1"}

    # the workflow's GWAS (the tiny config's torch engine) equals plink2 --glm on the same subset and variants
    reference = plink2_gwas(results / "genotypes" / "chr1", results / "pheno" / "pheno.tsv",
                            results / "pheno" / "covar.tsv", tmp_path / "plink2",
                            extract=results / "genotypes" / "variants_pass.txt")
    for expected_path in reference[:3]:
        expected = read_sumstats(expected_path).set_index("variant_id")
        ours = read_sumstats(results / "gwas" / "sumstats" / expected_path.name).set_index("variant_id")
        ours = ours.loc[expected.index]
        assert len(expected) > 1000 and (ours["effect_allele"] == expected["effect_allele"]).all()
        np.testing.assert_allclose(ours["beta"], expected["beta"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(ours["p_value"], expected["p_value"], rtol=1e-3, atol=1e-8)
