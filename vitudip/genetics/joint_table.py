"""The joint file ``joint.tsv.gz``: its columns and contract, its block writer and its reader.

One row per variant with both joint tests
(:class:`~vitudip.genetics.joint_stats.JointResult`); the joint step and the
torch engine write it, the joint step's summary and the loci step read it, chunk by
chunk (:func:`read_joint_chunks`): at 10 M variants the whole table would be gigabytes of
text cells.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.joint_stats import JointResult
from vitudip.genetics.pvalue_sketch import PValueSketch
from vitudip.genetics.sumstats import CHUNK_ROWS, SMALLEST_P, VariantTexts, _texts
from vitudip.io.atomic import StagedGzipWriter
from vitudip.io.tables import Table

#: Columns of ``joint.tsv.gz``, in file order.
JOINT_COLUMNS = [
    "chromosome", "base_pair_location", "effect_allele", "other_allele", "variant_id",
    "statistic", "df", "p_value", "n", "min_p", "min_p_dimension", "min_p_familywise",
]

#: The joint test's output, as the joint step writes it and the loci and report steps read it.
JOINT = Table("joint test file", required=("chromosome", "base_pair_location", "p_value"),
              text=("effect_allele", "other_allele", "variant_id", "min_p_dimension"),
              numbers=("statistic", "p_value", "min_p", "min_p_familywise"),
              integers=("chromosome", "base_pair_location", "df", "n"), strip=False, writer="the joint step")


def _format_integers(values: np.ndarray) -> list[str]:
    """Integers as the file's text cells.

    Args:
        values: integer-valued array (any dtype that casts to int64).
    """
    return [str(v) for v in np.asarray(values, dtype=np.int64).tolist()]


class JointWriter(StagedGzipWriter):
    """Write ``joint.tsv.gz`` in blocks, atomically (see :class:`StagedGzipWriter`).

    Args:
        path: final ``.tsv.gz`` path; its folder is created.
        dimensions: the test's dimension names (``min_p_dimension`` is written by name).
        compresslevel: gzip level.
    """

    def __init__(self, path: str | os.PathLike, dimensions: Sequence[str], compresslevel: int = 1) -> None:
        super().__init__(path, compresslevel)
        self._names = np.array([*dimensions, "NA"], dtype=object)  # index -1 (no dimension) -> NA
        self._handle.write(("\t".join(JOINT_COLUMNS) + "\n").encode())
        self.n_rows = 0

    def write(self, variants: VariantTexts, result: JointResult, n: np.ndarray | int) -> None:
        """Append one block of variants.

        Args:
            variants: from :func:`~vitudip.genetics.sumstats.variant_texts` (effect allele = ALT).
            result: the block's joint statistics.
            n: samples per variant (the smallest over the dimensions), one per variant or one for all.
        """
        if not variants.leading:
            return
        floored = [np.where(p < SMALLEST_P, SMALLEST_P, p) for p in (result.p_value, result.min_p,
                                                                      result.min_p_familywise)]
        columns = [
            variants.leading, variants.variant_id, _texts(result.statistic), _format_integers(result.df),
            _texts(floored[0]), _format_integers(np.broadcast_to(n, result.df.shape)), _texts(floored[1]),
            self._names[result.min_p_index].tolist(), _texts(floored[2]),
        ]
        self._handle.write(("\n".join(map("\t".join, zip(*columns))) + "\n").encode())
        self.n_rows += len(variants.leading)


def read_joint_chunks(path: str | os.PathLike, columns: Sequence[str] = tuple(JOINT_COLUMNS),
                      chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The reader of ``joint.tsv.gz``: some of its columns, chunk by chunk (NA as NaN, chromosome as int64).

    Memory is one chunk's, however many variants the file holds.

    Args:
        path: the joint file.
        columns: the JOINT_COLUMNS wanted, in the order wanted.
        chunk_rows: rows per chunk (at most).

    Yields:
        The file's rows in order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column, or a cell not of its kind (names the file, column and line).
    """
    yield from JOINT.read_chunks(path, columns, chunk_rows)


def read_joint(path: str | os.PathLike) -> pd.DataFrame:
    """A whole ``joint.tsv.gz`` (a test's, or a small study's): :func:`read_joint_chunks` joined.

    Args:
        path: the joint file.

    Returns:
        Its JOINT_COLUMNS, in file order.
    """
    chunks = list(read_joint_chunks(path))
    return pd.concat(chunks, ignore_index=True) if chunks else JOINT.read(path, columns=JOINT_COLUMNS)[JOINT_COLUMNS]


#: The threshold whose count a joint summary reports.
GENOME_WIDE = 5e-8


@dataclass
class JointSummary:
    """What one joint run wrote: its two tests' p-values as streamed sketches (λGC within the sketch's
    stated bound, :mod:`~vitudip.genetics.pvalue_sketch`) and counts below :data:`GENOME_WIDE`.

    Attributes:
        path: the joint file.
        statistic: sketch of the joint statistic's p-values.
        familywise: sketch of the min-P family-wise p-values.
        n_genome_wide: variants with joint statistic p below GENOME_WIDE.
        n_genome_wide_min_p: variants with min-P family-wise p below GENOME_WIDE.
    """

    path: Path
    statistic: PValueSketch = field(default_factory=PValueSketch)
    familywise: PValueSketch = field(default_factory=PValueSketch)
    n_genome_wide: int = 0
    n_genome_wide_min_p: int = 0

    def add(self, p_value: np.ndarray, min_p_familywise: np.ndarray) -> None:
        """Count one block of variants' p-values of both tests (NaN ignored)."""
        self.statistic.add(p_value)
        self.familywise.add(min_p_familywise)
        self.n_genome_wide += int(np.sum(p_value < GENOME_WIDE))
        self.n_genome_wide_min_p += int(np.sum(min_p_familywise < GENOME_WIDE))

    @classmethod
    def of_file(cls, path: str | os.PathLike, chunk_rows: int = CHUNK_ROWS) -> JointSummary:
        """The summary of a written joint file, read chunk by chunk (:func:`read_joint_chunks`)."""
        summary = cls(Path(path))
        for chunk in read_joint_chunks(path, ["p_value", "min_p_familywise"], chunk_rows):
            summary.add(chunk["p_value"].to_numpy(float), chunk["min_p_familywise"].to_numpy(float))
        return summary

    @property
    def n_variants(self) -> int:
        """Variants with a joint p-value."""
        return self.statistic.n

    @property
    def lambda_gc(self) -> float:
        """λGC of the joint statistic."""
        return self.statistic.lambda_gc()

    @property
    def lambda_min_p(self) -> float:
        """λGC of the min-P family-wise p."""
        return self.familywise.lambda_gc()
