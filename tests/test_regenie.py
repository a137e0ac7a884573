"""The regenie engine without regenie: command lines, output parsing, and the flow with a fake binary."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.config import stage_config
from vitudip.external_tools import ToolError
from vitudip.genetics.genotypes import GenotypeFiles
from vitudip.genetics.regenie import (
    parse_regenie,
    regenie_gwas,
    regenie_step1,
    step1_command,
    step2_command,
)
from vitudip.genetics.settings import ShardSettings
from vitudip.genetics.shard import gwas_shard
from vitudip.genetics.sumstats import SMALLEST_P, SUMSTATS_COLUMNS, read_sumstats
from vitudip.io.plink import write_bed

G = GenotypeFiles("g", "bed")

BIM = pd.DataFrame(
    {"chrom": ["1", "1", "2"], "id": ["rs1", "rs2", "rs3"], "cm": 0.0, "pos": [100, 200, 50],
     "alt": ["A", "G", "T"], "ref": ["C", "T", "C"]}
)

# rs2 is tested on its REF (T); the DOM row must be dropped; rs3's LOG10P is beyond the double range.
REGENIE_TEXT = """\
CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ INFO N TEST BETA SE CHISQ LOG10P EXTRA
1 100 rs1 C A 0.2 1 500 ADD 0.5 0.1 25 6.2 NA
1 200 rs2 G T 0.7 1 498 ADD 0.25 0.05 25 1.5 NA
1 200 rs2 G T 0.7 1 498 DOM 9 9 9 9 NA
2 50 rs3 C T 0.4 1 500 ADD -2 0.05 1600 400 NA
"""


def _gzip(path: Path, text: str) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    return path


def _without_info(text: str) -> str:
    """The same table without its INFO column (regenie omits it for hard-called genotypes)."""
    return "".join(" ".join(f for i, f in enumerate(line.split(" ")) if i != 6) for line in text.splitlines(True))


def test_step1_command_defaults() -> None:
    assert step1_command("regenie", G, "p.tsv", "c.tsv", "w/s1", "w/tmp", 4) == [
        "regenie", "--step", "1", "--bed", "g", "--phenoFile", "p.tsv", "--covarFile", "c.tsv", "--qt",
        "--bsize", "1000", "--par-region", "b37", "--lowmem", "--lowmem-prefix", "w/tmp", "--threads", "4", "--gz",
        "--out", "w/s1",
    ]


def test_step1_command_with_options() -> None:
    command = step1_command(
        "regenie", G, "p.tsv", "c.tsv", "w/s1", "w/tmp", 2, bsize=500, apply_rint=True, extract="pruned.txt",
        par_region="b38",
    )
    assert command == [
        "regenie", "--step", "1", "--bed", "g", "--phenoFile", "p.tsv", "--covarFile", "c.tsv", "--qt",
        "--apply-rint", "--extract", "pruned.txt",
        "--bsize", "500", "--par-region", "b38", "--lowmem", "--lowmem-prefix", "w/tmp", "--threads", "2", "--gz",
        "--out", "w/s1",
    ]


def test_step2_command_defaults() -> None:
    assert step2_command("regenie", G, "p.tsv", "c.tsv", "w/s1_pred.list", "w/s2", 4) == [
        "regenie", "--step", "2", "--bed", "g", "--phenoFile", "p.tsv", "--covarFile", "c.tsv", "--qt",
        "--pred", "w/s1_pred.list", "--bsize", "400", "--minMAC", "5", "--par-region", "b37",
        "--threads", "4", "--gz", "--out", "w/s2",
    ]


def test_step2_command_with_chromosomes() -> None:
    command = step2_command(
        "regenie", G, "p.tsv", "c.tsv", "s1_pred.list", "s2", 1, bsize=200, min_mac=10, chromosomes=[1, "X"]
    )
    assert command == [
        "regenie", "--step", "2", "--bed", "g", "--phenoFile", "p.tsv", "--covarFile", "c.tsv", "--qt",
        "--pred", "s1_pred.list", "--bsize", "200", "--minMAC", "10", "--par-region", "b37", "--chr", "1", "--chr", "X",
        "--threads", "1", "--gz", "--out", "s2",
    ]


@pytest.mark.parametrize("with_info", [True, False])
def test_parse_regenie_orients_to_alt(tmp_path: Path, with_info: bool) -> None:
    text = REGENIE_TEXT if with_info else _without_info(REGENIE_TEXT)
    frame = parse_regenie(_gzip(tmp_path / "s2_p1.regenie.gz", text), BIM)
    assert list(frame.columns) == SUMSTATS_COLUMNS
    assert frame["variant_id"].tolist() == ["rs1", "rs2", "rs3"]  # the DOM row is gone
    assert frame["effect_allele"].tolist() == ["A", "G", "T"]
    assert frame["other_allele"].tolist() == ["C", "T", "C"]
    np.testing.assert_allclose(frame["beta"], [0.5, -0.25, -2.0])
    np.testing.assert_allclose(frame["effect_allele_frequency"], [0.2, 0.3, 0.4])
    np.testing.assert_allclose(frame["standard_error"], [0.1, 0.05, 0.05])
    np.testing.assert_allclose(frame["p_value"][:2], [10**-6.2, 10**-1.5])
    assert frame["p_value"][2] == SMALLEST_P
    assert frame["n"].tolist() == [500, 498, 500]
    assert frame["base_pair_location"].tolist() == [100, 200, 50]


def test_parse_regenie_missing_column_names_file(tmp_path: Path) -> None:
    path = _gzip(tmp_path / "broken.regenie.gz", REGENIE_TEXT.replace("LOG10P", "PVAL"))
    with pytest.raises(ValueError, match=r"broken\.regenie\.gz.*LOG10P"):
        parse_regenie(path, BIM)


def test_parse_regenie_rejects_unknown_allele(tmp_path: Path) -> None:
    path = _gzip(tmp_path / "s2.regenie.gz", REGENIE_TEXT.replace("1 100 rs1 C A", "1 100 rs1 C G"))
    with pytest.raises(ValueError, match="neither REF nor ALT"):
        parse_regenie(path, BIM)


@pytest.fixture()
def cohort(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A 40-sample fileset with BIM's variants, two phenotypes (one value missing) and two covariates."""
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(40)]
    prefix = tmp_path / "geno"
    write_bed(prefix, rng.integers(0, 3, size=(40, 3)).astype(np.int8), BIM, ids)
    pheno = pd.DataFrame({"FID": ids, "IID": ids, "p1": rng.normal(size=40), "p2": rng.normal(size=40)})
    pheno.loc[3, "p2"] = np.nan
    covar = pd.DataFrame({"FID": ids, "IID": ids, "age": rng.uniform(40, 80, 40), "pc1": rng.normal(size=40)})
    pheno.to_csv(tmp_path / "pheno.tsv", sep="\t", index=False, na_rep="")
    covar.to_csv(tmp_path / "covar.tsv", sep="\t", index=False)
    return prefix, tmp_path / "pheno.tsv", tmp_path / "covar.tsv"


def _fake_regenie(folder: Path, fail: bool = False) -> None:
    """A `regenie` shell script that records its arguments and writes canned step 1 / step 2 outputs."""
    folder.mkdir()
    failure = "echo 'ERROR: bad covariates' >> \"$out.log\"; exit 1" if fail else ""
    script = f"""#!/bin/sh
step=""; out=""
echo "$@" >> "{folder}/calls.txt"
while [ $# -gt 0 ]; do
  case "$1" in --step) step="$2";; --out) out="$2";; esac
  shift
done
echo "fake regenie step $step" > "$out.log"
{failure}
if [ "$step" = 1 ]; then
  echo "p1 ${{out}}_1.loco.gz" > "${{out}}_pred.list"
else
  for pheno in p1 p2; do
    cat <<'EOF' | gzip -c > "${{out}}_$pheno.regenie.gz"
{REGENIE_TEXT}EOF
  done
fi
"""
    path = folder / "regenie"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _path_with(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Put ``folder`` first on PATH, keeping the system tools (sh, gzip) reachable."""
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")


def test_regenie_gwas_without_binary_says_how_to_install(
    cohort: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolError, match=r"envs/regenie\.yaml"):
        regenie_gwas(*cohort, tmp_path / "out", tmp_path / "work")


def test_regenie_gwas_flow_with_fake_binary(
    cohort: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_regenie(tmp_path / "bin")
    _path_with(monkeypatch, tmp_path / "bin")
    written = regenie_gwas(*cohort, tmp_path / "out", tmp_path / "work", threads=3, chromosomes=[2])
    assert written == [tmp_path / "out" / "p1.tsv.gz", tmp_path / "out" / "p2.tsv.gz"]
    for path in written:
        frame = read_sumstats(path)
        assert frame["variant_id"].tolist() == ["rs1", "rs2", "rs3"]
        np.testing.assert_allclose(frame["beta"], [0.5, -0.25, -2.0])
        assert frame["p_value"][2] == SMALLEST_P
    calls = (tmp_path / "bin" / "calls.txt").read_text().splitlines()
    work = tmp_path / "work"
    assert calls[0].startswith(f"--step 1 --bed {cohort[0]} --phenoFile {work / 'pheno.tsv'}")
    assert f"--pred {work / 'step1'}_pred.list" in calls[1] and "--chr 2 --threads 3" in calls[1]


def test_regenie_gwas_failure_quotes_the_log(
    cohort: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_regenie(tmp_path / "bin", fail=True)
    _path_with(monkeypatch, tmp_path / "bin")
    with pytest.raises(ToolError, match="bad covariates"):
        regenie_gwas(*cohort, tmp_path / "out", tmp_path / "work")


def test_workflow_steps_run_step1_once_and_step2_per_dimension_batch(
    cohort: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_regenie(tmp_path / "bin")
    _path_with(monkeypatch, tmp_path / "bin")
    pred_list = regenie_step1(*cohort, tmp_path / "step1", threads=2, extract=tmp_path / "pruned.in")
    assert pred_list == tmp_path / "step1" / "step1_pred.list" and pred_list.is_file()
    settings = ShardSettings.from_config(stage_config(
        {"gwas": {"engine": "regenie", "dimension_batches": 2, "regenie": {"min_mac": 10}}}, ShardSettings.CONFIG_KEYS))
    written = gwas_shard(settings, *cohort, tmp_path / "shard", chromosomes=["1"], batch=1, pred_list=pred_list)
    assert written == [tmp_path / "shard" / "p2.tsv.gz"]
    assert sorted(p.name for p in (tmp_path / "shard").iterdir()) == ["p2.tsv.gz"]  # regenie's files are gone
    step1, step2 = (tmp_path / "bin" / "calls.txt").read_text().splitlines()
    assert f"--extract {tmp_path / 'pruned.in'}" in step1
    assert "--phenoColList p2" in step2 and "--minMAC 10" in step2 and "--chr 1" in step2
    with pytest.raises(ValueError, match="needs step 1's prediction list"):
        gwas_shard(settings, *cohort, tmp_path / "other")
