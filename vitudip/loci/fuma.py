"""FUMA's genomic risk loci of one GWAS (Watanabe et al. 2017, Nat Commun 8:1826), computed offline.

Definitions, with FUMA's parameter names in brackets:

* Independent significant SNPs: P < ``p_threshold`` [leadP, 5e-8] and r² < ``r2``
  [r2, 0.6] with each other, chosen greedily from the smallest p (ties by
  position): the index SNPs of plink 1.9 ``--clump --clump-p1 5e-8 --clump-r2 0.6
  --clump-kb 250`` with the default haplotype r² (tests/test_loci.py checks this).
* Candidate SNPs of one: SNPs with r² >= ``r2`` with it and P < ``candidate_p``
  [gwasP, 0.05], itself included. FUMA reads LD from a pre-computed table of
  nearby pairs; here pairs further apart than ``window_kb`` (default 250, plink's
  --clump-kb) count as r² = 0, for clumping and candidates alike. Only SNPs in
  the summary statistics are candidates (FUMA's option to add reference-panel
  SNPs is off), so nSNPs = nGWASSNPs.
* Lead SNPs: independent significant SNPs re-clumped at r² < ``lead_r2`` [r2_2, 0.1];
  each independent significant SNP belongs to the most significant lead SNP it
  is in LD with (r² >= lead_r2).
* LD block of an independent significant SNP: from its leftmost to its rightmost
  candidate SNP. Blocks closer than ``merge_distance_kb`` [mergeDist, 250] (gap
  between one block's end and the next one's start below it; overlapping blocks
  included) form one genomic risk locus; a lead SNP and its independent
  significant SNPs always share a locus.
* ``min_maf`` [MAF]: SNPs whose minor allele frequency in the LD reference is
  lower are ignored. ``exclude_mhc`` [exMHC]: SNPs in the MHC region of
  ``genome_build`` are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitudip.loci.ld import LDBlock
from vitudip.loci.settings import FumaSettings

#: The MHC region FUMA excludes: chromosome, first and last base pair, per genome build.
MHC_REGIONS = {"GRCh37": (6, 28_477_797, 33_448_354), "GRCh38": (6, 28_510_120, 33_480_577)}

IND_SIG_COLUMNS = ["dimension", "No", "GenomicLocus", "uniqID", "rsID", "chr", "pos", "p", "nSNPs", "nGWASSNPs"]
LEAD_COLUMNS = ["dimension", "No", "GenomicLocus", "uniqID", "rsID", "chr", "pos", "p", "nIndSigSNPs", "IndSigSNPs"]
LOCUS_COLUMNS = [
    "dimension", "GenomicLocus", "uniqID", "rsID", "chr", "pos", "p", "start", "end", "nSNPs", "nGWASSNPs",
    "nIndSigSNPs", "IndSigSNPs", "nLeadSNPs", "LeadSNPs",
]


def in_mhc(chromosome: np.ndarray, position: np.ndarray, genome_build: str) -> np.ndarray:
    """Boolean mask of variants inside the MHC region of ``genome_build``."""
    chrom, first, last = MHC_REGIONS[genome_build]
    return (np.asarray(chromosome) == chrom) & (np.asarray(position) >= first) & (np.asarray(position) <= last)


@dataclass
class IndependentSNP:
    """One independent significant SNP of one dimension, in the columns of an LDBlock.

    Attributes:
        column: its column.
        candidates: columns of its candidate SNPs (itself included), sorted.
        lead: column of the lead SNP it belongs to (its own column when it is one).
    """

    column: int
    candidates: np.ndarray
    lead: int


def independent_snps(
    block: LDBlock, p: np.ndarray, eligible: np.ndarray, settings: FumaSettings
) -> list[IndependentSNP]:
    """FUMA's independent significant SNPs of one dimension within one block, with candidates and lead SNPs.

    Args:
        block: genotypes of the block's variants (every variant within the window of a significant one).
        p: (len(block),) this dimension's p-values; NaN where unknown or >= candidate_p.
        eligible: (len(block),) mask of variants that pass the MAF and MHC filters.
        settings: thresholds.

    Returns:
        Independent significant SNPs from the smallest p.
    """
    p = np.where(eligible, p, np.nan)
    significant = np.flatnonzero(p < settings.p_threshold)
    # smallest p first; ties by position, as plink orders its input
    order = significant[np.lexsort((block.positions[significant], p[significant]))]
    clumped = np.zeros(len(block), dtype=bool)
    chosen: list[int] = []
    for column in order:
        if clumped[column]:
            continue
        chosen.append(int(column))
        lo, row = block.r2_row(int(column))
        clumped[lo : lo + row.size] |= row >= settings.r2
    candidate = p < settings.candidate_p
    snps: list[IndependentSNP] = []
    leads: list[int] = []
    for column in chosen:
        lo, row = block.r2_row(column)
        members = lo + np.flatnonzero((row >= settings.r2) & candidate[lo : lo + row.size])
        lead = next((lead for lead in leads if block.r2(lead, column) >= settings.lead_r2), None)
        if lead is None:
            leads.append(column)
            lead = column
        snps.append(IndependentSNP(column, np.union1d(members, [column]), lead))
    return snps


def assign_loci(chromosome: np.ndarray, start: np.ndarray, end: np.ndarray, lead: np.ndarray,
                merge_distance_bp: int) -> np.ndarray:
    """Genomic risk locus numbers of one dimension's independent significant SNPs.

    Args:
        chromosome, start, end: each SNP's chromosome and LD block.
        lead: for each SNP, the index (into these arrays) of its lead SNP.
        merge_distance_bp: blocks with a smaller gap are merged.

    Returns:
        (k,) locus numbers 1..L, ordered by chromosome and position.
    """
    k = len(start)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((end, start, chromosome))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    # cut[i]: a new locus starts at the i-th block in sorted order
    cut = np.ones(k, dtype=bool)
    reach = -np.inf
    for i, j in enumerate(order):
        if i > 0 and chromosome[j] == chromosome[order[i - 1]] and start[j] - reach < merge_distance_bp:
            cut[i] = False
        reach = end[j] if cut[i] else max(reach, end[j])
    for snp, owner in enumerate(lead):
        low, high = sorted((rank[snp], rank[owner]))
        cut[low + 1 : high + 1] = False
    numbers = np.empty(k, dtype=np.int64)
    numbers[order] = np.cumsum(cut)
    return numbers


def _uniq_ids(frame: pd.DataFrame) -> list[str]:
    """FUMA's uniqID: chr:pos:allele1:allele2 with the alleles in alphabetical order."""
    return [
        f"{c}:{p}:{':'.join(sorted((a, b)))}"
        for c, p, a, b in zip(frame["chromosome"], frame["base_pair_location"], frame["effect_allele"],
                              frame["other_allele"])
    ]


def empty_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three FUMA tables with headers and no rows."""
    return (pd.DataFrame(columns=IND_SIG_COLUMNS), pd.DataFrame(columns=LEAD_COLUMNS),
            pd.DataFrame(columns=LOCUS_COLUMNS))


def fuma_tables(dimension: str, snps: pd.DataFrame, variants: pd.DataFrame,
                merge_distance_bp: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """FUMA's IndSigSNPs, leadSNPs and GenomicRiskLoci tables of one dimension.

    Args:
        dimension: its name (the tables' first column).
        snps: one row per independent significant SNP: row (into ``variants``), p,
            lead_row (row of its lead SNP) and candidates (array of candidate rows).
        variants: the variant table (chromosome, base_pair_location, effect/other allele, variant_id), indexed by
            row; it may hold only the rows the SNPs name (theirs, their leads' and their candidates').
        merge_distance_bp: see :func:`assign_loci`.

    Returns:
        (IndSigSNPs, leadSNPs, GenomicRiskLoci) with FUMA's columns and ``dimension`` first.
    """
    if snps.empty:
        return empty_tables()
    rows = snps["row"].to_numpy()
    info = variants.loc[rows].reset_index(drop=True)
    pos = variants["base_pair_location"]
    start = np.array([pos.loc[c].min() for c in snps["candidates"]])
    end = np.array([pos.loc[c].max() for c in snps["candidates"]])
    index_of_row = {row: i for i, row in enumerate(rows)}
    lead = np.array([index_of_row[r] for r in snps["lead_row"]])
    chromosome = info["chromosome"].to_numpy()
    locus = assign_loci(chromosome, start, end, lead, merge_distance_bp)
    ind = pd.DataFrame({
        "dimension": dimension, "GenomicLocus": locus, "uniqID": _uniq_ids(info),
        "rsID": info["variant_id"].to_numpy(), "chr": chromosome, "pos": info["base_pair_location"].to_numpy(),
        "p": snps["p"].to_numpy(), "nSNPs": [len(c) for c in snps["candidates"]],
        "start": start, "end": end, "lead": lead, "candidates": snps["candidates"].to_numpy(),
    })
    ind["nGWASSNPs"] = ind["nSNPs"]
    ind = ind.sort_values(["chr", "pos"], kind="stable")
    ind.insert(1, "No", np.arange(1, len(ind) + 1))

    is_lead = ind.index.to_numpy() == ind["lead"].to_numpy()
    members = ind.groupby("lead", sort=False)["rsID"].agg(";".join)
    counts = ind.groupby("lead", sort=False).size()
    lead_table = ind[is_lead].copy()
    lead_table["nIndSigSNPs"] = counts.reindex(lead_table.index).to_numpy()
    lead_table["IndSigSNPs"] = members.reindex(lead_table.index).to_numpy()
    lead_table["No"] = np.arange(1, len(lead_table) + 1)

    loci = []
    for number, group in ind.groupby("GenomicLocus", sort=True):
        top = group.loc[group["p"].idxmin()]
        leads = group[group.index.to_numpy() == group["lead"].to_numpy()]
        candidates = np.unique(np.concatenate(group["candidates"].to_list()))
        loci.append({
            "dimension": dimension, "GenomicLocus": number, "uniqID": top["uniqID"], "rsID": top["rsID"],
            "chr": top["chr"], "pos": top["pos"], "p": top["p"], "start": group["start"].min(),
            "end": group["end"].max(), "nSNPs": candidates.size, "nGWASSNPs": candidates.size,
            "nIndSigSNPs": len(group), "IndSigSNPs": ";".join(group["rsID"]),
            "nLeadSNPs": len(leads), "LeadSNPs": ";".join(leads["rsID"]),
        })
    return ind[IND_SIG_COLUMNS], lead_table[LEAD_COLUMNS], pd.DataFrame(loci, columns=LOCUS_COLUMNS)
