#!/usr/bin/env python
"""Training throughput: the published setup against this project's fast path, same data, same device, one run.

Published setup (ViT-UDIP, Islam et al., medRxiv 2025, doi:10.1101/2025.03.24.25324549): the `reference`
model in fp32, batch 2, per-batch token
selection, plain AdamW, fed by a per-item loader that opens each gzip NIfTI, reads it as
float64 (`get_fdata`), pads and z-scores it.
Fast path: the same model with bf16 autocast (CUDA), the cohort's fixed token set (`union`),
fused AdamW (CUDA), a large batch, fed from the float16 cache (held on the GPU when it fits).

`--size full` is the published 1 mm geometry (182x224x182, 14x16x14 patches); `--size reduced`
keeps the reference widths and depths on the 2 mm grid (96x112x96, 8^3 patches) so that the
comparison also runs on a CPU. Prints subjects/s of both, their ratio and peak GPU memory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from vitudip.config import stage_config
from vitudip.data.volumes import BatchSource, CachedVolumes
from vitudip.imaging.cohort import preprocess_cohort
from vitudip.imaging.grid import pad_to
from vitudip.imaging.settings import PreprocessSettings
from vitudip.model.step import Step, load_brain_tokens
from vitudip.model.vit_autoencoder import ModelConfig, ViTAutoEncoder, preset
from vitudip.simulate.brains import Ageing, BrainSimulator, Nuisance, Subject

SIZES = {
    "full": dict(voxel_mm=1, pad=(182, 224, 182), overrides={}),
    "reduced": dict(voxel_mm=2, pad=(96, 112, 96), overrides=dict(image_size=(96, 112, 96), patch_size=(8, 8, 8))),
}


def make_cohort(folder: Path, n: int, voxel_mm: int, pad: tuple[int, int, int], threads: int) -> Path:
    """n simulated T1s as .nii.gz plus their preprocessed cache; returns the folder."""
    sim = BrainSimulator(voxel_mm, [], Ageing(), Nuisance())
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        image, _ = sim.synthesize(Subject(np.zeros(0), float(rng.uniform(45, 80)), bool(rng.random() < 0.5)), rng)
        path = folder / f"{i:05d}.nii.gz"
        nib.save(nib.Nifti1Image(image, sim.affine), path)
        rows.append((f"{i:05d}", str(path)))
    pd.DataFrame(rows, columns=["subject_id", "path"]).to_csv(folder / "samples.tsv", sep="\t", index=False)
    section = {"input_voxel_mm": voxel_mm, "pad_to": list(pad), "splits": {"train": 1.0, "val": 0.0, "test": 0.0}}
    config = stage_config({"preprocess": section, "seed": 0}, PreprocessSettings.CONFIG_KEYS)
    settings = PreprocessSettings.from_config(config, threads=threads)
    preprocess_cohort(folder / "samples.tsv", folder / "qc.tsv", folder / "cache", folder / "brain_mask.npy",
                      folder / "splits.tsv", settings)
    return folder


class PublishedStyleItems(Dataset):
    """One gzip NIfTI per item, read as float64, padded and z-scored over all voxels (as published)."""

    def __init__(self, paths: list[str], pad: tuple[int, int, int]) -> None:
        self.paths, self.pad = paths, pad

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        volume = pad_to(nib.load(self.paths[i]).get_fdata(), self.pad)
        brain = volume[volume != 0]
        volume = np.where(volume != 0, (volume - brain.mean()) / brain.std(), 0.0)
        return torch.from_numpy(volume.astype(np.float32))


def timed_steps(step: Step, optimizer: torch.optim.Optimizer, batches, n_steps: int, warmup: int,
                device: torch.device) -> float:
    """Subjects/s over ``n_steps`` optimisation steps after ``warmup`` untimed ones, data loading included."""
    seen, started = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, seen = time.perf_counter(), 0
        loss, _, _, _ = step(batch.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(batch)
        if i + 1 == warmup + n_steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - started)


def looped(make_iter):
    """Restart an epoch iterator whenever it ends, so a benchmark can run more steps than one epoch holds."""
    while True:
        yield from make_iter()


def run(args: argparse.Namespace, folder: Path) -> None:
    size = SIZES[args.size]
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    config: ModelConfig = ModelConfig.from_dict({**preset("reference").to_dict(), **size["overrides"]})
    started = time.perf_counter()
    make_cohort(folder, args.n, size["voxel_mm"], size["pad"], args.workers or 1)
    print(f"cohort: {args.n} simulated subjects at {size['voxel_mm']} mm in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    paths = pd.read_csv(folder / "samples.tsv", sep="\t", dtype=str)["path"].tolist()
    rows = np.arange(args.n)
    brain_tokens = load_brain_tokens(folder / "brain_mask.npy", config).to(device)
    results = {}

    # published: fp32, batch 2, per-batch tokens, plain AdamW, per-item gzip loader
    torch.manual_seed(0)
    model = ViTAutoEncoder(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
    step = Step(model, brain_tokens, "batch")
    step.autocast = False
    loader = DataLoader(PublishedStyleItems(paths, size["pad"]), batch_size=2, shuffle=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda",
                        multiprocessing_context="fork" if args.workers else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    results["published"] = timed_steps(step, optimizer, looped(lambda: iter(loader)), args.steps, 2, device)
    peak_published = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    del model, optimizer, step

    # fast path: bf16 (CUDA), union tokens, fused AdamW (CUDA), large batch, float16 cache
    torch.manual_seed(0)
    model = ViTAutoEncoder(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    step = Step(model, brain_tokens, "union")
    source = BatchSource(CachedVolumes(folder / "cache", rows), args.batch, device, resident=None,
                         workers=args.workers)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    fast_steps = max(2, args.steps * 2 // args.batch)
    results["fast"] = timed_steps(step, optimizer, looped(lambda: source.batches(torch.randperm(args.n))),
                                  fast_steps, 1, device)
    peak_fast = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")

    def gib(value: float) -> str:
        return f"{value:.2f} GiB" if value == value else "n/a (CPU)"

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; model: reference widths/depths, {args.size} size {config.image_size}, "
          f"patch {config.patch_size}, {len(brain_tokens)} brain tokens; {args.n} subjects, {args.workers} workers")
    print(f"published setup (fp32, batch 2, batch tokens, AdamW, gz loader): {results['published']:.2f} subjects/s"
          f"  peak GPU memory {gib(peak_published)}")
    print(f"fast path (bf16 on CUDA, union tokens, fused AdamW on CUDA, batch {args.batch}, fp16 cache"
          f"{', GPU-resident' if source.resident is not None else ''}): {results['fast']:.2f} subjects/s"
          f"  peak GPU memory {gib(peak_fast)}")
    print(f"ratio fast/published: {results['fast'] / results['published']:.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full" if torch.cuda.is_available() else "reduced")
    parser.add_argument("--n", type=int, default=64, help="simulated subjects")
    parser.add_argument("--batch", type=int, default=128 if torch.cuda.is_available() else 8, help="fast-path batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the published setup")
    parser.add_argument("--workers", type=int, default=min(10, os.cpu_count() or 1), help="loader workers")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is present")
    parser.add_argument("--workdir", type=Path, help="keep the cohort here (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args, args.workdir)
        return
    with tempfile.TemporaryDirectory(prefix="vitudip-train-bench-") as folder:
        run(args, Path(folder))


if __name__ == "__main__":
    main()
