"""A study laid out as UK Biobank ships it, run by the workflow on config changes only."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.sumstats import read_sumstats
from vitudip.imaging.ukb import ukb_samples
from vitudip.io.atomic import write_tsv
from vitudip.io.stage_tables import LOCI_MERGED, SAMPLE_SELECTION, TRUTH_LOCI
from vitudip.loci.annotate import truth_recovery
from vitudip.simulate.settings import COHORT_FILES
from vitudip.simulate.ukb_layout import write_ukb_layout

from tiny_study import snakemake

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")]

# imaged subjects: 40 (the tiny study) find no planted locus; 300 find both with the PCA embedding
N_IMAGED = 300


def _simulated_cohort(config: dict, tmp_path) -> dict:
    """The tiny config's simulated cohort at N_IMAGED subjects, written by the workflow's own rule."""
    cohort = tmp_path / "cohort"
    config["results"] = str(tmp_path / "simulation")
    config["simulate"].update(outdir=str(cohort), n_subjects=N_IMAGED)
    config["inputs"] = {key: str(cohort / "geno") if key == "genotypes" else str(cohort / f"{key}.tsv")
                        for key in config["inputs"]}
    path = tmp_path / "simulate.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, str(cohort / COHORT_FILES["truth_loci"]), configfile=path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return write_ukb_layout(cohort, tmp_path / "ukb")


@pytest.mark.slow
def test_a_uk_biobank_shaped_study_runs_on_config_changes_only(tiny_config, tmp_path):
    """Per-chromosome 8-bit BGENs of 10x more genotyped participants than imaged ones, withdrawn negative IDs,
    split multi-allelic records under one rsID, "01" chromosome codes, mfi tables, a .sample named apart,
    field-31 sex and field-54 centres, bulk <eid>_20252_2_0 folders: the planted loci are found, and the GWAS
    equals plink2 --glm on the same subset."""
    layout = _simulated_cohort(copy.deepcopy(tiny_config), tmp_path)
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
    # the PCA embedding needs no training: a minute for the whole study on two cores
    config["embed"]["method"] = "pca"
    # the stability check retrains the ViT
    config["stability"] = {"enabled": False}
    path = tmp_path / "ukb.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, configfile=path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]

    selection = SAMPLE_SELECTION.read(results / "genotypes" / "sample_selection.tsv")
    assert len(selection) == 10 * N_IMAGED + 2 and (selection["reason"] == "").sum() == N_IMAGED
    assert (selection["reason"] == "withdrawn (negative ID)").sum() == 2
    qc = pd.read_csv(results / "genotypes" / "variant_qc.tsv", sep="\t").set_index("chromosome")
    # the mfi's badly imputed records are skipped before decoding (counted on a ## line of the .pvar), so QC's
    # INFO filter finds none left; soft dosages are no missing calls
    header = [line for line in (results / "genotypes" / "chr1.pvar").read_text().splitlines() if line[:2] == "##"]
    assert len(header) == 1 and int(header[0].split("=")[1].split()[0]) > 0, header
    assert qc.at["all", "removed_info"] == 0 and qc.at["all", "removed_call_rate"] == 0
    pvar = pd.read_csv(results / "genotypes" / "chr1.pvar", sep="\t", dtype=str, skiprows=1)
    assert pvar["ID"].is_unique and set(pvar["#CHROM"]) == {"1"}

    # both planted loci, and no other, from the layout's truth (variant positions as simulated)
    truth = TRUTH_LOCI.read(layout["truth"] / "loci.tsv")
    merged = LOCI_MERGED.read(results / "loci" / "loci_merged.tsv")
    recovery, summary = truth_recovery(truth, merged)
    assert recovery["found"].all(), recovery
    assert summary.at[0, "false_loci"] == 0, merged

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
