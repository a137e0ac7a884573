"""Gather per-shard GWAS results into one file per dimension, with λGC and a QQ figure.

Shards are chromosome sets x dimension batches; each dimension is put together
from the shards that hold it. When every shard is one chromosome already in
position order (what every engine writes), a dimension's file is the shards'
text joined in chromosome order, so no number is parsed and re-formatted
except the p-values for λGC; otherwise the rows are read, sorted and rewritten.
Either way the file is BGZF, tabix-indexed, without untested variants
(:mod:`vitudip.genetics.catalog`). The fast path reads each shard in chunks
(:func:`~vitudip.genetics.sumstats.read_sumstats_chunks`), and λGC comes from a streamed
sketch of the p-values (:mod:`vitudip.genetics.pvalue_sketch`, within 4.4e-5 of the exact
median's for λGC below 35), so memory does not grow with variants or dimensions.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitudip.genetics.catalog import StudyDescription, index_sumstats, sumstats_metadata, write_bgzip, write_metadata
from vitudip.genetics.pvalue_sketch import PValueSketch
from vitudip.genetics.sumstats import FILE_COLUMNS, read_sumstats, read_sumstats_chunks, sumstats_text
from vitudip.io.atomic import require_free_space, staged_outputs, write_tsv
from vitudip.plots.gwas import plot_qq

log = logging.getLogger("vitudip.gwas")

GENOME_WIDE = 5e-8
SUFFIX = ".tsv.gz"
HEADER = ("\t".join(FILE_COLUMNS) + "\n").encode()
LAMBDA_COLUMNS = ["dimension", "n_variants", "n_untested", "lambda_gc", "min_p", "n_genome_wide"]


def _dimensions(shard: Path) -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in shard.glob(f"*{SUFFIX}"))


def shard_holders(shards: Sequence[Path]) -> dict[str, list[Path]]:
    """Each dimension and the shards that hold it, checked to be complete.

    Raises:
        ValueError: a dimension is in fewer shards than the others (names it and the shards that lack it).
    """
    holders: dict[str, list[Path]] = {}
    for shard in shards:
        for name in _dimensions(shard):
            holders.setdefault(name, []).append(shard)
    if not holders:
        raise ValueError(f"no {SUFFIX} files in the GWAS shards {', '.join(map(str, shards))}")
    expected = max(len(held) for held in holders.values())
    for name, held in sorted(holders.items()):
        if len(held) < expected:
            # the lacking shards are those that hold a dimension of the same batch but not this one
            batch = {shard for other, h in holders.items() if set(h) & set(held) for shard in h}
            lacking = sorted(map(str, batch - set(held)))
            raise ValueError(f"{name} is in {len(held)} shard(s) but the other dimensions are in {expected}: "
                             f"shard(s) {', '.join(lacking)} are incomplete")
    return holders


#: The columns the gather parses; every other cell is copied as written.
_PARSED = ["chromosome", "base_pair_location", "p_value", "n"]


class _OutOfOrder(Exception):
    """A shard is not one chromosome in position order, or starts before the shard before it ends."""


def _first_chromosome(path: Path) -> int:
    """GWAS-SSF number of the chromosome on a shard file's first row (-1 for a file without rows)."""
    for chunk in read_sumstats_chunks(path, ["chromosome"], chunk_rows=1):
        return int(chunk.frame["chromosome"].iloc[0])
    return -1


def _tested_lines(body: bytes, tested: np.ndarray) -> bytes:
    """The lines of ``body`` whose variant was tested (``tested`` is one flag per line)."""
    if tested.all():
        return body
    lines = body.splitlines(keepends=True)
    return b"".join(line for line, keep in zip(lines, tested) if keep)


@dataclass
class Gathered:
    """What one dimension's gathered file holds: its tested p-values' sketch and counts.

    Attributes:
        sketch: the tested variants' p-values (λGC, smallest p, QQ points).
        untested: variants left out for want of a p-value.
        genome_wide: tested variants with p below GENOME_WIDE.
        sample_size: the largest n of any row.
    """

    sketch: PValueSketch = field(default_factory=PValueSketch)
    untested: int = 0
    genome_wide: int = 0
    sample_size: float = 0.0

    def add(self, p_value: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Count a chunk's rows; returns which were tested."""
        tested = np.isfinite(p_value)
        self.sketch.add(p_value[tested])
        self.untested += int((~tested).sum())
        self.genome_wide += int((p_value[tested] < GENOME_WIDE).sum())
        if np.isfinite(n).any():
            self.sample_size = max(self.sample_size, float(np.nanmax(n)))
        return tested


def _in_order_lines(paths: list[Path], gathered: Gathered) -> Iterator[bytes]:
    """The header and every shard's tested lines as written, shard by shard, one chunk at a time.

    Raises:
        _OutOfOrder: the rows are not in chromosome and position order (nothing is counted twice: the caller
            starts again from a new Gathered).
        ValueError: a shard file does not start with the GWAS-SSF header.
    """
    yield HEADER
    last = (-1, -1)
    for path in paths:
        with gzip.open(path, "rb") as handle:
            if handle.readline() != HEADER:
                raise ValueError(f"{path} does not start with the GWAS-SSF header {FILE_COLUMNS}")
        shard_chromosome = None
        for chunk in read_sumstats_chunks(path, _PARSED, keep_text=True):
            frame = chunk.frame
            if frame.empty:
                continue
            chromosomes = frame["chromosome"].to_numpy()
            positions = frame["base_pair_location"].to_numpy()
            shard_chromosome = int(chromosomes[0]) if shard_chromosome is None else shard_chromosome
            first = (int(chromosomes[0]), int(positions[0]))
            if (chromosomes != shard_chromosome).any() or (np.diff(positions) < 0).any() or first < last:
                raise _OutOfOrder(path)
            last = (shard_chromosome, int(positions[-1]))
            tested = gathered.add(frame["p_value"].to_numpy(), frame["n"].to_numpy())
            yield _tested_lines(chunk.text, tested)


def _gather_one(name: str, shards: list[Path], out_dir: Path, study: StudyDescription | None) -> Gathered:
    """Write one dimension's gathered file, its tabix index and (with ``study``) its metadata.

    When the shards are single chromosomes in position order (what every engine writes) their lines are
    copied chunk by chunk, so memory is a chunk's; otherwise the dimension's rows are read, sorted and
    rewritten, holding that one dimension's table.
    """
    path = out_dir / f"{name}{SUFFIX}"
    files = [shard / f"{name}{SUFFIX}" for shard in shards]
    ordered = sorted(files, key=_first_chromosome)
    gathered = Gathered()
    try:
        write_bgzip(_in_order_lines(ordered, gathered), path)
    except _OutOfOrder:
        gathered = Gathered()
        table = pd.concat([read_sumstats(file) for file in files], ignore_index=True)
        gathered.add(table["p_value"].to_numpy(), table["n"].to_numpy(np.float64))
        table = table[table["p_value"].notna()].sort_values(["chromosome", "base_pair_location"], kind="stable")
        write_bgzip([HEADER, sumstats_text(table).encode()], path)
    index_sumstats(path)
    if study is not None:
        write_metadata(path, sumstats_metadata(path, study, name, int(gathered.sample_size)))
    return gathered


def gather_sumstats(shards: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                    lambda_path: str | os.PathLike, qq_path: str | os.PathLike,
                    threads: int = 1, study: StudyDescription | None = None) -> pd.DataFrame:
    """Put every dimension's shards together (sorted by chromosome and position) and summarise them.

    Each gathered file is BGZF with a tabix index; variants without a test (NA p) are left out and
    counted, as the GWAS Catalog refuses missing mandatory values.

    Args:
        shards: folders of one shard each, holding ``<dimension>.tsv.gz``.
        out_dir: folder for the gathered ``<dimension>.tsv.gz`` (with ``.tbi`` and, with ``study``,
            ``-meta.yaml``).
        lambda_path: TSV ``dimension, n_variants, n_untested, lambda_gc, min_p, n_genome_wide``.
        qq_path: QQ figure (PNG).
        threads: dimensions gathered at once (gzip and parsing release the GIL).
        study: what the metadata files say of the study (None: no metadata).

    Returns:
        The λGC table.

    Raises:
        ValueError: no shards, a dimension missing from a shard that should hold it, or less free space where
            the files go than they need (:func:`~vitudip.io.atomic.require_free_space`).
    """
    shards = [Path(s) for s in shards]
    if not shards:
        raise ValueError("no GWAS shards to gather")
    holders = shard_holders(shards)
    names = sorted(holders)
    # the gathered files hold the shards' rows again; BGZF's 64 KB blocks compress a little worse than gzip
    needed = int(1.1 * sum((shard / f"{name}{SUFFIX}").stat().st_size for name, held in holders.items()
                           for shard in held))
    require_free_space(out_dir, needed, f"gathering {len(names)} dimensions of {len(shards)} shards")
    with staged_outputs({"sumstats": out_dir, "lambda": lambda_path, "qq": qq_path}) as out:
        out["sumstats"].mkdir()
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            jobs = pool.map(lambda name: _gather_one(name, holders[name], out["sumstats"], study), names)
            gathered = dict(zip(names, tqdm(jobs, total=len(names), desc="gather", unit="dimension")))
        rows = [{"dimension": name, "n_variants": one.sketch.n, "n_untested": one.untested,
                 "lambda_gc": one.sketch.lambda_gc(), "min_p": one.sketch.min_p, "n_genome_wide": one.genome_wide}
                for name, one in gathered.items()]
        summary = pd.DataFrame(rows, columns=LAMBDA_COLUMNS)
        write_tsv(summary, out["lambda"])
        plot_qq({name: one.sketch for name, one in gathered.items()},
                dict(zip(summary["dimension"], summary["lambda_gc"])), out["qq"])
    log.info("%d dimensions gathered from %d shards: λGC median %.3f (range %.3f–%.3f), %d dimensions with a "
             "genome-wide hit; untested variants left out: %d at most per dimension", len(summary), len(shards),
             summary["lambda_gc"].median(), summary["lambda_gc"].min(), summary["lambda_gc"].max(),
             int((summary["n_genome_wide"] > 0).sum()), int(summary["n_untested"].max()))
    return summary
