#!/usr/bin/env python
"""Benchmark the image cache: conversion speed of 1 mm T1s, and reading a cache row vs a .nii.gz.

Makes N simulated 182 x 218 x 182 float32 T1 brains (nibabel's default gzip level),
converts them with preprocess_cohort at 1 mm (padded to 182 x 224 x 182), then times
reading one volume both ways. The training loader reads float16 rows and converts
them on the device, so the cache side is the float16 row copy; the float32 copy on
the CPU is printed beside it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from vitudip.config import stage_config
from vitudip.imaging.cohort import preprocess_cohort
from vitudip.imaging.settings import PreprocessSettings
from vitudip.simulate.brains import Ageing, BrainSimulator, Nuisance, Subject

PAD_1MM = (182, 224, 182)
GOAL_VOLUMES_PER_CORE_S = 4.0
GOAL_READ_RATIO = 50.0


def write_cohort(folder: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` simulated 1 mm T1 brains (template anatomy, ageing, noise) and their samples table.

    Realistic content matters: gzip's speed depends on it, and a smooth synthetic
    volume decompresses several times faster than a real, noisy T1.
    """
    sim = BrainSimulator(1, [], Ageing(), Nuisance())
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        subject = Subject(np.zeros(0), age=float(rng.uniform(45, 80)), male=bool(rng.random() < 0.5))
        image, _ = sim.synthesize(subject, rng)
        path = folder / f"sub-{i:04d}.nii.gz"
        nib.save(nib.Nifti1Image(image, sim.affine), path)
        rows.append((f"{i:04d}", str(path)))
    samples = folder / "samples.tsv"
    pd.DataFrame(rows, columns=["subject_id", "path"]).to_csv(samples, sep="\t", index=False)
    return samples


def median_ms(read: Callable[[int], np.ndarray], reps: int) -> float:
    """Median wall time of ``read(rep)`` over ``reps`` calls, in ms."""
    times = []
    for rep in range(reps):
        started = time.perf_counter()
        read(rep)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e3


def run(n: int, threads: int, workdir: Path, reps: int) -> None:
    """Build the cohort, convert it, time the reads and print the results against the goals."""
    images = workdir / "images"
    images.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    samples = write_cohort(images, n)
    print(f"wrote {n} simulated 1 mm brains in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    out = workdir / "out"
    config = stage_config({"preprocess": {"input_voxel_mm": 1, "pad_to": list(PAD_1MM)}, "seed": 0},
                          PreprocessSettings.CONFIG_KEYS)
    settings = PreprocessSettings.from_config(config, threads=threads)
    started = time.perf_counter()
    preprocess_cohort(
        samples, out / "qc.tsv", out / "cache", out / "brain_mask.npy", out / "splits.tsv", settings=settings
    )
    seconds = time.perf_counter() - started
    total = n / seconds
    per_core = total / threads

    cache_path = out / "cache" / "images.npy"
    gz_paths = pd.read_csv(samples, sep="\t", dtype=str)["path"].tolist()

    def read_cache(rep: int) -> np.ndarray:
        return np.array(np.load(cache_path, mmap_mode="r")[rep % n], dtype=np.float32)

    def read_cache_fp16(rep: int) -> np.ndarray:
        return np.array(np.load(cache_path, mmap_mode="r")[rep % n])

    def read_gz(rep: int) -> np.ndarray:
        return nib.load(gz_paths[rep % n]).get_fdata(dtype=np.float32)

    def published_item(rep: int) -> np.ndarray:
        # what the published loader does per item: float64 get_fdata, pad, z-score all voxels
        volume = np.pad(nib.load(gz_paths[rep % n]).get_fdata(), ((0, 0), (3, 3), (0, 0)))
        brain = volume[volume != 0]
        return (volume - brain.mean()) / brain.std()

    cache_ms = median_ms(read_cache, reps)
    fp16_ms = median_ms(read_cache_fp16, reps)
    gz_ms = median_ms(read_gz, reps)
    item_ms = median_ms(published_item, reps)
    ratio = gz_ms / fp16_ms

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"conversion: {n} volumes in {seconds:.2f} s with {threads} process(es)")
    print(f"  {total:.2f} volumes/s total, {per_core:.2f} volumes/s per core "
          f"(goal >= {GOAL_VOLUMES_PER_CORE_S:g}/s/core: {verdict(per_core >= GOAL_VOLUMES_PER_CORE_S)})")
    print(f"read one volume (median of {reps}):")
    print(f"  cache memmap float16 row:   {fp16_ms:.2f} ms (converted to float32 on the CPU: {cache_ms:.2f} ms)")
    print(f"  .nii.gz get_fdata(float32): {gz_ms:.2f} ms")
    print(f"  ratio gz/cache: {ratio:.1f} (goal >= {GOAL_READ_RATIO:g}: {verdict(ratio >= GOAL_READ_RATIO)}); "
          f"gz/float32 cache row: {gz_ms / cache_ms:.1f}")
    print(f"  published loader item (gz, float64, pad, z-score): {item_ms:.2f} ms; "
          f"ratio to the cache row: {item_ms / fp16_ms:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=24, help="simulated subjects")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="conversion processes")
    parser.add_argument("--workdir", type=Path, help="folder for images and cache (default: a temporary one)")
    parser.add_argument("--reps", type=int, default=9, help="repetitions of each read timing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workdir is not None:
        run(args.n, args.threads, args.workdir, args.reps)
        return
    with tempfile.TemporaryDirectory(prefix="vitudip-bench-") as workdir:
        run(args.n, args.threads, Path(workdir), args.reps)


if __name__ == "__main__":
    main()
