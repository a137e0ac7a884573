"""``summary.tsv``: every merged locus, each dimension reaching it, and that dimension's top PerDI regions."""

from __future__ import annotations

import pandas as pd

from vitudip.report.tables import ranked_regions, split_dimensions

#: Regions listed per dimension.
TOP_REGIONS = 3

_LOCUS_FIELDS = ["locus", "chromosome", "start", "end", "lead_snp", "lead_p", "lead_dimension", "tests", "joint_p",
                 "novel"]


def summary_columns(top_n: int = TOP_REGIONS) -> list[str]:
    """The columns of ``summary.tsv`` for ``top_n`` regions per dimension."""
    ranked = [f"{field}_{k}" for k in range(1, top_n + 1) for field in ("region", "side", "ks_score")]
    return [*_LOCUS_FIELDS, "dimension", "is_lead_dimension", "perdi_mapped", *ranked]


def locus_dimensions(dimensions: object, lead: str) -> list[str]:
    """A locus' dimensions with its lead dimension (smallest p) first, the others in their listed order.

    A locus only the joint test reaches lists no dimension; its lead dimension (the one with the smallest
    p at its lead SNP) is then its only one, so the summary and the truth scoring still show its PerDI regions.
    """
    listed = split_dimensions(dimensions)
    return sorted(listed if lead in listed else [lead, *listed], key=lambda d: d != lead)


def study_summary(loci: pd.DataFrame, regions: pd.DataFrame, top_n: int = TOP_REGIONS) -> pd.DataFrame:
    """One row per merged locus and dimension reaching it, with that dimension's top PerDI regions.

    A dimension PerDI did not map (or with fewer than ``top_n`` ranked regions) gets
    missing values in the region columns, and ``perdi_mapped`` False when it has no row
    in ``regions`` at all.

    Args:
        loci: loci_merged.tsv (locus, chromosome, start, end, lead_snp, lead_p, lead_dimension,
            dimensions as ``udip_003;udip_017``, tests (joint, single or both), joint_p, novel).
        regions: PerDI regions.tsv (dimension, region, side, ks_score, rank).
        top_n: regions per dimension, by rank.

    Returns:
        :func:`summary_columns` ``(top_n)``, loci in the table's order; header only without loci.
    """
    if top_n < 1:
        raise ValueError(f"the summary lists at least 1 region per dimension, got {top_n}")
    by_dimension = ranked_regions(regions)
    rows = []
    for locus in loci.to_dict("records"):
        for dimension in locus_dimensions(locus["dimensions"], locus["lead_dimension"]):
            row = {field: locus[field] for field in _LOCUS_FIELDS}
            ranked = by_dimension.get(dimension)
            row.update(dimension=dimension, is_lead_dimension=dimension == locus["lead_dimension"],
                       perdi_mapped=ranked is not None)
            if ranked is not None:
                for k, region in enumerate(ranked.head(top_n).itertuples(index=False), start=1):
                    row.update({f"region_{k}": region.region, f"side_{k}": region.side,
                                f"ks_score_{k}": region.ks_score})
            rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(top_n))
