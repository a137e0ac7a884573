"""Loci merged across dimensions, named by genes, marked novel, and scored against planted truth.

Intervals are closed, in base pairs: [start, end] and [a, b] overlap when
start <= b and a <= end, so loci touching at one base pair overlap and adjacent
ones (end + 1 == a) do not.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from vitudip.genetics.sumstats import ssf_chromosome
from vitudip.io.tables import Table
from vitudip.loci.thresholds import PASS_COLUMNS, Thresholds

MERGED_COLUMNS = [
    "locus", "chromosome", "start", "end", "lead_snp", "lead_uniqID", "lead_position", "lead_p", "lead_dimension",
    "dimensions", "n_dimensions", "nearest_gene", "genes", "known_loci", "novel", *PASS_COLUMNS.values(),
]
RECOVERY_COLUMNS = [
    "effect", "variant_id", "chromosome", "base_pair_location", "found", "locus", "lead_snp", "lead_position",
    "lead_distance_bp", "lead_p", "dimensions",
]
SUMMARY_COLUMNS = ["planted", "recovered", "merged_loci", "false_loci"]


#: The user's gene table (``inputs.genes``), and known loci (``inputs.known_loci``) that novel loci overlap none of.
GENES = Table("genes table", required=("chromosome", "start", "end", "gene"), text=("chromosome", "gene"),
              integers=("start", "end"))
KNOWN_LOCI = Table("known loci table", required=("chromosome", "start", "end"), text=("chromosome",),
                   integers=("start", "end"))


def read_positions(path: str | os.PathLike, table: Table, columns: list[str] | None = None) -> pd.DataFrame:
    """A table with a ``chromosome`` column (genes, known loci, truth loci), chromosomes as GWAS-SSF numbers.

    Args:
        path: the file.
        table: its contract (:data:`GENES`, :data:`KNOWN_LOCI` or the demo's truth loci).
        columns: columns to read besides the contract's required ones (None: all).
    """
    frame = table.read(path, columns=columns)
    frame["chromosome"] = [ssf_chromosome(c) for c in frame["chromosome"]]
    return frame


def overlapping(chromosome: int, start: int, end: int, intervals: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``intervals`` (chromosome, start, end) that overlap the closed interval [start, end]."""
    hit = (intervals["chromosome"].to_numpy() == chromosome) & (intervals["start"].to_numpy() <= end) & (
        intervals["end"].to_numpy() >= start
    )
    return intervals[hit]


def nearest_gene(chromosome: int, position: int, genes: pd.DataFrame) -> str:
    """The gene closest to a position (distance 0 inside it); '' when the chromosome has none."""
    on = genes[genes["chromosome"].to_numpy() == chromosome]
    if on.empty:
        return ""
    distance = np.maximum(on["start"].to_numpy() - position, 0) + np.maximum(position - on["end"].to_numpy(), 0)
    return str(on["gene"].to_numpy()[int(np.argmin(distance))])


def merge_across_dimensions(
    loci: pd.DataFrame,
    merge_distance_bp: int,
    thresholds: Thresholds,
    genes: pd.DataFrame | None = None,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per genomic locus over all dimensions.

    Loci of different dimensions are merged by the same rule as LD blocks within one
    (overlapping, or a gap below ``merge_distance_bp``); the merged locus spans them all
    and its lead SNP is the one with the smallest p.

    Args:
        loci: GenomicRiskLoci rows of every dimension (FUMA columns: dimension, rsID, uniqID, chr, pos, p,
            start, end).
        merge_distance_bp: see above.
        thresholds: which thresholds each lead p passes.
        genes: optional table chromosome, start, end, gene: genes overlapping the locus, and the one nearest its
            lead SNP.
        known: optional table chromosome, start, end: a locus overlapping none of them is novel.

    Returns:
        MERGED_COLUMNS, ordered by chromosome and start.
    """
    if loci.empty:
        return pd.DataFrame(columns=MERGED_COLUMNS)
    loci = loci.sort_values(["chr", "start", "end"], kind="stable").reset_index(drop=True)
    group = np.zeros(len(loci), dtype=np.int64)
    reach = -np.inf
    for i in range(len(loci)):
        same = i > 0 and loci.at[i, "chr"] == loci.at[i - 1, "chr"]
        if same and loci.at[i, "start"] - reach < merge_distance_bp:
            group[i] = group[i - 1]
            reach = max(reach, loci.at[i, "end"])
        else:
            group[i] = group[i - 1] + 1 if i > 0 else 1
            reach = loci.at[i, "end"]
    rows = []
    for number, members in loci.groupby(group, sort=True):
        top = members.loc[members["p"].idxmin()]
        chromosome, start, end = int(top["chr"]), int(members["start"].min()), int(members["end"].max())
        dimensions = sorted(set(members["dimension"]))
        row = {
            "locus": number, "chromosome": chromosome, "start": start, "end": end, "lead_snp": top["rsID"],
            "lead_uniqID": top["uniqID"], "lead_position": int(top["pos"]), "lead_p": float(top["p"]),
            "lead_dimension": top["dimension"], "dimensions": ";".join(dimensions), "n_dimensions": len(dimensions),
            "nearest_gene": "", "genes": "", "known_loci": "", "novel": True,
        }
        if genes is not None:
            inside = overlapping(chromosome, start, end, genes).sort_values("start")
            row["genes"] = ";".join(map(str, inside["gene"]))
            row["nearest_gene"] = nearest_gene(chromosome, row["lead_position"], genes)
        if known is not None:
            hits = overlapping(chromosome, start, end, known)
            row["known_loci"] = ";".join(f"{c}:{s}-{e}" for c, s, e in zip(hits["chromosome"], hits["start"],
                                                                           hits["end"]))
            row["novel"] = hits.empty
        rows.append(row)
    merged = pd.DataFrame(rows)
    for column, passed in thresholds.passes(merged["lead_p"]).items():
        merged[column] = passed
    return merged[MERGED_COLUMNS]


def truth_recovery(truth: pd.DataFrame, merged: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the merged loci recover planted causal SNPs (the simulated demo's truth/loci.tsv).

    Args:
        truth: one row per planted SNP: effect, variant_id, chromosome, base_pair_location.
        merged: from :func:`merge_across_dimensions`.

    Returns:
        (recovery, summary): recovery has one row per planted SNP (RECOVERY_COLUMNS): found when a merged
        locus contains its position, with that locus' lead SNP, its distance in bp, lead p and dimensions;
        summary is one row (SUMMARY_COLUMNS): planted SNPs, recovered ones, merged loci, and false loci
        (merged loci that contain no planted SNP).
    """
    rows = []
    claimed: set[int] = set()
    for snp in truth.itertuples(index=False):
        hits = overlapping(int(snp.chromosome), int(snp.base_pair_location), int(snp.base_pair_location), merged)
        row = {"effect": snp.effect, "variant_id": snp.variant_id, "chromosome": int(snp.chromosome),
               "base_pair_location": int(snp.base_pair_location), "found": not hits.empty}
        if not hits.empty:
            best = hits.loc[hits["lead_p"].idxmin()]
            claimed.update(int(n) for n in hits["locus"])
            row.update(locus=int(best["locus"]), lead_snp=best["lead_snp"], lead_position=int(best["lead_position"]),
                       lead_distance_bp=abs(int(best["lead_position"]) - int(snp.base_pair_location)),
                       lead_p=float(best["lead_p"]), dimensions=best["dimensions"])
        rows.append(row)
    recovery = pd.DataFrame(rows, columns=RECOVERY_COLUMNS)
    for column in ("locus", "lead_position", "lead_distance_bp"):
        recovery[column] = recovery[column].astype("Int64")
    summary = pd.DataFrame([{
        "planted": len(truth), "recovered": int(recovery["found"].sum()), "merged_loci": len(merged),
        "false_loci": len(merged) - len(claimed),
    }], columns=SUMMARY_COLUMNS)
    return recovery, summary
