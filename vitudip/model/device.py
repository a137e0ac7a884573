"""Where torch runs: one rule for every stage's ``device`` setting, and one for its CPU threads."""

from __future__ import annotations

import torch


def pick_device(name: str | torch.device = "auto", setting: str = "device") -> torch.device:
    """The device a ``device`` setting asks for.

    Args:
        name: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        setting: the config key it came from (e.g. ``train.device``), for the message.

    Raises:
        ValueError: CUDA is asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{setting} is '{name}' but no CUDA device is available; use 'cpu' or 'auto'")
    return device


def set_cpu_threads(threads: int | None) -> None:
    """Have torch's CPU work use ``threads`` threads: a stage's ``--threads``, its rule's ``threads:``.

    Left alone, torch takes one thread per core of the machine, more than a Snakemake or Slurm job was given.

    Args:
        threads: at least 1; None leaves torch's default.

    Raises:
        ValueError: ``threads`` is below 1.
    """
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads (torch's CPU threads) must be at least 1, got {threads}")
    torch.set_num_threads(threads)
