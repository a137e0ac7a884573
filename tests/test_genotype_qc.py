"""The genotype QC: what each filter removes and counts, relatives, keep lists, INFO sources, bad input."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.config import stage_config
from vitudip.external_tools import ToolError
from vitudip.genetics.genotype_qc import genotype_qc
from vitudip.genetics.genotypes import find_genotypes
from vitudip.genetics.linear import linear_gwas
from vitudip.genetics.pheno import plink2_pcs, prepare_phenotypes
from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.prepare import prepare_chromosome, select_samples
from vitudip.genetics.regenie import step2_command
from vitudip.genetics.settings import PhenoSettings, QcSettings
from vitudip.genetics.sumstats import read_sumstats
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.plink import read_bed, write_bed
from vitudip.io.stage_tables import SAMPLE_QC, VARIANT_QC, udip_table
from vitudip.simulate.genotypes import simulate_genotypes

pytestmark = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N = 300
RELATIVE = "dup_s0000"  # a copy of s0000's genotypes under a new IID


def _settings(**changes) -> QcSettings:
    """The schema's defaults, then ``changes``; relatedness at the duplicate level from variants pruned at r² 0.5
    (the genome is 2 Mb: at 0.1 too few are left for KING to tell unrelated pairs from duplicates)."""
    defaults = QcSettings.from_config(stage_config({"genotype_qc": {}}, ["genotype_qc"]))
    return replace(defaults, **{"king_cutoff": 0.354, "pruning": {**defaults.pruning, "r2": 0.5}, **changes})


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """300 simulated samples plus a duplicate; one variant with 10 % missing calls, one far out of HWE."""
    folder = tmp_path_factory.mktemp("qc")
    genotypes = simulate_genotypes(N, [1, 2], 1_000_000, seed=5, progress=False)
    dosages = genotypes.dosages.astype(np.int8).copy()
    variants = genotypes.variants.reset_index(drop=True)
    common = np.flatnonzero(variants["maf"].to_numpy() > 0.3)
    on = {c: common[variants["chrom"].to_numpy()[common] == c] for c in (1, 2)}
    missing_variant, hwe_variant = int(on[2][0]), int(on[1][-1])
    dosages[: N // 10, missing_variant] = -1
    # homozygotes only, half and half: p of the exact HWE test far below 1e-7
    dosages[:, hwe_variant] = np.where(np.arange(N) < N // 2, 0, 2)
    ids = [f"s{i:04d}" for i in range(N)]
    prefix = folder / "geno"
    write_bed(prefix, np.vstack([dosages, dosages[:1]]), variants, [*ids, RELATIVE])
    return {"folder": folder, "prefix": prefix, "variants": variants, "ids": [*ids, RELATIVE],
            "missing": variants.at[missing_variant, "id"], "hwe": variants.at[hwe_variant, "id"]}


def _run(cohort: dict, folder: Path, settings: QcSettings | None = None, prefix: Path | None = None,
         keep: Path | None = None) -> dict:
    """The genotypes stage as the workflow runs it: the sample selection, each chromosome's fileset, the QC."""
    genotypes = GenotypeInput(str(prefix or cohort["prefix"]))
    selection = folder / "sample_selection.tsv"
    select_samples(genotypes, "1", set(cohort["ids"]), None if keep is None else str(keep), selection)
    chromosomes = [folder / f"chr{c}" for c in ("1", "2")]
    for chromosome, chromosome_prefix in zip(("1", "2"), chromosomes):
        prepare_chromosome(genotypes, chromosome, selection, chromosome_prefix)
    out = {"samples": folder / "sample_qc.tsv", "variants": folder / "variant_qc.tsv",
           "passing": folder / "variants_pass.txt", "pruned": folder / "pruned"}
    genotype_qc(chromosomes, selection, settings or _settings(), out)
    return {"samples": SAMPLE_QC.read(out["samples"]), "variants": VARIANT_QC.read(out["variants"]).set_index(
        "chromosome"), "passing": out["passing"].read_text().split(), "passing_path": out["passing"],
            "samples_path": out["samples"], "pruned": out["pruned"], "folder": folder}


@pytest.fixture(scope="module")
def result(cohort: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run(cohort, tmp_path_factory.mktemp("qc_out"))


def test_each_filter_removes_its_variant_and_counts_it_on_its_chromosome(cohort, result):
    table, passing = result["variants"], set(result["passing"])
    assert cohort["missing"] not in passing and cohort["hwe"] not in passing
    assert table.at["2", "removed_call_rate"] == 1 and table.at["1", "removed_call_rate"] == 0
    assert table.at["1", "removed_hwe"] >= 1
    # each filter counts what it newly removes: the rows add up
    removed = table[[c for c in table.columns if c.startswith("removed_")]].sum(axis=1)
    assert (table["variants"] - removed == table["passing"]).all()
    assert table.loc["all", "passing"] == len(passing) == table.loc[["1", "2"], "passing"].sum()
    # simulated hard calls of MAF >= 0.01 without INFO: no INFO filter, HWE only where planted and by chance
    assert table.at["all", "removed_info"] == 0 and table.at["all", "removed_hwe"] <= 3


def test_a_duplicated_subject_loses_one_member_naming_the_other(result):
    samples = result["samples"].set_index("IID")
    dropped = samples[samples["status"] != "ok"]
    assert len(dropped) == 1
    iid = dropped.index[0]
    other = "s0000" if iid == RELATIVE else RELATIVE
    assert dropped.at[iid, "status"] == "related" and dropped.at[iid, "reason"].startswith("related (KING kinship 0.5")
    assert dropped.at[iid, "reason"].endswith(f"to {other}")


def test_low_call_rate_samples_and_the_keep_list_are_excluded_with_their_reason(cohort, tmp_path):
    prefix = tmp_path / "geno"
    dosages = read_bed(cohort["prefix"]).astype(np.int8)
    dosages[5, : int(0.09 * dosages.shape[1])] = -1  # s0005: call rate 0.91
    write_bed(prefix, dosages, cohort["variants"], cohort["ids"])
    keep = tmp_path / "keep.txt"
    keep.write_text("\n".join([*cohort["ids"][:200], "not_a_sample"]) + "\n")
    samples = _run(cohort, tmp_path, prefix=prefix, keep=keep)["samples"].set_index("IID")
    # over the passing variants, a few of the missing ones among them
    assert re.fullmatch(r"genotype call rate 0\.9\d* < 0\.95", samples.at["s0005", "reason"])
    assert samples.at["s0250", "reason"] == f"not in keep list {keep}"
    assert (samples["status"] == "ok").sum() == 199


def test_a_keep_list_matching_no_sample_is_refused_naming_it(cohort, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("1000001\n1000002\n")
    with pytest.raises(ValueError, match=rf"keep list {keep}: none of its 2 IIDs is a genotype sample"):
        _run(cohort, tmp_path, keep=keep)


def test_a_keep_list_with_unknown_ids_warns_with_the_count(cohort, tmp_path, caplog):
    keep = tmp_path / "keep.txt"
    keep.write_text("\n".join([*cohort["ids"][:200], "x1", "x2", "x3"]) + "\n")
    _run(cohort, tmp_path, keep=keep)
    assert "3 of its 203 IIDs match no genotype sample" in caplog.text


def _pgen(cohort: dict, folder: Path, info: list[str] | None) -> Path:
    """A PLINK 2 copy of the cohort, its .pvar given an INFO column when ``info`` is set."""
    prefix = folder / "geno"
    subprocess.run(["plink2", "--bfile", str(cohort["prefix"]), "--make-pgen", "--out", str(prefix)], check=True,
                   capture_output=True)
    if info is not None:
        pvar = pd.read_csv(f"{prefix}.pvar", sep="\t", comment=None, dtype=str)
        pvar["INFO"] = info
        pvar.to_csv(f"{prefix}.pvar", sep="\t", index=False)
    return prefix


def test_info_from_the_pvar_removes_badly_imputed_variants(cohort, tmp_path):
    ids = cohort["variants"]["id"]
    # minimac's R2 on the first three variants, IMPUTE's INFO on the rest; two are below 0.3
    info = [f"IMP;R2={r}" for r in (0.1, 0.95, 0.2)] + ["INFO=0.9"] * (len(ids) - 3)
    result = _run(cohort, tmp_path, prefix=_pgen(cohort, tmp_path, info))
    assert result["variants"].at["all", "removed_info"] == 2
    assert ids[0] not in result["passing"] and ids[2] not in result["passing"] and ids[1] in result["passing"]


def test_a_required_info_without_an_info_column_is_refused_naming_the_pvar(cohort, tmp_path):
    prefix = _pgen(cohort, tmp_path, None)
    chromosome = tmp_path / "chr1"  # the analysed samples' fileset made from it
    with pytest.raises(ValueError, match=rf"require_info is true but {chromosome}.pvar carries no imputation INFO"):
        _run(cohort, tmp_path, _settings(require_info=True), prefix=prefix)


def test_info_from_ukb_mfi_tables(cohort, tmp_path):
    variants = cohort["variants"]
    for chrom, group in variants.groupby("chrom"):
        info = np.where(group.index == 1, 0.25, 0.9)  # the second variant is badly imputed
        # the mfi's allele order need not be REF first
        mfi = pd.DataFrame({"alt_id": group["id"], "rsid": group["id"], "pos": group["pos"], "a1": group["alt"],
                            "a2": group["ref"], "maf": 0.1, "minor": group["alt"], "info": info})
        mfi.to_csv(tmp_path / f"ukb_mfi_chr{chrom}_v3.txt", sep="\t", header=False, index=False)
    pattern = str(tmp_path / "ukb_mfi_chr{chromosome}_v3.txt")
    result = _run(cohort, tmp_path, _settings(ukb_mfi=pattern, require_info=True))
    assert result["variants"].at["all", "removed_info"] == 1 and variants.at[1, "id"] not in result["passing"]


def test_repeated_and_missing_variant_ids_get_unique_keys_and_are_filtered_as_usual(cohort, tmp_path):
    prefix = tmp_path / "geno"
    for ext in ("bed", "fam"):
        shutil.copy(f"{cohort['prefix']}.{ext}", f"{prefix}.{ext}")
    bim = pd.read_csv(f"{cohort['prefix']}.bim", sep="\t", header=None, dtype=str)
    bim.iat[3, 1] = bim.iat[2, 1]  # a multi-allelic site split in two records under one rsID
    bim.iat[5, 1] = "."
    bim.to_csv(f"{prefix}.bim", sep="\t", header=False, index=False)
    result = _run(cohort, tmp_path, prefix=prefix)
    ids = pd.read_csv(tmp_path / "chr1.pvar", sep="\t", dtype=str)["ID"]
    keys = [f"{row[0]}:{row[3]}_{row[5]}_{row[4]}" for row in bim.iloc[[2, 3, 5]].itertuples(index=False)]
    assert list(ids.iloc[[2, 3, 5]]) == keys and ids.is_unique
    # then filtered by the usual rules like any variant (most of the simulated ones pass), never by the old ID
    assert sum(key in result["passing"] for key in keys) >= 2 and bim.iat[2, 1] not in result["passing"]


# --------------------------------------------------------------------------- what the engines and pheno see


def _tables(cohort: dict, folder: Path) -> dict[str, Path]:
    """UDIPs (4 dimensions), covariates and image QC of every genotype sample."""
    rng = np.random.default_rng(0)
    ids = cohort["ids"]
    paths = {name: folder / f"{name}.tsv" for name in ("udips", "covariates", "qc")}
    udip_table(ids, rng.normal(size=(len(ids), 4))).to_csv(paths["udips"], sep="\t", index=False)
    pd.DataFrame({"IID": ids, "age": rng.uniform(45, 80, len(ids)), "sex": rng.integers(0, 2, len(ids))}).to_csv(
        paths["covariates"], sep="\t", index=False)
    pd.DataFrame({"subject_id": ids, "status": "ok", "reason": ""}).to_csv(paths["qc"], sep="\t", index=False)
    return paths


def _pheno(cohort: dict, result: dict, folder: Path, keep_related: bool, **pheno) -> tuple[Path, Path, pd.DataFrame]:
    paths = _tables(cohort, folder)
    settings = PhenoSettings.from_config(stage_config({"pheno": {"outlier_sd": None, **pheno}}, ["pheno"]))
    out = {name: folder / f"out_{name}.tsv" for name in ("pheno", "covar", "samples", "exclusions")}
    prepare_phenotypes(paths["udips"], paths["covariates"], result["pruned"], paths["qc"], settings, out,
                       sample_qc_path=result["samples_path"], keep_related=keep_related,
                       variants_path=result["passing_path"])
    return out["pheno"], out["covar"], pd.read_csv(out["exclusions"], sep="\t", dtype=str)


@pytest.mark.parametrize("keep_related", [False, True])
def test_relatives_leave_the_linear_engines_and_stay_for_regenie(cohort, result, keep_related, tmp_path):
    pheno, covar, exclusions = _pheno(cohort, result, tmp_path, keep_related, genetic_pcs=2, pcs_from="plink2")
    analysed = set(pd.read_csv(pheno, sep="\t", dtype=str)["IID"])
    assert len({"s0000", RELATIVE} & analysed) == (2 if keep_related else 1)
    if not keep_related:
        assert len(exclusions) == 1 and exclusions.at[0, "reason"].startswith("related (KING kinship")
    # the PCs are computed without the relative and projected onto it: every analysed sample has them
    pcs = pd.read_csv(covar, sep="\t")[["PC1", "PC2"]]
    assert len(pcs) == len(analysed) and pcs.notna().all().all() and (pcs.std() > 0).all()


def test_every_engine_tests_only_the_passing_variants(cohort, result, tmp_path):
    pheno, covar, _ = _pheno(cohort, result, tmp_path, keep_related=False)
    torch_files = linear_gwas(cohort["prefix"], pheno, covar, tmp_path / "torch", progress=False,
                              extract=result["passing_path"])
    plink2_files = plink2_gwas(cohort["prefix"], pheno, covar, tmp_path / "plink2", extract=result["passing_path"])
    for path in (torch_files[0], plink2_files[0]):
        tested = read_sumstats(path, ["variant_id"])["variant_id"]
        assert len(tested) == len(result["passing"]) and set(tested) == set(result["passing"])
    command = step2_command("regenie", find_genotypes(cohort["prefix"]), pheno, covar, "pred.list", "S2", 1,
                            extract=result["passing_path"])
    assert command[command.index("--extract") + 1] == str(result["passing_path"])


def test_a_plink2_failure_reads_the_same_in_genotype_qc_gwas_and_pheno(cohort, result, tmp_path):
    pheno, covar, _ = _pheno(cohort, result, tmp_path, keep_related=False)
    broken = tmp_path / "broken"
    for ext in ("bim", "fam"):
        shutil.copy(f"{cohort['prefix']}.{ext}", f"{broken}.{ext}")
    bed = Path(f"{cohort['prefix']}.bed").read_bytes()
    Path(f"{broken}.bed").write_bytes(bed[: len(bed) // 2])  # our checks read the .bim and .fam only
    samples = pd.DataFrame({"FID": cohort["ids"], "IID": cohort["ids"]})
    stages = {"genotype QC": lambda: _run(cohort, tmp_path, prefix=broken),
              "plink2 GWAS": lambda: plink2_gwas(broken, pheno, covar, tmp_path / "gwas"),
              "pheno PCs": lambda: plink2_pcs(broken, samples, 2)}
    shape = re.compile(rf"plink2 failed at step '[^']+ on {re.escape(str(broken))}' \(exit code \d+\); "
                       "end of its log:\n")
    quoted = {}
    for stage, run in stages.items():
        with pytest.raises(ToolError) as caught:
            run()
        err = caught.value
        assert shape.match(str(err)), (stage, str(err))
        assert err.tool == "plink2" and err.exit_status > 0
        quoted[stage] = [line for line in err.tail.splitlines() if line.startswith("Error")]
    # each quotes plink2's own error line about the .bed
    assert len(set(map(tuple, quoted.values()))) == 1 and ".bed" in quoted["genotype QC"][0]
