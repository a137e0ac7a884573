#!/usr/bin/env python
"""Seconds per pass of the streamed principal fit, with rows multiplied one training batch at a time or in chunks.

The mode loss fits the images' leading modes from training batches (8 subjects in the demo). Each product with
the ``(W, k + oversample)`` subspace reads and writes all of it, so with a few rows per product a pass is bound
by memory traffic, not arithmetic. ``principal_subspace`` regroups the rows into chunks of about
``CHUNK_BYTES``. This times one fit (4 passes) both ways on the same synthetic rows, at the demo's width
(685 brain patches of 8^3 voxels, 144 directions) by default, and prints the seconds per pass and their ratio.

    python bench/principal_chunks.py                          # 840 subjects, the demo's width
    python bench/principal_chunks.py --subjects 400 --width 1000000
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from vitudip.model import principal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=840)
    parser.add_argument("--width", type=int, default=685 * 512)
    parser.add_argument("--batch", type=int, default=8, help="rows each training batch yields")
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # one batch of random rows, yielded again for every batch of a pass: the pass's cost without the cache's
    rows = torch.randn(args.batch, args.width, generator=torch.Generator().manual_seed(0))

    def batches():
        return (rows for _ in range(args.subjects // args.batch))

    timings = {}
    for label, budget in (("one batch per product", 1), ("chunked", principal.CHUNK_BYTES)):
        principal.CHUNK_BYTES = budget
        started = time.perf_counter()
        principal.principal_subspace(batches, args.k, iterations=3)
        timings[label] = (time.perf_counter() - started) / 4
        per_chunk = -(-max(1, budget // (4 * args.width)) // args.batch) * args.batch
        print(f"{label:>22}: {timings[label]:6.2f} s per pass ({per_chunk} rows per product)", flush=True)
    print(f"ratio: {timings['one batch per product'] / timings['chunked']:.2f}x faster in chunks "
          f"({args.subjects} subjects x {args.width} columns, {args.threads} threads)")


if __name__ == "__main__":
    main()
