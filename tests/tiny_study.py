"""Snakemake runs of this repository's workflow for the tests, and the one tiny study they share.

The tiny config's whole workflow runs once per test session (about a minute locally, a few on a
slow CPU): on the one-node Slurm of :mod:`slurm_cluster` through the shipped profile when a test
marked ``slurm`` is selected and a Slurm can be started, else with the local executor. The
end-to-end checks of the outputs and the checks of what Slurm was asked both read that one run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import slurm_cluster

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# the Slurm run is stopped with SIGINT (Snakemake then cancels its Slurm jobs) after this long
SLURM_RUN_LIMIT_S = 600


def snakemake(workdir: Path, *args: str, configfile: Path | None = None) -> subprocess.CompletedProcess:
    """Run snakemake locally on this repository's Snakefile with ``workdir`` as working directory.

    ``args`` (targets included) come before ``--configfile``, which takes every word after it.
    """
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args, "--configfile", str(configfile or ROOT / "config.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@dataclass
class TinyStudy:
    """The tiny config's finished (or failed) workflow run.

    Attributes:
        workdir: Snakemake's working directory; ``workdir / ".test"`` is a copy of the repository's.
        config: the config file, inside ``workdir``.
        run: the run's process, its output included.
        slurm: the cluster's folder (logs, ``jobcomp.log``) when the run went through Slurm, else None.
        why_local: why it did not (empty when it did).
    """

    workdir: Path
    config: Path
    run: subprocess.CompletedProcess
    slurm: Path | None
    why_local: str

    @property
    def results(self) -> Path:
        return self.workdir / ".test" / "results"

    @property
    def output(self) -> str:
        return self.run.stdout + self.run.stderr


def run_on_slurm(workdir: Path) -> subprocess.CompletedProcess:
    """``snakemake --profile slurm`` on the tiny config, from the project root as a user types it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "SNAKEMAKE_PROFILE"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{slurm_cluster.SEARCH_PATH}"
    cmd = ["timeout", "-s", "INT", "-k", "30", str(SLURM_RUN_LIMIT_S),
           str(VENV_BIN / "snakemake"), "--profile", "slurm", "--configfile", ".test/config.yaml",
           "--directory", str(workdir),
           # no slurmdbd here (see slurm_cluster), and quick polling for a quick test
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SLURM_RUN_LIMIT_S + 60)


def tiny_study(workdir: Path, slurm: Path | None, why_local: str) -> TinyStudy:
    """Run the tiny config's workflow in ``workdir``: through the Slurm in ``slurm``, or locally when None."""
    shutil.copytree(ROOT / ".test", workdir / ".test", ignore=shutil.ignore_patterns("results"))
    config = workdir / ".test" / "config.yaml"
    run = run_on_slurm(workdir) if slurm is not None else snakemake(workdir, configfile=config)
    return TinyStudy(workdir, config, run, slurm, why_local)
