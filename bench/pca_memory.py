#!/usr/bin/env python
"""Peak memory of the PCA baseline's fit against the number of training subjects, before and after streaming.

Writes a synthetic preprocess cache (float16 volumes of a spherical brain, every subject in the training
split) at several sizes and runs ``embed_pca`` in a fresh process on each, reading the child's peak
resident memory. "Before" is the Gram-matrix fit that held the training subjects' brain voxels in memory
(vitudip/embed/pca.py at commit 1d2d60a, read with ``git show``); "after" is the streamed fit. It prints
peak MB per size and the fitted growth in MB per 100 subjects.

    python bench/pca_memory.py                      # 150, 300 and 600 subjects of 64^3 volumes
    python bench/pca_memory.py --subjects 200 400 800 --side 80
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

BEFORE_COMMIT = "1d2d60a"
ROOT = Path(__file__).resolve().parent.parent

RUN = """
import importlib.util, resource, sys, time
spec = importlib.util.spec_from_file_location("pca_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
root = sys.argv[2]
start = time.perf_counter()
module.embed_pca(root + "/cache", root + "/qc.tsv", root + "/splits.tsv", root + "/brain_mask.npy", ["train"],
                 n_components=128)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def write_cache(root: Path, n: int, side: int) -> int:
    """A cache of ``n`` float16 volumes ``side``^3, all in the training split; returns the brain voxels."""
    rng = np.random.default_rng(0)
    axes = np.ogrid[tuple(slice(0, side) for _ in range(3))]
    brain = sum(((a - (side - 1) / 2) / (0.45 * side)) ** 2 for a in axes) <= 1
    (root / "cache").mkdir(parents=True)
    images = np.lib.format.open_memmap(root / "cache" / "images.npy", mode="w+", dtype=np.float16,
                                       shape=(n, side, side, side))
    for i in range(n):
        images[i] = np.where(brain, 1.0 + 0.3 * rng.standard_normal(brain.shape), 0.0)
    images.flush()
    ids = [f"{i:05d}" for i in range(n)]
    pd.DataFrame({"subject_id": ids, "path": "x", "status": "ok", "reason": "", "row": range(n)}).to_csv(
        root / "qc.tsv", sep="\t", index=False)
    pd.DataFrame({"subject_id": ids, "split": "train"}).to_csv(root / "splits.tsv", sep="\t", index=False)
    np.save(root / "brain_mask.npy", brain)
    return int(brain.sum())


def peak_mb(module: Path, root: Path) -> tuple[float, float]:
    """(peak resident MB, seconds) of one embed_pca run in a fresh process (its own ru_maxrss)."""
    run = subprocess.run([sys.executable, "-c", RUN, str(module), str(root)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2"))
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    seconds, peak = run.stdout.split()[-2:]
    return float(peak), float(seconds)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, nargs="+", default=[150, 300, 600])
    parser.add_argument("--side", type=int, default=64, help="volume side in voxels")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before = tmp / "pca_before.py"
        before.write_text(subprocess.run(["git", "show", f"{BEFORE_COMMIT}:vitudip/embed/pca.py"], cwd=ROOT,
                                         check=True, capture_output=True, text=True).stdout)
        after = ROOT / "vitudip" / "embed" / "pca.py"
        rows = []
        for n in sorted(args.subjects):
            root = tmp / f"n{n}"
            voxels = write_cache(root, n, args.side)
            after_mb, after_s = peak_mb(after, root)
            before_mb, before_s = peak_mb(before, root)
            rows.append((n, voxels, before_mb, before_s, after_mb, after_s))
            print(f"{n:6d} subjects x {voxels:,} brain voxels: before {before_mb:8.0f} MB {before_s:6.1f} s | "
                  f"after {after_mb:8.0f} MB {after_s:6.1f} s", flush=True)
    n = np.array([r[0] for r in rows], float)
    growth_before = 100 * np.polyfit(n, [r[2] for r in rows], 1)[0]
    growth_after = 100 * np.polyfit(n, [r[4] for r in rows], 1)[0]
    # a growth within the noise of one run (about 10 MB per 100 subjects here) is reported as flat
    after = f"{growth_after:.1f} MB" if growth_after > 10 else f"flat ({growth_after:+.1f} MB)"
    print(f"peak memory growth per 100 subjects: before {growth_before:.1f} MB, after {after}")

if __name__ == "__main__":
    main(sys.argv[1:])
