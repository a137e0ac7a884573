"""The one way the pipeline runs an external tool (plink2, plink1.9, regenie).

:func:`run_tool` logs the command line to the stage's log, runs the tool with its
console output captured, and turns any failure, a missing binary included, into a
:class:`ToolError` that names the tool, the step, the exit status and the end of
the tool's log. :func:`vitudip.cli.run_cli` ends a stage on that error with one
``error:`` line, as on bad input, so a plink2 failure reads the same in every stage.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

#: Lines of a tool's log quoted in a ToolError.
LOG_TAIL_LINES = 20

_PLINK_HINT = "install it (Debian: apt-get install plink2 plink1.9; conda: the workflow's envs/genetics.yaml)"
#: How to install each tool the pipeline runs, for the error when it is missing.
INSTALL_HINTS = {
    "plink2": _PLINK_HINT,
    "plink1.9": _PLINK_HINT,
    "regenie": "install it from bioconda (conda install -c bioconda regenie, as the workflow's envs/regenie.yaml "
               "does)",
}


class ToolError(RuntimeError):
    """An external tool is not installed, or it exited with an error.

    Args:
        message: the whole message (what failed, and the end of the tool's log or how to install it).
        tool: the tool's name, e.g. ``plink2``.
        step: what it was run for (None when it was not found before any step).
        exit_status: its exit status; negative: killed by that signal; None: it did not run.
        tail: the last lines of its log, as quoted in the message.
    """

    def __init__(self, message: str, tool: str, step: str | None = None, exit_status: int | None = None,
                 tail: str = "") -> None:
        super().__init__(message)
        self.tool = tool
        self.step = step
        self.exit_status = exit_status
        self.tail = tail


def find_tool(tool: str, instead: str | None = None) -> str:
    """The path of an external tool, found as the shell would (a name on PATH, or a path).

    Callers look a tool up before slow input checks, so a missing one fails the stage at once.

    Args:
        tool: the tool's name or path.
        instead: another way to get the result without the tool, added to the error
            (e.g. ``use the in-process engine (gwas.engine: torch)``).

    Returns:
        The executable's path.

    Raises:
        ToolError: the tool is not found; the message says how to install it.
    """
    path = shutil.which(tool)
    if path is None:
        name = Path(tool).name
        hint = INSTALL_HINTS.get(name, f"install {name} and put it on PATH")
        raise ToolError(f"'{tool}' is not on PATH: {hint}" + (f", or {instead}" if instead else ""), name)
    return path


def _ending(exit_status: int) -> str:
    """How a process ended, from its exit status (subprocess gives a signal as its negative number)."""
    # a kill by the kernel's or the scheduler's memory limit shows up as signal 9
    return f"killed by signal {-exit_status}" if exit_status < 0 else f"exit code {exit_status}"


def _failure(tool: str, step: str, exit_status: int, log: str) -> ToolError:
    """The ToolError of a run that ended with ``exit_status``, quoting the last LOG_TAIL_LINES lines of its log."""
    tail = "\n".join(log.strip().splitlines()[-LOG_TAIL_LINES:])
    # indented, so the stage's one error line stands apart from the quoted log in the rule's log
    quoted = textwrap.indent(tail, "  ")
    return ToolError(f"{tool} failed at step '{step}' ({_ending(exit_status)}); end of its log:\n{quoted}",
                     tool, step, exit_status, tail)


def run_tool(command: Sequence[str], step: str, logger: logging.Logger, log_file: Path | None = None) -> None:
    """Run an external tool to its end, logging its command line and then its log to the stage's log.

    Args:
        command: the argument list; its first item is the tool's name or path.
        step: what the run is for, a short phrase for the log and the error (``variant QC statistics``).
        logger: the stage's logger.
        log_file: the log the tool writes itself (plink2 and regenie: ``<--out>.log``); without one,
            or before the tool wrote it, its console output stands in.

    Raises:
        ToolError: the tool is not found, or it exited with a non-zero status (its log's tail in the message).
    """
    argv = [find_tool(command[0]), *command[1:]]
    logger.info("%s: %s", step, shlex.join(argv))
    started = time.perf_counter()
    finished = subprocess.run(argv, capture_output=True, text=True, check=False)
    console = finished.stdout + finished.stderr
    # the tool's own log often lies in a temporary folder, so its text is kept in the stage's log
    log = log_file.read_text(errors="replace") if log_file is not None and log_file.is_file() else console
    if finished.returncode != 0:
        raise _failure(Path(command[0]).name, step, finished.returncode, log)
    logger.info("%s finished in %.1f s (%s); its log:\n%s", Path(command[0]).name, time.perf_counter() - started, step,
                log.strip())
