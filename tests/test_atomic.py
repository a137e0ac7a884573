"""Outputs written atomically: all together or none, and nothing a killed writer left behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vitudip.io.atomic import staged_outputs


def test_outputs_appear_together_and_a_failure_leaves_no_trace(tmp_path):
    targets = {"a": tmp_path / "out" / "a.tsv", "b": tmp_path / "out" / "b.tsv"}
    with pytest.raises(RuntimeError):
        with staged_outputs(targets) as staged:
            staged["a"].write_text("a")
            raise RuntimeError("stopped")
    assert list((tmp_path / "out").iterdir()) == []
    with staged_outputs(targets) as staged:
        for path in staged.values():
            path.write_text("x")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tsv", "b.tsv"]


def test_a_killed_writer_s_staging_folder_is_removed_when_the_output_is_written_again(tmp_path):
    target = tmp_path / "sumstats"
    # a writer killed (SIGKILL: no finally runs) while staging
    code = ("import os, sys\nfrom vitudip.io.atomic import staged_outputs\n"
            "with staged_outputs({'s': sys.argv[1]}) as staged:\n"
            "    staged['s'].mkdir(); (staged['s'] / 'big.tsv').write_text('x' * 1000)\n"
            "    os.kill(os.getpid(), 9)\n")
    run = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True)
    assert run.returncode == -9, run.stderr
    left = list(tmp_path.glob(".tmp-sumstats-*"))
    assert len(left) == 1 and (left[0] / "sumstats" / "big.tsv").is_file()
    # another target whose name starts the same is not touched
    other = tmp_path / ".tmp-sumstats-old.tsv-123"
    other.write_text("keep")
    with staged_outputs({"s": target}) as staged:
        staged["s"].mkdir()
    assert target.is_dir() and not left[0].exists() and other.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-sumstats-old.tsv-123", "sumstats"]
