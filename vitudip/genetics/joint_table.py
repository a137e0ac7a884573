"""The joint file ``joint.tsv.gz``: its columns and contract, its block writer and its reader.

One row per variant with both joint tests
(:class:`~vitudip.genetics.joint_stats.JointResult`); the joint step and the
torch engine write it, the loci and report steps read it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.joint_stats import JointResult
from vitudip.genetics.sumstats import SMALLEST_P, VariantTexts, _texts
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


def read_joint(path: str | os.PathLike) -> pd.DataFrame:
    """A ``joint.tsv.gz`` as written by :class:`JointWriter` (NA as NaN).

    Args:
        path: the joint file.

    Returns:
        Its JOINT_COLUMNS, in file order.
    """
    return JOINT.read(path, columns=JOINT_COLUMNS)[JOINT_COLUMNS]


@dataclass(frozen=True)
class JointSummary:
    """What one joint run wrote.

    Attributes:
        path: the joint file.
        n_variants: variants with a joint p-value.
        lambda_gc: λGC of the joint statistic.
        lambda_min_p: λGC of the min-P family-wise p.
        n_genome_wide: variants with joint p below 5e-8.
    """

    path: Path
    n_variants: int
    lambda_gc: float
    lambda_min_p: float
    n_genome_wide: int

