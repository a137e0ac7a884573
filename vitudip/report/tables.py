"""Reading the report's inputs, and the top PerDI regions of each dimension."""

from __future__ import annotations

import os

import pandas as pd

#: Columns the report reads from each input (more may be present).
LOCI_COLUMNS = ["locus", "chromosome", "start", "end", "lead_snp", "lead_p", "lead_dimension", "dimensions", "novel"]
REGIONS_COLUMNS = ["dimension", "region", "side", "ks_score", "rank"]
RECOVERY_COLUMNS = ["effect", "variant_id", "found", "locus", "lead_snp", "lead_distance_bp", "lead_p", "dimensions"]
TRUTH_REGIONS_COLUMNS = ["effect", "region", "side"]


def read_input(path: str | os.PathLike, columns: list[str], what: str) -> pd.DataFrame:
    """Read a tab-separated stage output that must hold ``columns``.

    Names (dimensions, regions, SNPs) stay strings; only ``NA`` and empty cells are missing.

    Args:
        path: the file.
        columns: columns it must have.
        what: what the table is, for the error message.

    Returns:
        The table.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a required column is missing (the message names the file and the columns).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} table not found: {path}")
    table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["NA", ""],
                        dtype={c: str for c in ("dimension", "dimensions", "lead_dimension", "region", "side")})
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} table {path} lacks column(s) {missing}; it has {list(table.columns)}")
    return table


def split_dimensions(cell: object) -> list[str]:
    """The dimensions of a ``udip_003;udip_017`` cell (none for a missing cell)."""
    return [d for d in str(cell).split(";") if d] if isinstance(cell, str) else []


def ranked_regions(regions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each mapped dimension's PerDI regions, best first, with ``position`` 1, 2, … in that order.

    ``position`` equals regions.tsv's ``rank`` for the tables the PerDI stage writes
    (ranks 1..n per dimension); ordering by position keeps "top n" well defined if a
    table has gaps or ties in ``rank``.

    Args:
        regions: PerDI regions.tsv (dimension, region, side, ks_score, rank, ...).

    Returns:
        dimension -> its rows sorted by rank, with a ``position`` column.
    """
    ordered = regions.sort_values(["dimension", "rank"], kind="stable")
    return {
        dimension: rows.assign(position=range(1, len(rows) + 1)).reset_index(drop=True)
        for dimension, rows in ordered.groupby("dimension", sort=True)
    }
