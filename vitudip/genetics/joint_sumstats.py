"""The joint tests of every variant from the per-dimension GWAS-SSF files, streamed in genome order.

The plink2 and REGENIE engines write one summary statistics file per
dimension (gathered by gwas_gather); :func:`joint_from_sumstats` reads them
side by side in variant chunks, matches their rows, runs
:meth:`~vitudip.genetics.joint_stats.JointTest.test` on each block and writes
the joint file (:class:`~vitudip.genetics.joint_table.JointWriter`). The torch
engine computes the same in process (``linear_gwas(joint=...)``).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vitudip.genetics.joint_stats import JointTest, z_scores
from vitudip.genetics.joint_table import JointSummary, JointWriter
from vitudip.genetics.sumstats import VARIANT_COLUMNS, VARIANT_KEY, read_sumstats_chunks, variant_texts

logger = logging.getLogger("vitudip.gwas")

#: Sumstats columns the joint step reads from every dimension's file.
_SUMSTATS_READ = [*VARIANT_COLUMNS, "beta", "standard_error", "p_value", "n"]

#: What each dimension's buffered rows keep: the variant, z (from beta, SE and p at read), p and n.
_KEPT = [*VARIANT_COLUMNS, "z", "p_value", "n"]


def _dimension_paths(sumstats: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Dimension name -> file; a sequence of files is named by file name (``udip_000.tsv.gz`` -> udip_000).

    Args:
        sumstats: dimension -> file, or the files.
    """
    if isinstance(sumstats, Mapping):
        return {name: Path(path) for name, path in sumstats.items()}
    paths = [Path(p) for p in sumstats]
    names = [p.name.removesuffix(".gz").removesuffix(".tsv") for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"two summary statistics files share a dimension name: {sorted(names)}")
    return dict(zip(names, paths))


def _variant_at(frame: pd.DataFrame, row: int) -> str:
    """chromosome:position:effect:other of one row, for messages.

    Args:
        frame: rows with the VARIANT_KEY columns.
        row: the row's position in ``frame``.
    """
    return ":".join(str(frame[c].iloc[row]) for c in VARIANT_KEY)


class _SumstatsStream:
    """One dimension's file as a buffer of rows, refilled chunk by chunk and checked to be in genome order.

    ``_order`` (GWAS-SSF chromosome x 2^40 + position) sorts the rows; ``_line`` is each row's file line.

    Args:
        path: the dimension's GWAS-SSF file.
        chunk_size: rows read at a time.
    """

    def __init__(self, path: Path, chunk_size: int) -> None:
        self.path = path
        self._chunks = read_sumstats_chunks(path, _SUMSTATS_READ, chunk_size,
                                            purpose=" that the joint test needs")
        self.buffer = pd.DataFrame()
        self.done = False
        self._last = -1

    def fill(self) -> None:
        """Append the next chunk to the buffer (or mark the file done)."""
        read = next(self._chunks, None)
        if read is None:
            self.done = True
            return
        chunk = read.frame
        order = chunk["chromosome"].to_numpy(np.int64) * 2**40 + chunk["base_pair_location"].to_numpy(np.int64)
        back = np.flatnonzero(np.diff(np.concatenate([[self._last], order])) < 0)
        if back.size:
            at = int(back[0])
            raise ValueError(f"line {read.first_line + at} of {self.path} is variant {_variant_at(chunk, at)}, before "
                             "the line above it in chromosome and position order: the joint test reads files sorted "
                             "by chromosome and position, as gwas_gather writes them")
        p = chunk["p_value"].to_numpy()
        chunk = chunk[VARIANT_COLUMNS].assign(
            z=z_scores(chunk["beta"].to_numpy(), chunk["standard_error"].to_numpy(), p), p_value=p,
            n=chunk["n"].to_numpy(np.float32), _order=order,
            _line=np.arange(read.first_line, read.first_line + len(chunk), dtype=np.int64))
        self._last = int(order[-1])
        self.buffer = pd.concat([self.buffer, chunk], ignore_index=True) if len(self.buffer) else chunk

    def take(self, count: int) -> pd.DataFrame:
        """Remove and return the first ``count`` buffered rows.

        Args:
            count: rows to take.
        """
        taken, self.buffer = self.buffer.iloc[:count], self.buffer.iloc[count:].reset_index(drop=True)
        return taken.reset_index(drop=True)


def _same_variants(frames: Sequence[pd.DataFrame]) -> bool:
    """Whether every frame lists the first one's variants in the same order.

    Args:
        frames: the dimensions' buffered rows.
    """
    first = frames[0]
    return all(len(f) == len(first) and all(np.array_equal(f[c].to_numpy(), first[c].to_numpy()) for c in VARIANT_KEY)
               for f in frames[1:])


def _union(parts: Sequence[pd.DataFrame], paths: Sequence[Path]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The variants of any part in genome order, and each part's rows' positions among them.

    Args:
        parts: each dimension's rows of the block.
        paths: their files, for messages.

    Raises:
        ValueError: a part repeats a variant (names the file and the line).
    """
    for part, path in zip(parts, paths):
        repeated = part.duplicated(VARIANT_KEY)
        if repeated.any():
            at = int(np.flatnonzero(repeated)[0])
            raise ValueError(f"line {int(part['_line'].iloc[at])} of {path} repeats variant {_variant_at(part, at)} "
                             f"({part['variant_id'].iloc[at]}): each variant may appear once per dimension's file")
    union = pd.concat([p[[*VARIANT_COLUMNS, "_order"]] for p in parts], ignore_index=True)
    union = union.drop_duplicates(VARIANT_KEY).sort_values("_order", kind="stable").reset_index(drop=True)
    index = pd.MultiIndex.from_frame(union[VARIANT_KEY])
    return union, [index.get_indexer(pd.MultiIndex.from_frame(p[VARIANT_KEY])) for p in parts]


def _aligned_blocks(streams: Sequence[_SumstatsStream]
                    ) -> Iterator[tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks of variants over every dimension's file: (variants, z, p, n), each (v, K) but the variants.

    Files written by one GWAS list the same variants (the fast path: row by row); a gathered file
    leaves out the variants untested in its dimension, so blocks are otherwise the union of the
    variants before the smallest position any file may still continue at, a dimension lacking a
    variant giving it a missing z (the test then uses the dimensions it has).

    Args:
        streams: the dimensions' files, in the test's dimension order.
    """
    paths = [s.path for s in streams]
    while True:
        for stream in streams:
            if not stream.done and stream.buffer.empty:
                stream.fill()
        if all(s.buffer.empty for s in streams):
            return
        if _same_variants([s.buffer for s in streams]):
            parts = [s.take(len(s.buffer)) for s in streams]
            variants, rows = parts[0], [np.arange(len(parts[0]))] * len(parts)
        else:
            # a file not done may still hold rows at its last buffered position: stop before the smallest such
            open_ends = [int(s.buffer["_order"].iloc[-1]) for s in streams if not s.done and not s.buffer.empty]
            bound = min(open_ends) if open_ends else None
            counts = [len(s.buffer) if bound is None else int(np.searchsorted(s.buffer["_order"].to_numpy(), bound))
                      for s in streams]
            if not any(counts):
                for stream in streams:
                    if not stream.done and not stream.buffer.empty and int(stream.buffer["_order"].iloc[-1]) == bound:
                        stream.fill()
                continue
            parts = [s.take(c) for s, c in zip(streams, counts)]
            variants, rows = _union(parts, paths)
        shape = (len(variants), len(parts))
        z, p, n = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
        for column, (part, at) in enumerate(zip(parts, rows)):
            p[at, column] = part["p_value"].to_numpy()
            z[at, column] = part["z"].to_numpy()
            n[at, column] = part["n"].to_numpy()
        yield variants, z, p, n


def joint_from_sumstats(sumstats: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike], test: JointTest,
                        out_path: str | os.PathLike, chunk_size: int = 200_000, progress: bool = True) -> JointSummary:
    """Stream the per-dimension GWAS-SSF files in variant chunks and write the joint file.

    For the plink2 and REGENIE engines (the torch engine computes the same
    in process). z is the normal quantile of each dimension's p_value with the
    sign of its beta (:func:`z_scores`), signed by the effect allele, which every
    engine writes as ALT; the p_value column feeds min-P too.
    The files are read in genome order and matched by
    :data:`~vitudip.genetics.sumstats.VARIANT_KEY` (chromosome, position and
    alleles): a variant some files lack (gwas_gather leaves out
    a dimension's untested variants) is tested over the dimensions that have
    it, with R restricted to them (its ``df`` says how many directions).
    Memory is about chunk_size x K x 150 bytes (a buffered row: its variant, z, p, n), whatever the
    number of variants: λGC comes from streamed sketches (:mod:`~vitudip.genetics.pvalue_sketch`).

    Args:
        sumstats: dimension -> GWAS-SSF file, or files named ``<dimension>.tsv.gz``; exactly the test's dimensions.
        test: the joint test.
        out_path: ``joint.tsv.gz`` (written atomically).
        chunk_size: variants per chunk.
        progress: show a progress bar over chunks.

    Returns:
        What was written, with λGC.

    Raises:
        ValueError: the files are not the test's dimensions, lack a column, are not sorted by chromosome and
            position, or repeat a variant (names the file and the line).
    """
    paths = _dimension_paths(sumstats)
    names = list(paths)
    order = test.column_order(names, "the summary statistics files")
    ordered = [paths[names[i]] for i in order]
    streams = [_SumstatsStream(path, chunk_size) for path in ordered]
    logger.info("joint test over %d dimensions from %s ... (%s), chunks of %d variants", len(ordered), ordered[0],
                test.describe(), chunk_size)
    summary, offset = JointSummary(Path(out_path)), 0
    with JointWriter(out_path, test.dimensions) as writer, tqdm(desc="joint test", unit=" variants",
                                                                  disable=not progress, mininterval=5) as bar:
        for variants, z, p, n in _aligned_blocks(streams):
            result = test.test(z, p)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a variant no dimension tested: n is NaN
                smallest_n = np.nanmin(n, axis=1)
            writer.write(variant_texts(variants[VARIANT_COLUMNS]), result, np.nan_to_num(smallest_n).astype(np.int64))
            summary.add(result.p_value, result.min_p_familywise)
            offset += len(variants)
            bar.update(len(variants))
    summary.path = writer.path
    logger.info("joint test of %d variants written to %s: λGC %.3f (min-P %.3f), %d below 5e-8", offset, writer.path,
                summary.lambda_gc, summary.lambda_min_p, summary.n_genome_wide)
    return summary
