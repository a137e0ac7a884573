"""The columns the report reads, and the top PerDI regions of each dimension."""

from __future__ import annotations

import pandas as pd

#: Columns the report reads from each input (more may be present).
LOCI_COLUMNS = ["locus", "chromosome", "start", "end", "lead_snp", "lead_p", "lead_dimension", "dimensions", "tests",
                "joint_p", "novel"]
REGIONS_COLUMNS = ["dimension", "region", "side", "ks_score", "rank"]


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
