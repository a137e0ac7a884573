"""One streaming pass over every dimension's GWAS-SSF file.

Reading 128 gzipped tables is the stage's main cost, so each file is read once,
chunk by chunk (:func:`~vitudip.genetics.sumstats.read_sumstats_chunks`), with only
the columns that are needed: the first file gives the variant table; the others
give p-values (their chromosome and position columns check that the rows are the
same variants in the same order, which holds for files written by one GWAS;
otherwise rows are matched by :data:`~vitudip.genetics.sumstats.VARIANT_KEY`).
What is kept per dimension: the rows with p below the candidate threshold, plus
the running minimum p over dimensions of every variant (for the Manhattan plot);
worker processes hold the variant key columns, not the variant table.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vitudip.genetics.joint_table import JOINT
from vitudip.genetics.sumstats import VARIANT_KEY, read_sumstats, read_sumstats_chunks

logger = logging.getLogger("vitudip.loci")

#: Columns the stage reads from the first file (the variant table).
VARIANT_FIELDS = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "variant_id", "p_value"]

#: Columns it reads from the others when their rows are the first file's.
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


def read_variants(path: str | os.PathLike) -> pd.DataFrame:
    """The variant table of one file with its p-values (VARIANT_FIELDS; chromosome as int8 GWAS-SSF numbers)."""
    chunks = [chunk.frame for chunk in read_sumstats_chunks(path, VARIANT_FIELDS)]
    return pd.concat(chunks, ignore_index=True) if chunks else read_sumstats(path, VARIANT_FIELDS)


def _aligned_rows(frame: pd.DataFrame, variants: pd.DataFrame | pd.MultiIndex, path: Path) -> np.ndarray:
    """Row of ``variants`` of each row of ``frame`` by the variant key (-1: absent)."""
    index = variants if isinstance(variants, pd.MultiIndex) else pd.MultiIndex.from_frame(variants[VARIANT_KEY])
    return index.get_indexer(pd.MultiIndex.from_frame(frame[VARIANT_KEY]))


def aligned_p_values(path: str | os.PathLike, variants: pd.DataFrame) -> np.ndarray:
    """p-values of one file in the row order of ``variants``, read chunk by chunk.

    Files written by one GWAS list the variant table's rows in its order (checked by chromosome and position);
    otherwise rows are matched by :data:`~vitudip.genetics.sumstats.VARIANT_KEY` in a second read.

    Args:
        path: GWAS-SSF file.
        variants: the variant table (from :func:`read_variants` of the first file); only its VARIANT_KEY
            columns are used.

    Returns:
        (len(variants),) float64; NaN for variants the file lacks.
    """
    path = Path(path)
    chromosome = variants["chromosome"].to_numpy()
    position = variants["base_pair_location"].to_numpy()
    p = np.full(len(variants), np.nan)
    start = 0
    for chunk in read_sumstats_chunks(path, P_FIELDS):
        frame = chunk.frame
        end = start + len(frame)
        if not (end <= len(variants) and np.array_equal(frame["chromosome"].to_numpy(), chromosome[start:end])
                and np.array_equal(frame["base_pair_location"].to_numpy(), position[start:end])):
            break
        p[start:end] = frame["p_value"].to_numpy()
        start = end
    else:
        if start == len(variants):
            return p
    p[:] = np.nan
    index = pd.MultiIndex.from_frame(variants[VARIANT_KEY])
    absent = 0
    for chunk in read_sumstats_chunks(path, [*VARIANT_KEY, "p_value"]):
        rows = _aligned_rows(chunk.frame, index, path)
        found = rows >= 0
        absent += int((~found).sum())
        p[rows[found]] = chunk.frame["p_value"].to_numpy()[found]
    if absent:
        logger.warning("%s: %d variants absent from the first file are ignored", path, absent)
    return p


def aligned_joint(path: str | os.PathLike, variants: pd.DataFrame) -> pd.DataFrame:
    """A joint file's p-values and min-P dimensions in the row order of ``variants``.

    Args:
        path: ``gwas/joint/joint.tsv.gz``.
        variants: the variant table of the scan.

    Returns:
        ``variants``' chromosome, base_pair_location and variant_id, with ``p_value`` (NaN where the joint
        file lacks the variant) and ``min_p_dimension`` ('' there).
    """
    path = Path(path)
    frame = JOINT.read(path, columns=[*VARIANT_FIELDS, "min_p_dimension"])
    frame["chromosome"] = frame["chromosome"].astype(np.int8)
    same = (len(frame) == len(variants)
            and all(np.array_equal(frame[c].to_numpy(), variants[c].to_numpy()) for c in P_FIELDS[:2]))
    rows = np.arange(len(frame)) if same else _aligned_rows(frame, variants, path)
    found = rows >= 0
    table = variants[["chromosome", "base_pair_location", "variant_id"]].reset_index(drop=True)
    table["p_value"] = np.nan
    table["min_p_dimension"] = ""
    table.loc[rows[found], "p_value"] = frame["p_value"].to_numpy(float)[found]
    table.loc[rows[found], "min_p_dimension"] = frame["min_p_dimension"].fillna("").astype(str).to_numpy()[found]
    return table


@dataclass
class SumstatsScan:
    """What the loci stage keeps of all dimensions' summary statistics.

    Attributes:
        dimensions: dimension names, in file order.
        paths: their files.
        variants: the first file's variant table (VARIANT_FIELDS less p_value); rows index everything else.
        min_p: (n_variants,) smallest p over dimensions (NaN where no dimension has one).
        min_dimension: (n_variants,) index into ``dimensions`` of that smallest p (-1 where none).
        candidate_p: the threshold below which rows are kept per dimension.
        hit_rows: per dimension, the sorted rows with p < candidate_p.
        hit_p: per dimension, their p-values.
    """

    dimensions: list[str]
    paths: list[Path]
    variants: pd.DataFrame
    min_p: np.ndarray
    min_dimension: np.ndarray
    candidate_p: float
    hit_rows: list[np.ndarray]
    hit_p: list[np.ndarray]

    def with_test(self, name: str, path: str | os.PathLike, p: np.ndarray) -> SumstatsScan:
        """This scan with one more test over the same variants (e.g. the joint test), clumped like a dimension.

        Args:
            name: the test's name (not a dimension's).
            path: its file (read again for regional plots).
            p: (n_variants,) its p-values in the variant table's order.
        """
        if name in self.dimensions:
            raise ValueError(f"a dimension is named '{name}', the name of the joint test's loci: rename it")
        better = p < np.where(np.isnan(self.min_p), np.inf, self.min_p)
        rows = np.flatnonzero(p < self.candidate_p)
        return SumstatsScan([*self.dimensions, name], [*self.paths, Path(path)], self.variants,
                            np.where(better, p, self.min_p),
                            np.where(better, len(self.dimensions), self.min_dimension).astype(np.int32),
                            self.candidate_p, [*self.hit_rows, rows], [*self.hit_p, p[rows]])

    def p_values(self, dimension: int, rows: np.ndarray) -> np.ndarray:
        """p-values of one dimension at some rows; NaN where p >= candidate_p (not kept)."""
        hits, p = self.hit_rows[dimension], self.hit_p[dimension]
        out = np.full(np.shape(rows), np.nan)
        if hits.size:
            where = np.minimum(np.searchsorted(hits, rows), hits.size - 1)
            found = hits[where] == rows
            out[found] = p[where[found]]
        return out


#: A worker process's copy of the variant key columns (not the whole table: the IDs stay in the parent).
_WORKER_VARIANTS: pd.DataFrame | None = None


def _init_worker(variants: pd.DataFrame) -> None:
    global _WORKER_VARIANTS
    _WORKER_VARIANTS = variants


def _worker_p_values(path: Path) -> np.ndarray:
    return aligned_p_values(path, _WORKER_VARIANTS)


def scan_sumstats(
    files: dict[str, Path], candidate_p: float, threads: int = 1, progress: bool = True
) -> SumstatsScan:
    """Read every dimension once, keeping the candidate rows and the minimum p per variant.

    Args:
        files: dimension name -> GWAS-SSF file (see :func:`sumstats_files`).
        candidate_p: rows with p below this are kept per dimension (FUMA's candidate SNP threshold).
        threads: worker processes that parse files in parallel (1: in this process).
        progress: show a tqdm bar over dimensions.

    Returns:
        The scan.
    """
    names, paths = list(files), list(files.values())
    first = read_variants(paths[0])
    variants = first.drop(columns="p_value")
    n = len(variants)
    min_p = np.full(n, np.nan)
    min_dimension = np.full(n, -1, dtype=np.int32)
    row_kind = np.int32 if n < 2**31 else np.int64  # rows kept per dimension: half the bytes
    hit_rows: list[np.ndarray] = []
    hit_p: list[np.ndarray] = []

    def absorb(index: int, p: np.ndarray) -> None:
        better = p < np.where(np.isnan(min_p), np.inf, min_p)  # NaN p never wins
        min_p[better] = p[better]
        min_dimension[better] = index
        rows = np.flatnonzero(p < candidate_p).astype(row_kind)
        hit_rows.append(rows)
        hit_p.append(p[rows])

    bar = tqdm(total=len(paths), desc="reading summary statistics", unit="dim", disable=not progress)
    absorb(0, first["p_value"].to_numpy())
    bar.update()
    if threads > 1 and len(paths) > 1:
        with ProcessPoolExecutor(threads, initializer=_init_worker, initargs=(variants[VARIANT_KEY],)) as pool:
            for index, p in enumerate(pool.map(_worker_p_values, paths[1:]), start=1):
                absorb(index, p)
                bar.update()
    else:
        for index, path in enumerate(paths[1:], start=1):
            absorb(index, aligned_p_values(path, variants))
            bar.update()
    bar.close()
    logger.info("read %d dimensions x %d variants", len(paths), n)
    return SumstatsScan(names, paths, variants, min_p, min_dimension, candidate_p, hit_rows, hit_p)
