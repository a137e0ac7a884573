"""One streaming pass over every dimension's GWAS-SSF file.

Reading 128 gzipped tables is the stage's main cost, so each file is read once,
with only the columns that are needed: the first file gives the variant table;
the others give p-values (their chromosome and position columns check that the
rows are the same variants in the same order, which holds for files written by
one GWAS; otherwise rows are matched by variant_id and alleles). What is kept
per dimension is small: the rows with p below the candidate threshold, plus the
running minimum p over dimensions of every variant (for the Manhattan plot).
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
from vitudip.genetics.sumstats import read_sumstats_columns, ssf_chromosome

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


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    """Some columns of a GWAS-SSF file, chromosomes as GWAS-SSF numbers, variant_id the genotype files' ID."""
    frame = read_sumstats_columns(path, columns)
    if frame["chromosome"].dtype.kind not in "iu":  # X, chr1, ...: convert each distinct name once
        names = frame["chromosome"].astype(str)
        frame["chromosome"] = names.map({n: ssf_chromosome(n) for n in names.unique()})
    frame["chromosome"] = frame["chromosome"].astype(np.int64)
    return frame


def read_variants(path: str | os.PathLike) -> pd.DataFrame:
    """The variant table of one file with its p-values (VARIANT_FIELDS)."""
    return _read_columns(Path(path), VARIANT_FIELDS)


def _same_rows(frame: pd.DataFrame, variants: pd.DataFrame) -> bool:
    """Whether ``frame`` lists the variant table's variants in its order (what one GWAS writes)."""
    return (len(frame) == len(variants)
            and np.array_equal(frame["base_pair_location"].to_numpy(), variants["base_pair_location"].to_numpy())
            and np.array_equal(frame["chromosome"].to_numpy(), variants["chromosome"].to_numpy()))


def _aligned_rows(frame: pd.DataFrame, variants: pd.DataFrame, path: Path) -> np.ndarray:
    """Row of ``variants`` of each row of ``frame`` by variant_id and alleles (-1: absent, logged)."""
    keys = ["variant_id", "effect_allele", "other_allele"]
    rows = pd.MultiIndex.from_frame(variants[keys]).get_indexer(pd.MultiIndex.from_frame(frame[keys]))
    if (rows < 0).any():
        logger.warning("%s: %d variants absent from the first file are ignored", path, int((rows < 0).sum()))
    return rows


def aligned_p_values(path: str | os.PathLike, variants: pd.DataFrame) -> np.ndarray:
    """p-values of one file in the row order of ``variants``.

    Args:
        path: GWAS-SSF file.
        variants: the variant table (from :func:`read_variants` of the first file).

    Returns:
        (len(variants),) float64; NaN for variants the file lacks.
    """
    path = Path(path)
    frame = _read_columns(path, P_FIELDS)
    if _same_rows(frame, variants):
        return frame["p_value"].to_numpy()
    frame = _read_columns(path, VARIANT_FIELDS)
    rows = _aligned_rows(frame, variants, path)
    found = rows >= 0
    p = np.full(len(variants), np.nan)
    p[rows[found]] = frame["p_value"].to_numpy()[found]
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
    frame["chromosome"] = frame["chromosome"].astype(np.int64)
    rows = np.arange(len(frame)) if _same_rows(frame, variants) else _aligned_rows(frame, variants, path)
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
    hit_rows: list[np.ndarray] = []
    hit_p: list[np.ndarray] = []

    def absorb(index: int, p: np.ndarray) -> None:
        better = p < np.where(np.isnan(min_p), np.inf, min_p)  # NaN p never wins
        min_p[better] = p[better]
        min_dimension[better] = index
        rows = np.flatnonzero(p < candidate_p)
        hit_rows.append(rows)
        hit_p.append(p[rows])

    bar = tqdm(total=len(paths), desc="reading summary statistics", unit="dim", disable=not progress)
    absorb(0, first["p_value"].to_numpy())
    bar.update()
    if threads > 1 and len(paths) > 1:
        with ProcessPoolExecutor(threads, initializer=_init_worker, initargs=(variants,)) as pool:
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
