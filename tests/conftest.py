"""Shared fixtures: the repository root, the tiny config and its one workflow run, and a small simulated cohort."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from vitudip.config import validate_config

import slurm_cluster
from tiny_study import TinyStudy, tiny_study

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_run(request, tmp_path_factory) -> Iterator[TinyStudy]:
    """The tiny config's whole workflow, run once: on a one-node Slurm when a ``slurm`` test is selected."""
    wanted = any(item.get_closest_marker("slurm") for item in request.session.items)
    why = (slurm_cluster.unavailable() or "") if wanted else "no test marked slurm is selected"
    if why:
        yield tiny_study(tmp_path_factory.mktemp("tiny"), None, why)
        return
    with slurm_cluster.one_node_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield tiny_study(tmp_path_factory.mktemp("tiny"), cluster, "")


@pytest.fixture()
def tiny_config() -> dict:
    """The raw (unvalidated) tiny config from .test/config.yaml, a fresh copy per test."""
    with open(ROOT / ".test" / "config.yaml") as fh:
        return copy.deepcopy(yaml.safe_load(fh))


@pytest.fixture(scope="session")
def default_config() -> dict:
    """The embedded default config.yaml, validated."""
    with open(ROOT / "config.yaml") as fh:
        return validate_config(yaml.safe_load(fh))


@pytest.fixture()
def one_torch_thread():
    """Run the test on one torch intra-op thread, restoring the count after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
