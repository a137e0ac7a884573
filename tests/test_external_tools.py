"""The external-tool runner: a failing fake tool, a missing binary, and the one-line stage error."""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from pathlib import Path

import pytest

from vitudip.cli import run_cli
from vitudip.external_tools import LOG_TAIL_LINES, ToolError, find_tool, run_tool

LOG = logging.getLogger("vitudip.test_tools")


def _fake_tool(folder: Path, lines: int = 30, status: int = 3, log_file: Path | None = None) -> Path:
    """A ``fake-tool`` script printing ``line 1`` .. ``line <lines>`` (to stdout, or to ``log_file``), then exiting."""
    target = f' >> "{log_file}"' if log_file is not None else ""
    path = folder / "fake-tool"
    path.write_text(f"#!/bin/sh\nfor i in $(seq 1 {lines}); do echo \"line $i\"{target}; done\n"
                    f"echo 'console only' >&2\nexit {status}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_failing_tool_raises_one_error_with_tool_step_status_and_log_tail(tmp_path: Path) -> None:
    tool = _fake_tool(tmp_path)
    with pytest.raises(ToolError) as caught:
        run_tool([str(tool), "--x"], "variant QC statistics", LOG)
    err = caught.value
    assert (err.tool, err.step, err.exit_status) == ("fake-tool", "variant QC statistics", 3)
    lines = str(err).splitlines()
    assert lines[0] == "fake-tool failed at step 'variant QC statistics' (exit code 3); end of its log:"
    # stdout then stderr, their last LOG_TAIL_LINES lines, quoted indented
    assert lines[1:] == [f"  line {i}" for i in range(12, 31)] + ["  console only"]
    assert len(lines) == 1 + LOG_TAIL_LINES and "line 11" not in err.tail.splitlines()


def test_the_tail_comes_from_the_tools_own_log_when_it_writes_one(tmp_path: Path) -> None:
    log_file = tmp_path / "out.log"
    tool = _fake_tool(tmp_path, lines=5, status=2, log_file=log_file)
    with pytest.raises(ToolError, match=r"\(exit code 2\); end of its log:\n  line 1\n(.|\n)*  line 5$") as caught:
        run_tool([str(tool)], "KING relatedness", LOG, log_file)
    assert "console only" not in str(caught.value)


def test_a_successful_run_logs_the_quoted_command_line_and_the_tools_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tool = _fake_tool(tmp_path, lines=2, status=0)
    with caplog.at_level(logging.INFO, logger=LOG.name):
        run_tool([str(tool), "--keep", "two words.txt"], "sample call rates", LOG)
    assert f"sample call rates: {tool} --keep 'two words.txt'" in caplog.messages
    # bench/gwas.py reads "plink2 finished in <seconds> s"
    assert re.match(r"fake-tool finished in [0-9.]+ s \(sample call rates\); its log:\n", caplog.messages[-1])
    assert caplog.messages[-1].endswith("its log:\nline 1\nline 2\nconsole only")


def test_a_killed_tool_says_by_which_signal(tmp_path: Path) -> None:
    path = tmp_path / "killed"
    path.write_text("#!/bin/sh\nkill -9 $$\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(ToolError, match=r"^killed failed at step 'PCs' \(killed by signal 9\)") as caught:
        run_tool([str(path)], "PCs", LOG)
    assert caught.value.exit_status == -9


@pytest.mark.parametrize(("tool", "hint"), [("plink2", "apt-get install plink2 plink1.9"),
                                            ("plink1.9", "apt-get install plink2 plink1.9"),
                                            ("regenie", "conda install -c bioconda regenie")])
def test_a_missing_binary_names_the_tool_and_how_to_install_it(
    tool: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=rf"^'{tool}' is not on PATH: .*{hint}") as caught:
        run_tool([tool, "--version"], "version", LOG)
    assert (caught.value.tool, caught.value.exit_status) == (tool, None)
    with pytest.raises(ToolError, match=r", or use gwas\.engine: torch$"):
        find_tool(tool, instead="use gwas.engine: torch")


def test_run_cli_ends_a_stage_on_a_tool_error_with_one_error_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _fake_tool(tmp_path)
    with pytest.raises(SystemExit) as caught:
        run_cli(lambda: run_tool([str(tool)], "variant QC statistics", LOG))
    assert caught.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    # one unindented line, the error; the tool's log follows it indented
    unindented = [line for line in stderr.splitlines() if line.strip() and not line.startswith("  ")]
    assert unindented == ["error: fake-tool failed at step 'variant QC statistics' (exit code 3); end of its log:"]
    assert stderr.rstrip().endswith("  console only")


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on the device"),
                                         (errno.EDQUOT, "disk quota exceeded")])
def test_run_cli_ends_a_stage_on_a_full_disk_with_one_line_naming_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code: int, words: str
) -> None:
    target = tmp_path / "gwas" / ".tmp-sumstats-staged-x" / "dim_001.tsv.gz"

    def write() -> None:
        raise OSError(code, os.strerror(code), str(target))

    with pytest.raises(SystemExit) as caught:
        run_cli(write)
    assert caught.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    # the nearest existing folder of the file being written, and the space free there
    assert stderr.startswith(f"error: {words} writing {target} (folder {tmp_path},") and "GB free now" in stderr


def test_run_cli_ends_a_stage_on_an_unreadable_file_with_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a mode-000 table: root reads it anyway, so the refusal is raised where the file is opened
    table = tmp_path / "covariates.tsv"

    def read() -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(table))

    with pytest.raises(SystemExit) as caught:
        run_cli(read)
    assert caught.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert stderr.startswith(f"error: permission denied: {table}: give this account access")


def test_run_cli_keeps_the_traceback_of_other_os_errors() -> None:
    def fail() -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        run_cli(fail)
