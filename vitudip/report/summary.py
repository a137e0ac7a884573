"""``summary.tsv``: every merged locus, each dimension reaching it, that dimension's top PerDI regions and the
locus direction's own."""

from __future__ import annotations

import pandas as pd

from vitudip.report.tables import ranked_regions, split_dimensions

#: Regions listed per dimension.
TOP_REGIONS = 3

_LOCUS_FIELDS = ["locus", "chromosome", "start", "end", "lead_snp", "lead_p", "lead_dimension", "tests", "joint_p",
                 "novel"]


def _ranked_columns(top_n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{field}_{k}" for k in range(1, top_n + 1) for field in ("region", "side", "ks_score")]


def summary_columns(top_n: int = TOP_REGIONS) -> list[str]:
    """The columns of ``summary.tsv`` for ``top_n`` regions per dimension and per locus direction."""
    return [*_LOCUS_FIELDS, "dimension", "h2", "h2_se", "is_lead_dimension", "perdi_mapped", *_ranked_columns(top_n),
            "locus_mapped", *_ranked_columns(top_n, "locus_")]


def _top_fields(ranked: pd.DataFrame, top_n: int, prefix: str = "") -> dict:
    """``{prefix}region_k``, ``side_k``, ``ks_score_k`` of the first ``top_n`` rows of a ranking."""
    fields = {}
    for k, region in enumerate(ranked.head(top_n).itertuples(index=False), start=1):
        fields.update({f"{prefix}region_{k}": region.region, f"{prefix}side_{k}": region.side,
                       f"{prefix}ks_score_{k}": region.ks_score})
    return fields


def locus_dimensions(dimensions: object, lead: str) -> list[str]:
    """A locus' dimensions with its lead dimension (smallest p) first, the others in their listed order.

    A locus only the joint test reaches lists no dimension; its lead dimension (the one with the smallest
    p at its lead SNP) is then its only one, so the summary and the truth scoring still show its PerDI regions.
    """
    listed = split_dimensions(dimensions)
    return sorted(listed if lead in listed else [lead, *listed], key=lambda d: d != lead)


def study_summary(loci: pd.DataFrame, regions: pd.DataFrame, top_n: int = TOP_REGIONS,
                  locus_regions: pd.DataFrame | None = None, heritability: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per merged locus and dimension reaching it, with that dimension's and the locus's top PerDI regions.

    A dimension PerDI did not map (or with fewer than ``top_n`` ranked regions) gets
    missing values in the region columns, and ``perdi_mapped`` False when it has no row
    in ``regions`` at all; likewise a locus without a row in ``locus_regions`` gets
    ``locus_mapped`` False and empty ``locus_`` columns.

    Args:
        loci: loci_merged.tsv (locus, chromosome, start, end, lead_snp, lead_p, lead_dimension,
            dimensions as ``udip_003;udip_017``, tests (joint, single or both), joint_p, novel).
        regions: PerDI regions.tsv (dimension, region, side, ks_score, rank).
        top_n: regions per dimension, by rank.
        locus_regions: PerDI locus_regions.tsv (locus, lead_snp, region, side, ks_score, rank); None: no locus
            direction was mapped.
        heritability: the GWAS's dimensions' rows of gwas/heritability.tsv (dimension, h2, se); None: the h2
            columns stay empty.

    Returns:
        :func:`summary_columns` ``(top_n)``, loci in the table's order; header only without loci.
    """
    if top_n < 1:
        raise ValueError(f"the summary lists at least 1 region per dimension, got {top_n}")
    by_dimension = ranked_regions(regions)
    by_locus = ranked_regions(locus_regions, "locus") if locus_regions is not None else {}
    h2 = {} if heritability is None else dict(zip(heritability["dimension"], zip(heritability["h2"],
                                                                                   heritability["se"])))
    rows = []
    for locus in loci.to_dict("records"):
        own = by_locus.get(int(locus["locus"]))
        locus_fields = {"locus_mapped": own is not None, **(_top_fields(own, top_n, "locus_") if own is not None
                                                             else {})}
        for dimension in locus_dimensions(locus["dimensions"], locus["lead_dimension"]):
            row = {field: locus[field] for field in _LOCUS_FIELDS}
            ranked = by_dimension.get(dimension)
            estimate, se = h2.get(dimension, (float("nan"), float("nan")))
            row.update(dimension=dimension, h2=estimate, h2_se=se,
                       is_lead_dimension=dimension == locus["lead_dimension"], perdi_mapped=ranked is not None)
            if ranked is not None:
                row.update(_top_fields(ranked, top_n))
            row.update(locus_fields)
            rows.append(row)
    return pd.DataFrame(rows, columns=summary_columns(top_n))
