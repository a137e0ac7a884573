"""The one table reader, the stage-file contracts, and which packages a stage may import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.io.stage_tables import QC, SPLITS, passed_subjects, phenotype_names, read_udips, udip_table
from vitudip.io.tables import Table

ROOT = Path(__file__).resolve().parent.parent

SHEET = Table("test sheet", required=("subject_id", "value"), text=("subject_id", "site"), numbers=("value",),
              integers=("count",), unique="subject_id", writer="the test stage")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_declared_columns_get_their_kinds_and_others_are_inferred(tmp_path):
    path = write(tmp_path / "t.tsv", "subject_id\tvalue\tcount\tsite\tother\n007\t1.5\t3\t01\t2.5\n"
                                     "008\tNA\t4\t\tNA\n")
    frame = SHEET.read(path)
    assert list(frame["subject_id"]) == ["007", "008"]  # leading zeros kept
    assert list(frame["site"]) == ["01", ""]  # a missing text cell is "" not NaN
    assert frame["value"].iloc[0] == 1.5 and np.isnan(frame["value"].iloc[1])
    assert frame["count"].dtype == np.int64 and list(frame["count"]) == [3, 4]
    assert frame["other"].dtype == float and np.isnan(frame["other"].iloc[1])


@pytest.mark.parametrize("text_only", [False, True])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, text_only):
    # spreadsheet exports ("UTF-8 CSV") begin with one
    path = tmp_path / "t.tsv"
    path.write_bytes("subject_id\tvalue\tcount\n007\t1.5\t3\n".encode("utf-8-sig"))
    frame = SHEET.read(path, text_only=text_only)
    assert list(frame.columns[:2]) == ["subject_id", "value"] and list(frame["subject_id"]) == ["007"]


@pytest.mark.parametrize("text, message", [
    ("subject_id\tvalue\n1\t2\n2\tabc\n", r"line 3, column value: 'abc' is not a number"),
    ("subject_id\tvalue\tcount\n1\t2\t1.5\n", r"line 2, column count: '1.5' is not a whole number"),
    ("subject_id\tvalue\tcount\n1\t2\t\n", r"line 2, column count: '' is not a whole number"),
    ("subject_id\tvalue\n1\t2\n2\t3\n1\t4\n", r"duplicate subject_id '1' on lines 2 and 4"),
    ("subject_id\tvalue\n1\t2\n\t3\n", r"line 3: empty subject_id"),
    ("subject_id\tscore\n1\t2\n", r"lacks column\(s\) value; available: subject_id, score"),
    ("subject_id,value\n1,2\n", r"is comma-separated; it must be tab-separated"),
    ("", r"is empty"),
])
def test_a_bad_table_is_one_error_naming_file_column_and_line(tmp_path, text, message):
    path = write(tmp_path / "sheet.tsv", text)
    with pytest.raises(ValueError, match=message) as err:
        SHEET.read(path)
    assert str(err.value).startswith(f"test sheet {path}")


def test_a_missing_table_names_what_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"test sheet .*nope.tsv not found: run the test stage first"):
        SHEET.read(tmp_path / "nope.tsv")


def test_empty_tables_are_refused_only_when_asked(tmp_path):
    path = write(tmp_path / "sheet.tsv", "subject_id\tvalue\n")
    assert SHEET.read(path).empty
    with pytest.raises(ValueError, match="is empty: it has a header but no data line"):
        SHEET.read(path, allow_empty=False)


def test_columns_read_only_what_is_asked_and_text_only_keeps_cells(tmp_path):
    path = write(tmp_path / "sheet.tsv", "subject_id\tvalue\tsite\tother\n1\t2\tA\tx\n")
    assert list(SHEET.read(path, columns=["site"]).columns) == ["subject_id", "value", "site"]
    with pytest.raises(ValueError, match=r"lacks column\(s\) nothing"):
        SHEET.read(path, columns=["nothing"])
    assert SHEET.read(path, text_only=True).iloc[0].tolist() == ["1", "2", "A", "x"]


def test_a_writer_cannot_drop_a_required_column(tmp_path):
    with pytest.raises(ValueError, match=r"refusing to write test sheet .* without column\(s\) value"):
        SHEET.write(pd.DataFrame({"subject_id": ["1"]}), tmp_path / "out.tsv")
    assert not (tmp_path / "out.tsv").exists()


def test_stage_tables_round_trip(tmp_path):
    udips = tmp_path / "udips.tsv"
    udip_table(["0012", "0013"], np.array([[1.0, 2.0], [3.0, 4.0]])).to_csv(udips, sep="\t", index=False)
    table = read_udips(udips)
    assert list(table["IID"]) == ["0012", "0013"] and table["udip_001"].tolist() == [2.0, 4.0]
    assert phenotype_names(udips) == ["udip_000", "udip_001"]
    qc = pd.DataFrame({"subject_id": ["a", "b", "c"], "status": ["ok", "excluded", "ok"],
                       "reason": ["", "not brain-extracted", ""], "row": [1, None, 0]})
    QC.write(qc, tmp_path / "qc.tsv")
    SPLITS.write(pd.DataFrame({"subject_id": ["a", "c"], "split": ["train", "val"]}), tmp_path / "splits.tsv")
    passed = passed_subjects(tmp_path / "qc.tsv", tmp_path / "splits.tsv")
    assert passed[["subject_id", "row", "split"]].values.tolist() == [["c", 0, "val"], ["a", 1, "train"]]
    assert list(passed_subjects(tmp_path / "qc.tsv", tmp_path / "splits.tsv", ["train"])["subject_id"]) == ["a"]
    with pytest.raises(ValueError, match="unknown split name"):
        passed_subjects(tmp_path / "qc.tsv", tmp_path / "splits.tsv", ["training"])


BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked: this stage must run without PyTorch")
sys.meta_path.insert(0, NoTorch())
"""


def imported_packages(module: str, block_torch: bool = False) -> set[str]:
    """The vitudip packages (and torch) a fresh interpreter has loaded after importing ``module``."""
    code = ((BLOCK_TORCH if block_torch else "") + f"import sys, {module}\n"
            "names = {n if n == 'torch' else '.'.join(n.split('.')[:2]) for n in sys.modules\n"
            "         if n == 'torch' or n.startswith('vitudip.')}\n"
            "print(' '.join(sorted(names)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return set(run.stdout.split())


@pytest.mark.parametrize("module", ["vitudip.genetics.shard", "vitudip.genetics.pheno", "vitudip.genetics.gather",
                                    "vitudip.genetics.regenie", "vitudip.loci.stage", "vitudip.report.stage"])
def test_genetics_stages_run_without_pytorch(module):
    # torch is made unimportable: a plink2 or REGENIE job must not need it
    assert "torch" not in imported_packages(module, block_torch=True)


@pytest.mark.parametrize("module, forbidden", [
    ("vitudip.embed.vit", {"vitudip.train"}),
    ("vitudip.embed.pca", {"vitudip.train"}),
    ("vitudip.perdi.stage", {"vitudip.train", "vitudip.embed"}),
    ("vitudip.genetics.pheno", {"vitudip.embed"}),
])
def test_stages_do_not_import_each_others_internals(module, forbidden):
    assert not imported_packages(module) & forbidden


@pytest.mark.parametrize("module", ["vitudip.train.settings", "vitudip.perdi.settings"])
def test_stage_settings_load_without_heavy_packages(module):
    # a stage's settings are read where its heavy dependencies are not needed
    code = (f"import sys, {module}\n"
            "print(' '.join(n for n in ('torch', 'nibabel', 'matplotlib') if n in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == []


def test_a_gzipped_sumstats_file_with_a_bad_cell_names_its_line(tmp_path):
    import gzip

    from vitudip.genetics.sumstats import SUMSTATS

    path = tmp_path / "udip_000.tsv.gz"
    rows = "".join(f"1\t{100 + i}\t{'0.5' if i != 3 else 'x'}\n" for i in range(5))
    with gzip.open(path, "wt") as fh:
        fh.write("chromosome\tbase_pair_location\tp_value\n" + rows)
    with pytest.raises(ValueError, match=r"udip_000.tsv.gz line 5, column p_value: 'x' is not a number"):
        SUMSTATS.read(path)


def test_a_space_separated_report_is_read_with_its_separator(tmp_path):
    report = Table("report", required=("ID", "N"), text=("ID",), integers=("N",), sep=" ")
    path = write(tmp_path / "r.regenie", "ID N\nrs1 10\nrs2 11\n")
    assert report.read(path)["N"].tolist() == [10, 11]
