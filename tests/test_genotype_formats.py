"""Genotype formats (PLINK 1, PLINK 2, BGEN 1.2), the conversion for the torch engine, and dimension-batch shards."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.config import stage_config
from vitudip.genetics.gather import gather_sumstats
from vitudip.genetics.genotypes import GenotypeFiles, find_genotypes
from vitudip.genetics.linear import linear_gwas
from vitudip.genetics.plink2 import glm_command, plink2_gwas
from vitudip.genetics.regenie import parse_regenie, prune_step1_variants, step2_command
from vitudip.genetics.settings import ShardSettings
from vitudip.genetics.shard import gwas_shard, phenotype_batch
from vitudip.genetics.sumstats import read_sumstats
from vitudip.io.plink import write_bed
from vitudip.simulate.genotypes import simulate_genotypes

needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N_SAMPLES = 300
PHENOTYPES = [f"udip_{i:03d}" for i in range(5)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A PLINK 1 fileset on two chromosomes, its PLINK 2 and BGEN copies (made by plink2), and tables."""
    folder = tmp_path_factory.mktemp("formats")
    genotypes = simulate_genotypes(N_SAMPLES, [1, 2], 400_000, seed=5, progress=False)
    ids = [f"s{i:03d}" for i in range(N_SAMPLES)]
    bed = folder / "geno"
    write_bed(bed, genotypes.dosages, genotypes.variants, ids)
    rng = np.random.default_rng(1)
    pheno = pd.DataFrame({"FID": ids, "IID": ids})
    for name in PHENOTYPES:
        pheno[name] = 0.4 * genotypes.dosages[:, 7] + rng.normal(size=N_SAMPLES)
    pheno.loc[rng.random(N_SAMPLES) < 0.1, PHENOTYPES[-1]] = np.nan
    covar = pd.DataFrame({"FID": ids, "IID": ids, "age": rng.uniform(40, 80, N_SAMPLES)})
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="NA")
    covar.to_csv(folder / "covar.tsv", sep="\t", index=False)
    out = {"folder": folder, "bed": bed, "pheno": folder / "pheno.tsv", "covar": folder / "covar.tsv",
           "dosages": genotypes.dosages}
    if shutil.which("plink2"):
        for name, flags in {"pgen": ["--make-pgen"], "bgen": ["--export", "bgen-1.2", "bits=8", "ref-first"]}.items():
            subprocess.run(["plink2", "--bfile", str(bed), *flags, "--out", str(folder / name)],
                           check=True, capture_output=True)
            out[name] = folder / name
    return out


def _read_dir(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name.removesuffix(".tsv.gz"): read_sumstats(p) for p in sorted(folder.glob("*.tsv.gz"))}


def test_find_genotypes_prefers_pgen_and_names_missing_files(tmp_path: Path) -> None:
    for ext in (".bed", ".bim", ".fam", ".pgen", ".pvar", ".psam"):
        (tmp_path / f"g{ext}").touch()
    assert find_genotypes(tmp_path / "g").format == "pgen"
    (tmp_path / "b.bgen").touch()
    with pytest.raises(FileNotFoundError, match=r"not found: .*b\.sample; .*b\.bgen needs its Oxford \.sample file"
                                                r": at .*b\.sample, or named by inputs\.genotype_samples"):
        find_genotypes(tmp_path / "b")
    assert GenotypeFiles("x", "bgen").plink2_args() == ["--bgen", "x.bgen", "ref-first", "--sample", "x.sample"]
    assert GenotypeFiles("x", "pgen").regenie_args() == ["--pgen", "x"]


def test_sample_file_is_read_as_fid_iid(tmp_path: Path) -> None:
    (tmp_path / "g.bgen").touch()
    (tmp_path / "g.sample").write_text("ID_1 ID_2 missing sex\n0 0 0 D\nf1 a 0 1\nf2 b 0 2\n")
    samples = find_genotypes(tmp_path / "g").samples()
    assert samples.to_dict("list") == {"FID": ["f1", "f2"], "IID": ["a", "b"]}
    (tmp_path / "g.sample").write_text("FID IID\nf1 a\n")
    with pytest.raises(ValueError, match=r"g\.sample is not an Oxford \.sample file"):
        find_genotypes(tmp_path / "g").samples()


@pytest.fixture(scope="module")
def bed_results(cohort: dict) -> dict[str, pd.DataFrame]:
    return _read_dir(Path(plink2_gwas(cohort["bed"], cohort["pheno"], cohort["covar"],
                                      cohort["folder"] / "from_bed")[0]).parent)


@needs_plink2
@pytest.mark.parametrize("fmt", ["pgen", "bgen"])
def test_plink2_engine_reads_every_format_alike(
    cohort: dict, bed_results: dict[str, pd.DataFrame], fmt: str, tmp_path: Path
) -> None:
    reference = bed_results
    plink2_gwas(cohort[fmt], cohort["pheno"], cohort["covar"], tmp_path / fmt, chromosomes=[2])
    ours = _read_dir(tmp_path / fmt)
    assert sorted(ours) == PHENOTYPES
    for name in PHENOTYPES:
        expected = reference[name].loc[reference[name]["chromosome"] == 2].reset_index(drop=True)
        pd.testing.assert_series_equal(ours[name]["variant_id"], expected["variant_id"])
        pd.testing.assert_series_equal(ours[name]["effect_allele"], expected["effect_allele"])
        np.testing.assert_allclose(ours[name]["beta"], expected["beta"], rtol=1e-4)


@needs_plink2
@pytest.mark.parametrize("fmt", ["pgen", "bgen"])
def test_torch_engine_reads_every_format_alike(cohort: dict, fmt: str, tmp_path: Path) -> None:
    """Hard calls read from the PLINK 2 or BGEN copy give the very files of the .bed, with no PLINK 1 copy made."""
    common = dict(chromosomes=[2], block_size=100, device="cpu", progress=False)
    ours = _read_dir(Path(linear_gwas(cohort[fmt], cohort["pheno"], cohort["covar"], tmp_path / fmt,
                                      **common)[0]).parent)
    reference = _read_dir(Path(linear_gwas(cohort["bed"], cohort["pheno"], cohort["covar"], tmp_path / "bed",
                                           **common)[0]).parent)
    assert sorted(ours) == PHENOTYPES
    for name in PHENOTYPES:
        pd.testing.assert_frame_equal(ours[name], reference[name])
    assert not list(cohort["folder"].glob(f"{fmt}*.bed"))


def test_regenie_bgen_report_needs_no_variant_table(tmp_path: Path) -> None:
    path = tmp_path / "s2_p.regenie.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ INFO N TEST BETA SE CHISQ LOG10P EXTRA\n"
                     "01 100 rs1 C A 0.2 0.9 500 ADD 0.5 0.1 25 6.2 NA\n")
    frame = parse_regenie(path, None)
    assert frame[["chromosome", "effect_allele", "other_allele"]].iloc[0].tolist() == ["01", "A", "C"]
    assert frame["beta"].iloc[0] == 0.5


def test_regenie_step2_selects_the_shards_phenotypes() -> None:
    command = step2_command("regenie", GenotypeFiles("g", "bgen"), "p", "c", "s1_pred.list", "s2", 1,
                            phenotypes=["udip_000", "udip_001"])
    assert command[3:8] == ["--bgen", "g.bgen", "--sample", "g.sample", "--ref-first"]
    assert command[command.index("--phenoColList") + 1] == "udip_000,udip_001"


@needs_plink2
def test_step1_variants_are_pruned(cohort: dict, tmp_path: Path) -> None:
    kept = prune_step1_variants(cohort["bed"], tmp_path / "pruned", window_kb=500, r2=0.2)
    ids = kept.read_text().split()
    assert 0 < len(ids) < cohort["dosages"].shape[1]
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="passes maf 0.6"):
        prune_step1_variants(cohort["bed"], tmp_path / "none" / "p", maf=0.6)


def test_phenotype_batches_cover_every_dimension_once(cohort: dict) -> None:
    batches = [phenotype_batch(cohort["pheno"], b, 3) for b in range(3)]
    assert [name for batch in batches for name in batch] == PHENOTYPES
    assert [len(b) for b in batches] == [2, 2, 1]
    with pytest.raises(ValueError, match="fewer than gwas.dimension_batches"):
        phenotype_batch(cohort["pheno"], 0, 6)


def shard_settings(**gwas) -> ShardSettings:
    """The shard settings of a config whose ``gwas`` section sets ``gwas`` (the schema's defaults elsewhere)."""
    return ShardSettings.from_config(stage_config({"gwas": gwas}, ShardSettings.CONFIG_KEYS))


@pytest.mark.parametrize("engine", ["torch", pytest.param("plink2", marks=needs_plink2)])
def test_chromosome_by_dimension_shards_gather_to_the_unsharded_run(cohort: dict, engine: str, tmp_path: Path) -> None:
    common = dict(genotype_prefix=cohort["bed"], pheno_path=cohort["pheno"], covar_path=cohort["covar"])
    gwas_shard(shard_settings(engine=engine, device="cpu"), out_dir=tmp_path / "whole", **common)
    shards = []
    for chromosome in (1, 2):
        for batch in range(2):
            shard = tmp_path / "shards" / f"chr{chromosome}" / f"batch{batch}"
            gwas_shard(shard_settings(engine=engine, device="cpu", dimension_batches=2), out_dir=shard,
                       chromosomes=[chromosome], batch=batch, **common)
            shards.append(shard)
    gather_sumstats(shards, tmp_path / "gathered", tmp_path / "lambda.tsv", tmp_path / "qq.png")
    whole, gathered = _read_dir(tmp_path / "whole"), _read_dir(tmp_path / "gathered")
    assert sorted(gathered) == PHENOTYPES
    for name in PHENOTYPES:
        pd.testing.assert_frame_equal(gathered[name], whole[name])
    # a shard that lost a dimension is named
    (shards[3] / f"{PHENOTYPES[-1]}.tsv.gz").unlink()
    with pytest.raises(ValueError, match=f"{PHENOTYPES[-1]} is in 1 shard.* but .* 2"):
        gather_sumstats(shards, tmp_path / "again", tmp_path / "l2.tsv", tmp_path / "q2.png")


def test_plink2_gets_the_jobs_memory_not_half_the_node() -> None:
    command = glm_command("plink2", GenotypeFiles("g", "pgen"), Path("p.tsv"), "c.tsv", Path("out"), 4, [22],
                          memory_mb=3200)
    assert command[1:3] == ["--pfile", "g"]
    assert command[command.index("--memory") + 1] == "3200" and command[-2:] == ["--out", "out"]
    assert "--memory" not in glm_command("plink2", GenotypeFiles("g", "bed"), Path("p"), "c", Path("o"), 1, None)
