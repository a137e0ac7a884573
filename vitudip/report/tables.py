"""The columns the report reads, and the top PerDI regions of each dimension."""

from __future__ import annotations

import pandas as pd

#: Columns the report reads from each input (more may be present).
LOCI_COLUMNS = ["locus", "chromosome", "start", "end", "lead_snp", "lead_p", "lead_dimension", "dimensions", "tests",
                "joint_p", "novel"]
REPLICATION_COLUMNS = ["locus", "replicated", "replicated_bonferroni"]
REGIONS_COLUMNS = ["dimension", "region", "side", "ks_score", "rank"]
LOCUS_REGIONS_COLUMNS = ["locus", "region", "side", "ks_score", "rank"]


def split_dimensions(cell: object) -> list[str]:
    """The dimensions of a ``udip_003;udip_017`` cell (none for a missing cell)."""
    return [d for d in str(cell).split(";") if d] if isinstance(cell, str) else []


def ranked_regions(regions: pd.DataFrame, key: str = "dimension") -> dict:
    """Each mapped dimension's (or locus's) PerDI regions, best first, with ``position`` 1, 2, … in that order.

    ``position`` equals regions.tsv's ``rank`` for the tables the PerDI stage writes
    (ranks 1..n per dimension); ordering by position keeps "top n" well defined if a
    table has gaps or ties in ``rank``.

    Args:
        regions: PerDI regions.tsv (dimension, region, side, ks_score, rank, ...) or locus_regions.tsv
            (locus, ...).
        key: the column naming what was mapped: ``dimension`` or ``locus``.

    Returns:
        dimension (or locus number) -> its rows sorted by rank, with a ``position`` column.
    """
    ordered = regions.sort_values([key, "rank"], kind="stable")
    return {
        name: rows.assign(position=range(1, len(rows) + 1)).reset_index(drop=True)
        for name, rows in ordered.groupby(key, sort=True)
    }


def with_replication(frame: pd.DataFrame, replication: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one or more rows per locus) with each locus's ``replicated`` and ``replicated_bonferroni``.

    Args:
        frame: rows with a ``locus`` column (missing for a planted SNP no locus recovered: not replicated).
        replication: loci/replication.tsv (REPLICATION_COLUMNS).
    """
    flags = replication.set_index(replication["locus"].astype("Int64"))
    out = frame.copy()
    locus = out["locus"].astype("Int64")
    for column in REPLICATION_COLUMNS[1:]:
        out[column] = locus.map(flags[column].astype(bool)).fillna(False).astype(bool).to_numpy()
    return out
