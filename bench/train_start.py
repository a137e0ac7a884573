#!/usr/bin/env python
"""The start of training at 1 mm with the ``informative`` preset: peak memory and time against subjects.

Before its first epoch, training with the ``informative`` preset fits the training split's 128 leading
principal modes (a randomised basis over every voxel of the brain tokens, at most ``MODE_FIT_SUBJECTS``
subjects) and starts the per-patch pool in closed form from the fitted subjects' encoder tokens. This writes a
synthetic 1 mm cache (182 x 224 x 182, float16, a brain-shaped ellipsoid with smooth subject-level patterns)
at several sizes, runs ``prepare_training`` and ``resume_training`` (the mode fit and the pool's start) on the
CPU in a fresh process for each, and prints peak anonymous memory (and resident, which also counts the
memory-mapped cache's pages) and seconds per size, the fitted growth per
subject, its extrapolation to ``MODE_FIT_SUBJECTS`` fitted subjects (where the fit stops growing) and the host
memory ``vitudip.resources.train_model`` asks for there.

    python bench/train_start.py                        # 24, 48 and 96 subjects
    python bench/train_start.py --subjects 50 100 200
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitudip.imaging.cache_grid import cache_grid  # noqa: E402
from vitudip.imaging.grid import MNI152_1MM  # noqa: E402
from vitudip.model.config import PRESETS  # noqa: E402
from vitudip.resources import MODE_FIT_SUBJECTS, ModelSize, train_model  # noqa: E402

PRESET = "informative"

RUN = """
import logging, resource, sys, threading, time
from pathlib import Path
import torch
from vitudip.model.config import PRESETS
from vitudip.train.distributed import TrainingProcesses
from vitudip.train.settings import TrainSettings
from vitudip.train.trainer import load_split_volumes, prepare_training, resume_training
from vitudip.config import stage_config
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
root = Path(sys.argv[1])
config = PRESETS[sys.argv[2]]
torch.set_num_threads(2)
anonymous = [0]
def sample():
    # the memory-mapped cache's pages count in ru_maxrss but are page cache the kernel reclaims; a job's need is
    # its anonymous memory
    while True:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))
        anonymous[0] = max(anonymous[0], kb)
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
settings = TrainSettings.from_config(stage_config({"model": {}, "train": {"batch_size": 4, "device": "cpu"},
                                                   "seed": 1}, TrainSettings.CONFIG_KEYS), threads=2)
start = time.perf_counter()
volumes = load_split_volumes(root / "cache", root / "qc.tsv", root / "splits.tsv", root / "brain_mask.npy", config)
processes = TrainingProcesses.start(1, torch.device("cpu"))
run = prepare_training(config, settings, volumes, root / "brain_mask.npy", processes)
resume_training(root / "checkpoints", config, settings, run, volumes.identity, settings.epochs)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, anonymous[0] / 1024)
"""


def brain_ellipsoid(shape: tuple[int, int, int]) -> np.ndarray:
    """A brain-sized ellipsoid (about 1.6 M voxels at 1 mm) centred in ``shape``."""
    axes = np.ogrid[tuple(slice(0, s) for s in shape)]
    radii = (70, 85, 60)
    return sum(((a - (s - 1) / 2) / r) ** 2 for a, s, r in zip(axes, shape, radii)) <= 1


def write_cache(root: Path, n: int, shape: tuple[int, int, int]) -> int:
    """A 1 mm cache of ``n`` subjects, 80 % in the train split; returns the brain voxels."""
    rng = np.random.default_rng(0)
    brain = brain_ellipsoid(shape)
    # smooth patterns that subjects carry in different amounts, so that the modes are not noise
    coords = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    patterns = [np.cos(np.pi * k * coords[k % 3])[(slice(None),) + (None,) * (2 - k % 3)] for k in range(1, 9)]
    (root / "cache").mkdir(parents=True)
    images = np.lib.format.open_memmap(root / "cache" / "images.npy", mode="w+", dtype=np.float16,
                                       shape=(n, *shape))
    for i in range(n):
        volume = np.ones(shape, np.float32)
        for pattern, weight in zip(patterns, rng.standard_normal(len(patterns)) * 0.1):
            volume += weight * pattern
        volume += 0.05 * rng.standard_normal(shape, dtype=np.float32)
        images[i] = np.where(brain, volume, 0.0)
    images.flush()
    cache_grid(MNI152_1MM, 1, shape).write(root / "cache", n)
    ids = [f"{i:05d}" for i in range(n)]
    pd.DataFrame({"subject_id": ids, "path": "x", "status": "ok", "reason": "", "row": range(n)}).to_csv(
        root / "qc.tsv", sep="\t", index=False)
    split = np.where(np.arange(n) < int(0.8 * n), "train", "val")
    pd.DataFrame({"subject_id": ids, "split": split}).to_csv(root / "splits.tsv", sep="\t", index=False)
    np.save(root / "brain_mask.npy", brain)
    return int(brain.sum())


def measure(root: Path) -> tuple[float, float, float]:
    """(peak anonymous MB, peak resident MB, seconds) of the training start in a fresh process."""
    run = subprocess.run([sys.executable, "-c", RUN, str(root), PRESET], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2"))
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    seconds, resident, anonymous = run.stdout.split()[-3:]
    return float(anonymous), float(resident), float(seconds)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, nargs="+", default=[24, 48, 96])
    args = parser.parse_args(argv)
    config = PRESETS[PRESET]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.subjects):
            root = Path(tmp) / f"n{n}"
            voxels = write_cache(root, n, config.image_size)
            peak, resident, seconds = measure(root)
            fitted = int(0.8 * n)
            rows.append((fitted, peak, seconds))
            print(f"{n:5d} subjects ({fitted} fitted) x {voxels:,} brain voxels: peak anonymous {peak:8.0f} MB "
                  f"(resident with the cache's mapped pages {resident:8.0f} MB), {seconds:7.1f} s "
                  f"({seconds / fitted:.2f} s a fitted subject)", flush=True)
            (root / "cache" / "images.npy").unlink()
    fitted = np.array([r[0] for r in rows], float)
    slope, intercept = np.polyfit(fitted, [r[1] for r in rows], 1)
    time_slope = np.polyfit(fitted, [r[2] for r in rows], 1)[0]
    at_cap = intercept + slope * MODE_FIT_SUBJECTS
    size = ModelSize.of(config)
    on_cpu, on_gpu = (train_model(MODE_FIT_SUBJECTS, 0, 4, size, gpu=gpu).mem_mb / 1000 for gpu in (False, True))
    print(f"growth: {slope:.1f} MB and {time_slope:.2f} s a fitted subject; at {MODE_FIT_SUBJECTS:,} fitted "
          f"subjects (the cap) {at_cap / 1000:.1f} GB and {time_slope * MODE_FIT_SUBJECTS / 3600:.1f} h on this CPU; "
          f"vitudip.resources.train_model asks {on_cpu:.1f} GB there on the CPU, {on_gpu:.1f} GB of host memory "
          "with a GPU")


if __name__ == "__main__":
    main(sys.argv[1:])
