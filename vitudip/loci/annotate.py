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
    "dimensions", "n_dimensions", "tests", "joint_p", "nearest_gene", "genes", "known_loci", "novel",
    *PASS_COLUMNS.values(),
]
#: The test name of the joint test's loci among the dimensions' (GenomicRiskLoci.tsv's ``dimension``).
JOINT_TEST = "joint"
#: ``tests`` of a merged locus: reached by the joint test only, by single dimensions only, or by both.
TESTS = ("joint", "single", "both")
RECOVERY_COLUMNS = [
    "effect", "variant_id", "chromosome", "base_pair_location", "found", "found_single", "found_joint", "tests",
    "locus", "lead_snp", "lead_position", "lead_distance_bp", "lead_p", "dimensions",
]
SUMMARY_COLUMNS = ["planted", "recovered", "merged_loci", "false_loci", "recovered_single", "recovered_joint",
                   "recovered_joint_only", "false_loci_single", "false_loci_joint"]


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


def _joint_at_leads(merged: pd.DataFrame, joint: pd.DataFrame) -> pd.DataFrame:
    """The joint table's p_value and min_p_dimension at each merged locus' lead SNP (NaN / '' where absent)."""
    keys = ["chromosome", "base_pair_location", "variant_id"]
    index = pd.MultiIndex.from_frame(joint[keys].astype({"chromosome": np.int64, "base_pair_location": np.int64,
                                                          "variant_id": str}))
    leads = pd.MultiIndex.from_arrays([merged["chromosome"].astype(np.int64), merged["lead_position"].astype(np.int64),
                                       merged["lead_snp"].astype(str)])
    rows = index.get_indexer(leads)
    found = rows >= 0
    return pd.DataFrame({
        "p_value": np.where(found, joint["p_value"].to_numpy(float)[np.maximum(rows, 0)], np.nan),
        "min_p_dimension": np.where(found, joint["min_p_dimension"].astype(str).to_numpy()[np.maximum(rows, 0)], ""),
    })


def _merge_groups(loci: pd.DataFrame, merge_distance_bp: int) -> np.ndarray:
    """The merged locus each locus falls in, numbered from 1.

    A locus joins the merged locus before it when both are on one chromosome and it starts less
    than ``merge_distance_bp`` after the furthest end so far of that merged locus (so overlapping
    loci merge too).

    Args:
        loci: GenomicRiskLoci rows (chr, start, end), sorted by chr, start and end, indexed 0 .. n - 1.
        merge_distance_bp: see :func:`merge_across_dimensions`.

    Returns:
        (n_loci,) merged locus numbers, non-decreasing.
    """
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
    return group


def _annotations(
    chromosome: int, start: int, end: int, lead_position: int, genes: pd.DataFrame | None,
    known: pd.DataFrame | None,
) -> dict[str, object]:
    """A merged locus' genes and known loci, and whether it is novel.

    Args:
        chromosome: the merged locus' chromosome (GWAS-SSF number).
        start: its first base pair.
        end: its last base pair.
        lead_position: its lead SNP's base pair.
        genes: see :func:`merge_across_dimensions` (None: no gene named).
        known: see :func:`merge_across_dimensions` (None: every locus is novel).

    Returns:
        nearest_gene, genes (those overlapping the locus, by start), known_loci (``chromosome:start-end`` of
        those overlapping it) and novel.
    """
    fields: dict[str, object] = {"nearest_gene": "", "genes": "", "known_loci": "", "novel": True}
    if genes is not None:
        inside = overlapping(chromosome, start, end, genes).sort_values("start")
        fields["genes"] = ";".join(map(str, inside["gene"]))
        fields["nearest_gene"] = nearest_gene(chromosome, lead_position, genes)
    if known is not None:
        hits = overlapping(chromosome, start, end, known)
        fields["known_loci"] = ";".join(f"{c}:{s}-{e}" for c, s, e in zip(hits["chromosome"], hits["start"],
                                                                          hits["end"]))
        fields["novel"] = hits.empty
    return fields


def _merged_locus(
    number: int, members: pd.DataFrame, genes: pd.DataFrame | None, known: pd.DataFrame | None
) -> dict[str, object]:
    """One merged locus from the loci it merges (see :func:`merge_across_dimensions`).

    Args:
        number: the merged locus' number.
        members: the GenomicRiskLoci rows it merges, of single dimensions and the joint test.
        genes: see :func:`merge_across_dimensions`.
        known: see :func:`merge_across_dimensions`.

    Returns:
        MERGED_COLUMNS but the thresholds' columns; joint_p is NaN and a locus only the joint test reaches
        has the joint test as ``lead_dimension`` (:func:`_fill_joint_p` sets both from the joint table).
    """
    by_joint = members["dimension"] == JOINT_TEST
    single = members[~by_joint]
    leading = single if len(single) else members
    top = leading.loc[leading["p"].idxmin()]
    chromosome, start, end = int(top["chr"]), int(members["start"].min()), int(members["end"].max())
    dimensions = sorted(set(single["dimension"]))
    row = {
        "locus": number, "chromosome": chromosome, "start": start, "end": end, "lead_snp": top["rsID"],
        "lead_uniqID": top["uniqID"], "lead_position": int(top["pos"]), "lead_p": float(top["p"]),
        "lead_dimension": top["dimension"], "dimensions": ";".join(dimensions), "n_dimensions": len(dimensions),
        "tests": "both" if by_joint.any() and len(single) else ("joint" if by_joint.any() else "single"),
        "joint_p": np.nan,
    }
    row.update(_annotations(chromosome, start, end, row["lead_position"], genes, known))
    return row


def _fill_joint_p(merged: pd.DataFrame, joint: pd.DataFrame) -> None:
    """Set, in place, each merged locus' ``joint_p``, and the ``lead_dimension`` of those only the joint test reaches.

    Args:
        merged: merged loci (from :func:`_merged_locus`).
        joint: see :func:`merge_across_dimensions`.
    """
    at_leads = _joint_at_leads(merged, joint)
    merged["joint_p"] = at_leads["p_value"].to_numpy()
    joint_only = (merged["tests"] == "joint").to_numpy()
    merged.loc[joint_only, "lead_dimension"] = at_leads["min_p_dimension"].to_numpy()[joint_only]


def merge_across_dimensions(
    loci: pd.DataFrame,
    merge_distance_bp: int,
    thresholds: Thresholds,
    genes: pd.DataFrame | None = None,
    known: pd.DataFrame | None = None,
    joint: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per genomic locus over all dimensions and the joint test.

    Loci of different dimensions are merged by the same rule as LD blocks within one
    (overlapping, or a gap below ``merge_distance_bp``); the merged locus spans them all
    and its lead SNP is the one with the smallest p among the single dimensions' loci.
    Loci of the joint test (``dimension`` :data:`JOINT_TEST`) merge alike; ``tests`` says
    which tests reach the merged locus (``joint``, ``single`` or ``both``), and ``dimensions``
    lists the single dimensions only. A locus only the joint test reaches takes the joint
    test's lead SNP and p, and as ``lead_dimension`` the dimension with the smallest p at
    that SNP (from ``joint``'s ``min_p_dimension``), so PerDI and the report have one to map.

    Args:
        loci: GenomicRiskLoci rows of every dimension (FUMA columns: dimension, rsID, uniqID, chr, pos, p,
            start, end).
        merge_distance_bp: see above.
        thresholds: which thresholds each lead p passes.
        genes: optional table chromosome, start, end, gene: genes overlapping the locus, and the one nearest its
            lead SNP.
        known: optional table chromosome, start, end: a locus overlapping none of them is novel.
        joint: the joint file's chromosome, base_pair_location, variant_id, p_value, min_p_dimension (None: no
            joint test; ``joint_p`` is then NA): gives ``joint_p``, the joint p of each lead SNP.

    Returns:
        MERGED_COLUMNS, ordered by chromosome and start.
    """
    if loci.empty:
        return pd.DataFrame(columns=MERGED_COLUMNS)
    loci = loci.sort_values(["chr", "start", "end"], kind="stable").reset_index(drop=True)
    groups = loci.groupby(_merge_groups(loci, merge_distance_bp), sort=True)
    merged = pd.DataFrame([_merged_locus(number, members, genes, known) for number, members in groups])
    if joint is not None:
        _fill_joint_p(merged, joint)
    for column, passed in thresholds.passes(merged["lead_p"]).items():
        merged[column] = passed
    return merged[MERGED_COLUMNS]


def truth_recovery(truth: pd.DataFrame, merged: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the merged loci recover planted causal SNPs (the simulated demo's truth/loci.tsv), per test.

    Args:
        truth: one row per planted SNP: effect, variant_id, chromosome, base_pair_location.
        merged: from :func:`merge_across_dimensions`.

    Returns:
        (recovery, summary): recovery has one row per planted SNP (RECOVERY_COLUMNS): found when a merged
        locus contains its position, ``found_single`` / ``found_joint`` when a locus reached by single
        dimensions / by the joint test does, ``tests`` of the containing loci (joint, single or both), with
        the best such locus' lead SNP, its distance in bp, lead p and dimensions; summary is one row
        (SUMMARY_COLUMNS): planted SNPs, recovered ones, merged loci, false loci (merged loci that contain no
        planted SNP), and the same per test: planted SNPs each test recovers (and the joint test alone), and
        the false loci each test reaches.
    """
    rows = []
    claimed: set[int] = set()
    for snp in truth.itertuples(index=False):
        hits = overlapping(int(snp.chromosome), int(snp.base_pair_location), int(snp.base_pair_location), merged)
        tests = set(hits["tests"])
        single, joint = bool(tests & {"single", "both"}), bool(tests & {"joint", "both"})
        row = {"effect": snp.effect, "variant_id": snp.variant_id, "chromosome": int(snp.chromosome),
               "base_pair_location": int(snp.base_pair_location), "found": not hits.empty, "found_single": single,
               "found_joint": joint, "tests": ("both" if single and joint else "single" if single else
                                               "joint" if joint else "")}
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
    false = merged[~merged["locus"].astype(int).isin(claimed)]
    summary = pd.DataFrame([{
        "planted": len(truth), "recovered": int(recovery["found"].sum()), "merged_loci": len(merged),
        "false_loci": len(false), "recovered_single": int(recovery["found_single"].sum()),
        "recovered_joint": int(recovery["found_joint"].sum()),
        "recovered_joint_only": int((recovery["found_joint"] & ~recovery["found_single"]).sum()),
        "false_loci_single": int(false["tests"].isin(["single", "both"]).sum()),
        "false_loci_joint": int(false["tests"].isin(["joint", "both"]).sum()),
    }], columns=SUMMARY_COLUMNS)
    return recovery, summary
