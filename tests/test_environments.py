"""The code `--use-conda` runs is the code the tests ran: one torch version in the Makefile and every env."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def env_packages(path: Path) -> list[str]:
    """Every conda and pip requirement of an environment file."""
    packages = []
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        packages += entry["pip"] if isinstance(entry, dict) else [entry]
    return packages


def test_every_env_with_torch_pins_the_tested_version():
    tested = re.search(r"^TORCH := torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    pins = {}
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        for package in env_packages(path):
            assert not package.startswith("pytorch"), f"{path.name} takes conda's pytorch, not the tested torch"
            if re.match(r"torch\b", package):
                pins[path.name] = package
    assert set(pins) == {"genetics.yaml", "torch.yaml"}
    assert set(pins.values()) == {f"torch=={tested}"}
