"""Gather per-shard GWAS results into one file per dimension, with λGC and a QQ figure.

Shards are chromosome sets x dimension batches; each dimension is put together
from the shards that hold it. When every shard is one chromosome already in
position order (what every engine writes), a dimension's file is the shards'
text joined in chromosome order, so no number is parsed and re-formatted
except the p-values for λGC; otherwise the rows are read, sorted and rewritten.
Either way the file is BGZF, tabix-indexed, without untested variants
(:mod:`vitudip.genetics.catalog`).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitudip.genetics.catalog import StudyDescription, index_sumstats, sumstats_metadata, write_bgzip, write_metadata
from vitudip.genetics.sumstats import FILE_COLUMNS, genomic_inflation, read_sumstats, ssf_chromosome, sumstats_text
from vitudip.io.atomic import staged_outputs, write_tsv
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


def _shard_text(path: Path) -> tuple[bytes, pd.DataFrame]:
    """A shard file's rows without the header, and its chromosome, position, p-value and n columns."""
    with gzip.open(path, "rb") as handle:
        text = handle.read()
    if not text.startswith(HEADER):
        raise ValueError(f"{path} does not start with the GWAS-SSF header {FILE_COLUMNS}")
    body = text[len(HEADER):]
    columns = pd.read_csv(io.BytesIO(text), sep="\t", usecols=["chromosome", "base_pair_location", "p_value", "n"],
                          dtype={"chromosome": str}, na_values=["NA"], keep_default_na=False)
    return body, columns


def _tested_lines(body: bytes, tested: np.ndarray) -> bytes:
    """The lines of ``body`` whose variant was tested (``tested`` is one flag per line)."""
    if tested.all():
        return body
    lines = body.splitlines(keepends=True)
    return b"".join(line for line, keep in zip(lines, tested) if keep)


def _in_order(parts: list[pd.DataFrame]) -> bool:
    """Whether joining the parts as they are gives rows sorted by chromosome, then position."""
    last = (-1, -1)
    for part in parts:
        if part.empty:
            continue
        chromosomes = part["chromosome"].map(ssf_chromosome).to_numpy()
        positions = part["base_pair_location"].to_numpy()
        if (chromosomes != chromosomes[0]).any() or (np.diff(positions) < 0).any():
            return False
        first = (chromosomes[0], positions[0])
        if first < last:
            return False
        last = (chromosomes[0], positions[-1])
    return True


@dataclass(frozen=True)
class Gathered:
    """One dimension's gathered file: the p-values of its tested variants, and how many were left out."""

    p_values: np.ndarray
    untested: int


def _gather_one(name: str, shards: list[Path], out_dir: Path, study: StudyDescription | None) -> Gathered:
    """Write one dimension's gathered file, its tabix index and (with ``study``) its metadata."""
    path = out_dir / f"{name}{SUFFIX}"
    texts = [_shard_text(shard / f"{name}{SUFFIX}") for shard in shards]
    order = sorted(range(len(texts)), key=lambda i: ssf_chromosome(texts[i][1]["chromosome"].iloc[0])
                   if len(texts[i][1]) else -1)
    parts = [texts[i][1] for i in order]
    p_values = np.concatenate([part["p_value"].to_numpy(float) for part in parts])
    untested = int(np.isnan(p_values).sum())
    if _in_order(parts):
        # the shards' text as it is, less the untested variants' lines
        bodies = (_tested_lines(texts[i][0], np.isfinite(texts[i][1]["p_value"].to_numpy(float))) for i in order)
        write_bgzip([HEADER, *bodies], path)
    else:
        table = pd.concat([read_sumstats(shard / f"{name}{SUFFIX}") for shard in shards], ignore_index=True)
        table = table[table["p_value"].notna()].sort_values(["chromosome", "base_pair_location"], kind="stable")
        write_bgzip([HEADER, sumstats_text(table).encode()], path)
    index_sumstats(path)
    sample_size = int(max((part["n"].max() for part in parts if len(part)), default=0))
    if study is not None:
        write_metadata(path, sumstats_metadata(path, study, name, sample_size))
    return Gathered(p_values=p_values[np.isfinite(p_values)], untested=untested)


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
        ValueError: no shards, or a dimension missing from a shard that should hold it.
    """
    shards = [Path(s) for s in shards]
    if not shards:
        raise ValueError("no GWAS shards to gather")
    holders = shard_holders(shards)
    names = sorted(holders)
    with staged_outputs({"sumstats": out_dir, "lambda": lambda_path, "qq": qq_path}) as out:
        out["sumstats"].mkdir()
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            jobs = pool.map(lambda name: _gather_one(name, holders[name], out["sumstats"], study), names)
            gathered = dict(zip(names, tqdm(jobs, total=len(names), desc="gather", unit="dimension")))
        p_values = {name: one.p_values for name, one in gathered.items()}
        rows = []
        for name in names:
            p = p_values[name]
            rows.append({"dimension": name, "n_variants": len(p), "n_untested": gathered[name].untested,
                         "lambda_gc": genomic_inflation(p), "min_p": float(p.min()) if len(p) else np.nan,
                         "n_genome_wide": int((p < GENOME_WIDE).sum())})
        summary = pd.DataFrame(rows, columns=LAMBDA_COLUMNS)
        write_tsv(summary, out["lambda"])
        plot_qq(p_values, dict(zip(summary["dimension"], summary["lambda_gc"])), out["qq"])
    log.info("%d dimensions gathered from %d shards: λGC median %.3f (range %.3f–%.3f), %d dimensions with a "
             "genome-wide hit; untested variants left out: %d at most per dimension", len(summary), len(shards),
             summary["lambda_gc"].median(), summary["lambda_gc"].min(), summary["lambda_gc"].max(),
             int((summary["n_genome_wide"] > 0).sum()), int(summary["n_untested"].max()))
    return summary
