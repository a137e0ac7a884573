"""One streaming pass over every dimension's GWAS-SSF file, holding per variant only what clumping needs.

Reading 128 gzipped tables is the stage's main cost, so each file is read once,
chunk by chunk (:func:`~vitudip.genetics.sumstats.read_sumstats_chunks`), with only
the columns that are needed. Per variant the scan holds its chromosome, position and
a 64-bit hash of :data:`~vitudip.genetics.sumstats.VARIANT_KEY` (the first file's rows
index everything), and the running minimum p over dimensions (for the regions and the
Manhattan plot); per dimension, the rows with p below the candidate threshold. The
other files give p-values: their chromosome and position columns check that the rows
are the first file's in the same order, which holds for files written by one GWAS;
otherwise rows are matched by the hashed key. The text columns (alleles, IDs) are read
again only for the rows the later steps name (:meth:`SumstatsScan.details`): at 10 M
variants the whole variant table's text would be gigabytes, the candidates' is small.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vitudip.genetics.joint_table import read_joint_chunks
from vitudip.genetics.sumstats import VARIANT_COLUMNS, VARIANT_KEY, hashed_variant_key, read_sumstats_chunks

logger = logging.getLogger("vitudip.loci")

#: Columns the scan holds for every variant: chromosome (int8 GWAS-SSF numbers), position, hashed key.
SCAN_FIELDS = ["chromosome", "base_pair_location", "key"]

#: Columns it reads from the other files when their rows are the first file's.
P_FIELDS = ["chromosome", "base_pair_location", "p_value"]

_SUFFIX = ".tsv.gz"


def sumstats_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The GWAS-SSF files of a folder, by dimension name (file name without ``.tsv.gz``), sorted.

    Raises:
        FileNotFoundError: the folder is missing or holds no ``*.tsv.gz``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"summary statistics folder not found: {folder}")
    files = {p.name[: -len(_SUFFIX)]: p for p in sorted(folder.glob(f"*{_SUFFIX}"))}
    if not files:
        raise FileNotFoundError(f"no *{_SUFFIX} summary statistics in {folder}")
    return files


def read_variants(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray]:
    """The scan's variant table of one file (SCAN_FIELDS) and its p-values, read chunk by chunk.

    Returns:
        (the table, (n,) float64 p-values).
    """
    tables, p = [], []
    for chunk in read_sumstats_chunks(path, [*VARIANT_KEY, "p_value"]):
        frame = chunk.frame
        tables.append(pd.DataFrame({"chromosome": frame["chromosome"].to_numpy(np.int8),
                                    "base_pair_location": frame["base_pair_location"].to_numpy(np.int64),
                                    "key": hashed_variant_key(frame)}))
        p.append(frame["p_value"].to_numpy(np.float64))
    if not tables:
        empty = pd.DataFrame({"chromosome": np.zeros(0, np.int8), "base_pair_location": np.zeros(0, np.int64),
                              "key": np.zeros(0, np.uint64)})
        return empty, np.zeros(0)
    return pd.concat(tables, ignore_index=True), np.concatenate(p)


class VariantIndex:
    """The scan's variant table with a lookup of its rows by hashed key (built on first use: files in the first
    file's order never need it).

    Args:
        variants: SCAN_FIELDS of every variant.
    """

    def __init__(self, variants: pd.DataFrame) -> None:
        self.variants = variants

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        keys = self.variants["key"].to_numpy()
        order = np.argsort(keys, kind="stable")
        return order, keys[order]

    def rows(self, frame: pd.DataFrame) -> np.ndarray:
        """Row of the variant table of each row of ``frame`` (VARIANT_KEY columns) by the key; -1: absent."""
        order, keys = self._sorted
        query = hashed_variant_key(frame)
        if keys.size == 0:
            return np.full(query.size, -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        return np.where(keys[at] == query, order[at], -1)


def _aligned(read: Callable[[list[str]], Iterator[pd.DataFrame]], index: VariantIndex, path: Path,
             columns: dict[str, tuple[type, object]],
             convert: Callable[[str, pd.Series], np.ndarray] = lambda _, cells: cells.to_numpy()
             ) -> dict[str, np.ndarray]:
    """Some columns of a file in the row order of the variant table, read chunk by chunk.

    A file whose chromosome and position columns are the variant table's in its order (one GWAS's files) is
    copied chunk by chunk; otherwise it is read again and its rows matched by the hashed variant key.

    Args:
        read: the file's reader: the columns asked for, chunk by chunk.
        index: the variant table.
        path: the file, for messages.
        columns: column -> (dtype, value where the file lacks the variant).
        convert: a chunk's cells of one column as stored.

    Returns:
        Column -> (n_variants,) array.
    """
    variants = index.variants
    n = len(variants)

    def empty() -> dict[str, np.ndarray]:
        return {c: np.full(n, fill, dtype=kind) for c, (kind, fill) in columns.items()}

    out = empty()
    chromosome = variants["chromosome"].to_numpy()
    position = variants["base_pair_location"].to_numpy()
    start = 0
    for frame in read(["chromosome", "base_pair_location", *columns]):
        end = start + len(frame)
        if not (end <= n and np.array_equal(frame["chromosome"].to_numpy(), chromosome[start:end])
                and np.array_equal(frame["base_pair_location"].to_numpy(), position[start:end])):
            break
        for column in columns:
            out[column][start:end] = convert(column, frame[column])
        start = end
    else:
        if start == n:
            return out
    out = empty()
    absent = 0
    for frame in read([*VARIANT_KEY, *columns]):
        rows = index.rows(frame)
        found = rows >= 0
        absent += int((~found).sum())
        for column in columns:
            out[column][rows[found]] = convert(column, frame[column])[found]
    if absent:
        logger.warning("%s: %d variants absent from the first file are ignored", path, absent)
    return out


def aligned_p_values(path: str | os.PathLike, index: VariantIndex) -> np.ndarray:
    """p-values of one GWAS-SSF file in the row order of the variant table, read chunk by chunk.

    Args:
        path: GWAS-SSF file.
        index: the variant table (from :func:`read_variants` of the first file).

    Returns:
        (n_variants,) float64; NaN for variants the file lacks.
    """
    path = Path(path)
    return _aligned(lambda columns: (c.frame for c in read_sumstats_chunks(path, columns)), index, path,
                    {"p_value": (np.float64, np.nan)})["p_value"]


@dataclass(frozen=True)
class AlignedJoint:
    """The joint file's columns the loci stage uses, in the row order of the variant table.

    Attributes:
        p_value: (n_variants,) the joint statistic's p (NaN where the joint file lacks the variant).
        min_p_dimension: (n_variants,) int16 index into ``dimensions`` of the dimension with the smallest p
            (-1 where none).
        dimensions: the dimension names.
    """

    p_value: np.ndarray
    min_p_dimension: np.ndarray
    dimensions: list[str]

    def at(self, details: pd.DataFrame) -> pd.DataFrame:
        """The joint table at some rows: their chromosome, base_pair_location and variant_id (``details``, indexed
        by row, :meth:`SumstatsScan.details`), with p_value and min_p_dimension ('' where none)."""
        rows = details.index.to_numpy()
        names = np.array([*self.dimensions, ""], dtype=object)  # index -1 -> ''
        return pd.DataFrame({"chromosome": details["chromosome"].to_numpy(np.int64),
                             "base_pair_location": details["base_pair_location"].to_numpy(),
                             "variant_id": details["variant_id"].to_numpy(), "p_value": self.p_value[rows],
                             "min_p_dimension": names[self.min_p_dimension[rows]]})


def aligned_joint(path: str | os.PathLike, index: VariantIndex, dimensions: list[str]) -> AlignedJoint:
    """A joint file's p-values and min-P dimensions in the row order of the variant table, read in chunks.

    Args:
        path: ``gwas/joint/joint.tsv.gz``.
        index: the variant table of the scan.
        dimensions: the scan's dimension names (a min-P dimension not among them counts as none).
    """
    path = Path(path)

    def convert(column: str, cells: pd.Series) -> np.ndarray:
        if column == "min_p_dimension":
            return pd.Categorical(cells, categories=dimensions).codes.astype(np.int16)
        return cells.to_numpy(np.float64)

    columns = _aligned(lambda wanted: read_joint_chunks(path, wanted), index, path,
                       {"p_value": (np.float64, np.nan), "min_p_dimension": (np.int16, -1)}, convert)
    return AlignedJoint(columns["p_value"], columns["min_p_dimension"], list(dimensions))


def variant_details(path: str | os.PathLike, rows: np.ndarray) -> pd.DataFrame:
    """The VARIANT_COLUMNS of some rows of a GWAS-SSF file, read chunk by chunk (stopping after the last row).

    Args:
        path: the file.
        rows: row numbers (0 = the first data line), any order, repeats allowed.

    Returns:
        One row per distinct row, indexed by it, sorted.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    parts = []
    start = 0
    if rows.size:
        for chunk in read_sumstats_chunks(path, VARIANT_COLUMNS):
            end = start + len(chunk.frame)
            lo, hi = np.searchsorted(rows, [start, end])
            if hi > lo:
                parts.append(chunk.frame.iloc[rows[lo:hi] - start].set_axis(rows[lo:hi]))
            start = end
            if hi == rows.size:
                break
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=np.int8 if c == "chromosome" else np.int64
                                          if c == "base_pair_location" else object) for c in VARIANT_COLUMNS})
    return pd.concat(parts)


@dataclass
class SumstatsScan:
    """What the loci stage keeps of all dimensions' summary statistics.

    Attributes:
        dimensions: dimension names, in file order.
        paths: their files.
        index: the first file's variant table (SCAN_FIELDS); its rows index everything else.
        min_p: (n_variants,) smallest p over dimensions (NaN where no dimension has one).
        min_dimension: (n_variants,) int16 index into ``dimensions`` of that smallest p (-1 where none).
        candidate_p: the threshold below which rows are kept per dimension.
        hit_rows: per dimension, the sorted rows with p < candidate_p.
        hit_p: per dimension, their p-values.
    """

    dimensions: list[str]
    paths: list[Path]
    index: VariantIndex
    min_p: np.ndarray
    min_dimension: np.ndarray
    candidate_p: float
    hit_rows: list[np.ndarray]
    hit_p: list[np.ndarray]
    _details: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def variants(self) -> pd.DataFrame:
        """The variant table (SCAN_FIELDS)."""
        return self.index.variants

    def details(self, rows: np.ndarray) -> pd.DataFrame:
        """The VARIANT_COLUMNS of some rows (index: the rows, each once, in the order asked), read from the first
        file once per row: rows asked for before are kept, so later steps re-read only rows they are the first
        to name."""
        asked = pd.unique(np.asarray(rows, dtype=np.int64))
        rows = np.sort(asked)
        known = self._details
        new = rows if known is None else np.setdiff1d(rows, known.index.to_numpy(), assume_unique=True)
        if new.size or known is None:
            read = variant_details(self.paths[0], new)
            known = read if known is None else pd.concat([known, read]).sort_index()
            self._details = known
        return known.loc[asked]

    def with_test(self, name: str, path: str | os.PathLike, p: np.ndarray) -> SumstatsScan:
        """This scan with one more test over the same variants (e.g. the joint test), clumped like a dimension.

        Args:
            name: the test's name (not a dimension's).
            path: its file.
            p: (n_variants,) its p-values in the variant table's order.
        """
        if name in self.dimensions:
            raise ValueError(f"a dimension is named '{name}', the name of the joint test's loci: rename it")
        better = p < np.where(np.isnan(self.min_p), np.inf, self.min_p)
        rows = np.flatnonzero(p < self.candidate_p).astype(self.hit_rows[0].dtype if self.hit_rows else np.int64)
        return SumstatsScan([*self.dimensions, name], [*self.paths, Path(path)], self.index,
                            np.where(better, p, self.min_p),
                            np.where(better, len(self.dimensions), self.min_dimension).astype(np.int16),
                            self.candidate_p, [*self.hit_rows, rows], [*self.hit_p, p[rows]], self._details)

    def p_values(self, dimension: int, rows: np.ndarray) -> np.ndarray:
        """p-values of one dimension at some rows; NaN where p >= candidate_p (not kept)."""
        hits, p = self.hit_rows[dimension], self.hit_p[dimension]
        out = np.full(np.shape(rows), np.nan)
        if hits.size:
            where = np.minimum(np.searchsorted(hits, rows), hits.size - 1)
            found = hits[where] == rows
            out[found] = p[where[found]]
        return out


#: A worker process's copy of the variant table (its SCAN_FIELDS, no text).
_WORKER_INDEX: VariantIndex | None = None


def _init_worker(variants: pd.DataFrame) -> None:
    global _WORKER_INDEX
    _WORKER_INDEX = VariantIndex(variants)


def _worker_p_values(path: Path) -> np.ndarray:
    return aligned_p_values(path, _WORKER_INDEX)


def scan_sumstats(
    files: dict[str, Path], candidate_p: float, threads: int = 1, progress: bool = True
) -> SumstatsScan:
    """Read every dimension once, keeping the candidate rows and the minimum p per variant.

    Memory: per variant 17 bytes of table and 10 of minimum p, per dimension 12 bytes for each row below
    ``candidate_p``, and one dimension's p-values per worker while it is read.

    Args:
        files: dimension name -> GWAS-SSF file (see :func:`sumstats_files`).
        candidate_p: rows with p below this are kept per dimension (FUMA's candidate SNP threshold).
        threads: worker processes that parse files in parallel (1: in this process).
        progress: show a tqdm bar over dimensions.

    Returns:
        The scan.
    """
    names, paths = list(files), list(files.values())
    variants, first_p = read_variants(paths[0])
    index = VariantIndex(variants)
    n = len(variants)
    min_p = np.full(n, np.nan)
    min_dimension = np.full(n, -1, dtype=np.int16)
    row_kind = np.int32 if n < 2**31 else np.int64  # rows kept per dimension: half the bytes
    hit_rows: list[np.ndarray] = []
    hit_p: list[np.ndarray] = []

    def absorb(dimension: int, p: np.ndarray) -> None:
        better = p < np.where(np.isnan(min_p), np.inf, min_p)  # NaN p never wins
        min_p[better] = p[better]
        min_dimension[better] = dimension
        rows = np.flatnonzero(p < candidate_p).astype(row_kind)
        hit_rows.append(rows)
        hit_p.append(p[rows])

    bar = tqdm(total=len(paths), desc="reading summary statistics", unit="dim", disable=not progress)
    absorb(0, first_p)
    del first_p
    bar.update()
    if threads > 1 and len(paths) > 1:
        with ProcessPoolExecutor(threads, initializer=_init_worker, initargs=(variants,)) as pool:
            for dimension, p in enumerate(pool.map(_worker_p_values, paths[1:]), start=1):
                absorb(dimension, p)
                bar.update()
    else:
        for dimension, path in enumerate(paths[1:], start=1):
            absorb(dimension, aligned_p_values(path, index))
            bar.update()
    bar.close()
    kept = sum(rows.size for rows in hit_rows)
    logger.info("read %d dimensions x %d variants; %d rows below p %g kept (%.1f MB)", len(paths), n, kept,
                candidate_p, kept * (np.dtype(row_kind).itemsize + 8) / 1e6)
    return SumstatsScan(names, paths, index, min_p, min_dimension, candidate_p, hit_rows, hit_p)
