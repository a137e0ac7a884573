"""The ``loci`` stage: FUMA-style genomic risk loci of every dimension, merged across dimensions.

Steps: one pass over the summary statistics (:mod:`vitudip.loci.scan`); regions
= the LD windows around every SNP significant in any dimension, merged; per
region, the genotypes of its variants are read once from the LD reference and
each dimension with a significant SNP there is clumped (:mod:`vitudip.loci.fuma`),
so r² computed for one dimension is reused by the others; then the FUMA tables,
the loci merged across dimensions, the figures, and (for the demo) the recovery
of planted SNPs. Every output is staged and moved into place together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import LOCI_MERGED, TRUTH_LOCI, TRUTH_RECOVERY
from vitudip.loci.annotate import (
    GENES,
    JOINT_TEST,
    KNOWN_LOCI,
    merge_across_dimensions,
    overlapping,
    read_positions,
    truth_recovery,
)
from vitudip.loci.fuma import LOCUS_COLUMNS, empty_tables, fuma_tables, in_mhc, independent_snps
from vitudip.loci.ld import LDBlock, LDReference, pair_r2
from vitudip.loci.scan import (
    AlignedJoint,
    SumstatsScan,
    aligned_joint,
    aligned_p_values,
    scan_sumstats,
    sumstats_files,
)
from vitudip.loci.settings import FumaSettings, LociSettings
from vitudip.loci.thresholds import Thresholds, study_thresholds
from vitudip.plots.loci import plot_manhattan, plot_regional

logger = logging.getLogger("vitudip.loci")

#: Output name -> file (or folder) under the stage's output folder.
OUTPUT_FILES = {
    "ind_sig_snps": "IndSigSNPs.tsv",
    "lead_snps": "leadSNPs.tsv",
    "genomic_risk_loci": "GenomicRiskLoci.tsv",
    "loci_merged": "loci_merged.tsv",
    "thresholds": "thresholds.tsv",
    "manhattan": "manhattan.png",
    "regional": "regional",
}
#: Written too when a truth table (the simulated demo's) is given.
TRUTH_FILES = {"truth_recovery": "truth_recovery.tsv", "truth_summary": "truth_summary.tsv"}

_SNP_FIELDS = ["row", "p", "lead_row", "candidates"]


def _regions(
    chromosome: np.ndarray, position: np.ndarray, seeds: np.ndarray, window_bp: int
) -> list[tuple[int, int, int]]:
    """Merged windows of ±window_bp around the seed variants: (chromosome, first bp, last bp)."""
    rows = np.flatnonzero(seeds)
    rows = rows[np.lexsort((position[rows], chromosome[rows]))]
    regions: list[tuple[int, int, int]] = []
    for c, x in zip(chromosome[rows], position[rows]):
        lo, hi = int(x) - window_bp, int(x) + window_bp
        if regions and regions[-1][0] == c and lo <= regions[-1][2]:
            regions[-1] = (int(c), regions[-1][1], hi)
        else:
            regions.append((int(c), lo, hi))
    return regions


class _VariantLookup:
    """Rows of the variant table by chromosome and position range."""

    def __init__(self, chromosome: np.ndarray, position: np.ndarray) -> None:
        self.order = np.lexsort((position, chromosome))
        self.chromosome = chromosome[self.order]
        self.position = position[self.order]

    def rows(self, chromosome: int, first: int, last: int) -> np.ndarray:
        """Rows on ``chromosome`` with first <= position <= last, sorted by position."""
        lo = np.searchsorted(self.chromosome, chromosome, side="left")
        hi = np.searchsorted(self.chromosome, chromosome, side="right")
        a = lo + np.searchsorted(self.position[lo:hi], first, side="left")
        b = lo + np.searchsorted(self.position[lo:hi], last, side="right")
        return self.order[a:b]


def _reference_rows(reference: LDReference, scan: SumstatsScan, rows: np.ndarray) -> np.ndarray:
    """Reference rows of the variant table, looked up (in one merge) only at ``rows``; -1 elsewhere or absent."""
    located = np.full(len(scan.variants), -1, dtype=np.int64)
    details = scan.details(rows)
    located[details.index.to_numpy()] = reference.locate(details)
    return located


def _check_lacking(reference: LDReference, scan: SumstatsScan, lacking: np.ndarray, skip: bool) -> None:
    """A significant SNP the LD reference lacks stops the stage (one line naming it) unless ``skip``."""
    if lacking.size == 0:
        return
    row = int(lacking[np.argmin(scan.min_p[lacking])])
    snp = scan.details(np.array([row])).loc[row]
    message = (f"{lacking.size} significant SNP(s) are not in the LD genotypes {reference.description} "
               f"(matched by variant_id, chromosome and alleles), e.g. {snp['variant_id']} "
               f"(chromosome {snp['chromosome']}, position {snp['base_pair_location']}, "
               f"p {scan.min_p[row]:.3g} in {scan.dimensions[scan.min_dimension[row]]})")
    if not skip:
        raise ValueError(message + "; use the GWAS genotypes, or skip them with loci.skip_missing_ld: true "
                                   "in the config")
    logger.warning("%s: skipped", message)


def independent_significant_snps(
    scan: SumstatsScan, reference: LDReference, settings: FumaSettings, skip_missing_ld: bool = False,
    progress: bool = True,
) -> dict[int, pd.DataFrame]:
    """Independent significant SNPs of every dimension, with their candidate SNPs and lead SNPs.

    Args:
        scan: the summary statistics.
        reference: LD reference genotypes.
        settings: FUMA thresholds.
        skip_missing_ld: drop significant SNPs the reference lacks (with a warning) instead of failing.
        progress: show a tqdm bar over regions.

    Returns:
        Dimension index -> one row per independent significant SNP: row and lead_row (variant table rows),
        p, candidates (array of rows); dimensions without any are absent.
    """
    chromosome = scan.variants["chromosome"].to_numpy()
    position = scan.variants["base_pair_location"].to_numpy()
    excluded = in_mhc(chromosome, position, settings.genome_build) if settings.exclude_mhc else np.zeros(
        len(position), dtype=bool)
    if excluded.any():
        logger.info("%d variants in the MHC (%s) excluded", int(excluded.sum()), settings.genome_build)
    significant = (scan.min_p < settings.p_threshold) & ~excluded
    candidate = (scan.min_p < settings.candidate_p) & ~excluded
    regions = _regions(chromosome, position, significant, settings.window_bp)
    logger.info("%d variants significant in some dimension, in %d LD regions", int(significant.sum()), len(regions))
    lookup = _VariantLookup(chromosome, position)
    region_rows = [lookup.rows(c, first, last) for c, first, last in regions]
    region_rows = [rows[candidate[rows]] for rows in region_rows]
    located = _reference_rows(reference, scan, np.concatenate(region_rows or [np.zeros(0, np.int64)]))
    _check_lacking(reference, scan, np.flatnonzero(significant & (located < 0)), skip_missing_ld)
    records: dict[int, list[dict]] = {}
    for rows in tqdm(region_rows, desc="LD regions", unit="region", disable=not progress):
        rows = rows[located[rows] >= 0]
        if not significant[rows].any():
            continue
        block = LDBlock(reference.read(located[rows]), position[rows], settings.window_bp, settings.ld_method)
        eligible = block.maf >= settings.min_maf
        for d in range(len(scan.dimensions)):
            p = scan.p_values(d, rows)
            if not np.any(p < settings.p_threshold):
                continue
            for snp in independent_snps(block, p, eligible, settings):
                records.setdefault(d, []).append(
                    {"row": rows[snp.column], "p": p[snp.column], "lead_row": rows[snp.lead],
                     "candidates": rows[snp.candidates]}
                )
    return {d: pd.DataFrame(found, columns=_SNP_FIELDS) for d, found in sorted(records.items())}


def _stack(tables: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    """Concatenate per-dimension tables (the empty one, with its header, when there are none)."""
    return pd.concat(tables, ignore_index=True) if tables else empty


def _write_regional_plots(folder: Path, merged: pd.DataFrame, tests: _ScannedTests, reference: LDReference,
                          settings: FumaSettings, flank_bp: int, genes: pd.DataFrame | None) -> None:
    """One regional plot per merged locus: the lead dimension's p, coloured by r² with the lead SNP.

    The loci are drawn grouped by the dimension they show, whose p-values are read once and dropped before the
    next dimension's: one dimension's p-values are held at a time, however many dimensions have loci.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scan = tests.scan
    chromosome = scan.variants["chromosome"].to_numpy()
    position = scan.variants["base_pair_location"].to_numpy()
    lookup = _VariantLookup(chromosome, position)
    spans = [(int(locus.chromosome), int(locus.start) - flank_bp, int(locus.end) + flank_bp)
             for locus in merged.itertuples(index=False)]
    span_rows = [lookup.rows(*span) for span in spans]
    located = _reference_rows(reference, scan, np.concatenate(span_rows or [np.zeros(0, np.int64)]))
    # a locus only the joint test reaches is drawn with the joint p, as its lead SNP was found
    loci = list(merged.itertuples(index=False))
    shown = [JOINT_TEST if locus.tests == "joint" else locus.lead_dimension for locus in loci]
    for dimension in dict.fromkeys(shown):  # loci often share a lead dimension
        p = (tests.joint.p_value if dimension == JOINT_TEST
             else aligned_p_values(scan.paths[scan.dimensions.index(dimension)], scan.index))
        for number in (i for i, name in enumerate(shown) if name == dimension):
            locus, (_, first, last), rows = loci[number], spans[number], span_rows[number]
            held = rows[located[rows] >= 0]
            ids = scan.details(held)["variant_id"].to_numpy()
            lead = np.flatnonzero((ids == locus.lead_snp) & (position[held] == locus.lead_position))
            r2 = np.full(rows.size, np.nan)
            if lead.size:
                r2[located[rows] >= 0] = pair_r2(reference.read(located[held]), int(lead[0]), slice(None),
                                                 settings.ld_method)
            nearby = overlapping(int(locus.chromosome), first, last, genes) if genes is not None else None
            title = (f"locus {locus.locus}: chr{locus.chromosome}:{locus.start}-{locus.end}, lead {locus.lead_snp} "
                     f"({dimension}, p {locus.lead_p:.2g}); {locus.n_dimensions} dimension(s), tests: {locus.tests}")
            plot_regional(position[rows], p[rows], r2, int(locus.lead_position), title,
                          folder / f"locus_{locus.locus:03d}.png", span=(first, last),
                          genome_wide=settings.p_threshold, genes=nearby)
        del p


@dataclass(frozen=True)
class _PositionTables:
    """The optional small tables of positions the stage annotates and scores its loci with.

    Attributes:
        genes: chromosome, start, end, gene (names loci); None without a genes table.
        known: chromosome, start, end (merged loci overlapping none are novel); None without known loci.
        truth: the simulated demo's planted SNPs (effect, variant_id, chromosome, base_pair_location); None
            without a truth table.
    """

    genes: pd.DataFrame | None
    known: pd.DataFrame | None
    truth: pd.DataFrame | None


def _read_position_tables(
    genes: str | os.PathLike | None, known_loci: str | os.PathLike | None, truth: str | os.PathLike | None
) -> _PositionTables:
    """Read the optional tables of positions, chromosomes as GWAS-SSF numbers.

    Args:
        genes: the genes table's file, or None.
        known_loci: the known loci table's file, or None.
        truth: the simulated demo's truth/loci.tsv, or None.
    """
    return _PositionTables(
        genes=read_positions(genes, GENES) if genes else None,
        known=read_positions(known_loci, KNOWN_LOCI) if known_loci else None,
        truth=(read_positions(truth, TRUTH_LOCI, ["effect", "variant_id", "chromosome", "base_pair_location"])
               if truth else None),
    )


@dataclass(frozen=True)
class _ScannedTests:
    """The summary statistics of every test the stage clumps.

    Attributes:
        scan: every dimension, and the joint test as one more test when it is given.
        single_min_p: (n_variants,) the smallest p over the single dimensions (the Manhattan plot's points).
        joint: the joint file's p and min-P dimension in the order of ``scan.variants`` (:func:`aligned_joint`);
            None without one.
    """

    scan: SumstatsScan
    single_min_p: np.ndarray
    joint: AlignedJoint | None


def _scan_tests(
    files: dict[str, Path], candidate_p: float, joint: str | os.PathLike | None, threads: int, progress: bool
) -> _ScannedTests:
    """Read every dimension's summary statistics once, and the joint test's p when given.

    Args:
        files: dimension name -> GWAS-SSF file (see :func:`sumstats_files`).
        candidate_p: rows below this p are kept per test.
        joint: the joint test's ``joint.tsv.gz``, or None.
        threads: processes that read summary statistics.
        progress: show a progress bar.
    """
    single = scan_sumstats(files, candidate_p, threads, progress)
    if joint is None:
        return _ScannedTests(single, single.min_p, None)
    aligned = aligned_joint(joint, single.index, single.dimensions)
    scan = single.with_test(JOINT_TEST, joint, aligned.p_value)
    return _ScannedTests(scan, single.min_p, aligned)


@dataclass(frozen=True)
class _LociTables:
    """The stage's tables of SNPs and loci.

    Attributes:
        ind_sig: independent significant SNPs of every test (IndSigSNPs.tsv).
        lead_snps: their lead SNPs (leadSNPs.tsv).
        loci: genomic risk loci of every test, with the thresholds their p passes (GenomicRiskLoci.tsv).
        merged: the loci merged across tests (loci_merged.tsv).
    """

    ind_sig: pd.DataFrame
    lead_snps: pd.DataFrame
    loci: pd.DataFrame
    merged: pd.DataFrame


def _loci_tables(
    tests: _ScannedTests, found: dict[int, pd.DataFrame], merge_distance_bp: int, thresholds: Thresholds,
    positions: _PositionTables,
) -> _LociTables:
    """The FUMA tables of every test, stacked, and their loci merged across tests.

    Args:
        tests: the scanned summary statistics.
        found: test index -> its independent significant SNPs (:func:`independent_significant_snps`).
        merge_distance_bp: loci closer than this merge, within a test and across tests.
        thresholds: the study's thresholds, marked on every locus and merged locus.
        positions: genes name the merged loci and known loci decide which are novel.
    """
    ind_tables, lead_tables, locus_tables = [], [], []
    for d, snps in found.items():
        named = np.concatenate([snps["row"].to_numpy(), snps["lead_row"].to_numpy(), *snps["candidates"]])
        ind, lead, loci = fuma_tables(tests.scan.dimensions[d], snps, tests.scan.details(named), merge_distance_bp)
        ind_tables.append(ind)
        lead_tables.append(lead)
        locus_tables.append(loci)
    empty_ind, empty_lead, empty_loci = empty_tables()
    loci = _stack(locus_tables, empty_loci)
    for column, passed in thresholds.passes(loci["p"]).items():
        loci[column] = passed
    # the joint table at the independent significant SNPs of every test: each merged locus' lead SNP is one
    rows = np.concatenate([snps["row"].to_numpy(np.int64) for snps in found.values()] or [np.zeros(0, np.int64)])
    joint = None if tests.joint is None else tests.joint.at(tests.scan.details(rows))
    merged = merge_across_dimensions(loci[LOCUS_COLUMNS], merge_distance_bp, thresholds, positions.genes,
                                     positions.known, joint)
    return _LociTables(_stack(ind_tables, empty_ind), _stack(lead_tables, empty_lead), loci, merged)


def _log_loci(tables: _LociTables, n_tests_with_loci: int, joint: bool) -> None:
    """Log how many SNPs and loci were found, and (with the joint test) which tests reach the merged loci.

    Args:
        tables: the stage's tables.
        n_tests_with_loci: tests (dimensions and the joint test) with at least one locus.
        joint: whether the joint test was clumped.
    """
    merged = tables.merged
    logger.info("%d independent significant SNPs, %d lead SNPs, %d loci in %d dimensions; %d merged loci (%d novel)",
                len(tables.ind_sig), len(tables.lead_snps), len(tables.loci), n_tests_with_loci, len(merged),
                int(merged["novel"].sum()) if len(merged) else 0)
    if joint:
        tests = merged["tests"].value_counts()
        logger.info("merged loci by test: %d joint only, %d single dimensions only, %d both",
                    tests.get("joint", 0), tests.get("single", 0), tests.get("both", 0))


def _write_truth_recovery(truth: pd.DataFrame, merged: pd.DataFrame, staged: dict[str, Path]) -> None:
    """Write (and log) how the merged loci recover the simulated demo's planted SNPs.

    Args:
        truth: the planted SNPs.
        merged: the loci merged across tests.
        staged: output name -> staged path (TRUTH_FILES among them).
    """
    recovery, summary = truth_recovery(truth, merged)
    TRUTH_RECOVERY.write(recovery, staged["truth_recovery"])
    write_tsv(summary, staged["truth_summary"])
    logger.info("planted SNPs recovered: %d of %d (single dimensions %d, joint test %d, joint only %d); "
                "false loci: %d (single dimensions %d, joint test %d)", int(summary.at[0, "recovered"]),
                int(summary.at[0, "planted"]), int(summary.at[0, "recovered_single"]),
                int(summary.at[0, "recovered_joint"]), int(summary.at[0, "recovered_joint_only"]),
                int(summary.at[0, "false_loci"]), int(summary.at[0, "false_loci_single"]),
                int(summary.at[0, "false_loci_joint"]))


def _write_outputs(
    out_dir: str | os.PathLike, tables: _LociTables, thresholds: Thresholds, tests: _ScannedTests,
    reference: LDReference, settings: LociSettings, positions: _PositionTables,
) -> dict[str, Path]:
    """Write every output of the stage, staged and moved into place together.

    Args:
        out_dir: output folder (OUTPUT_FILES, and TRUTH_FILES with a truth table).
        tables: the stage's tables.
        thresholds: the study's thresholds (thresholds.tsv, and lines on the Manhattan plot).
        tests: the scanned summary statistics, for the figures.
        reference: LD reference genotypes, for the regional plots' r².
        settings: the stage's settings.
        positions: genes drawn in the regional plots; the truth table scored.

    Returns:
        Output name -> path.
    """
    names = dict(OUTPUT_FILES, **(TRUTH_FILES if positions.truth is not None else {}))
    targets = {name: Path(out_dir) / file for name, file in names.items()}
    variants = tests.scan.variants
    with staged_outputs(targets) as staged:
        write_tsv(tables.ind_sig, staged["ind_sig_snps"])
        write_tsv(tables.lead_snps, staged["lead_snps"])
        write_tsv(tables.loci, staged["genomic_risk_loci"])
        LOCI_MERGED.write(tables.merged, staged["loci_merged"])
        write_tsv(thresholds.table(), staged["thresholds"])
        plot_manhattan(variants["chromosome"].to_numpy(), variants["base_pair_location"].to_numpy(),
                       tests.single_min_p, tables.merged, thresholds.values, staged["manhattan"],
                       joint_p=None if tests.joint is None else tests.joint.p_value)
        _write_regional_plots(staged["regional"], tables.merged, tests, reference, settings.fuma,
                              int(round(settings.regional_flank_kb * 1000)), positions.genes)
        if positions.truth is not None:
            _write_truth_recovery(positions.truth, tables.merged, staged)
    return targets


def find_loci(
    sumstats: str | os.PathLike,
    ld_genotypes: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    settings: LociSettings,
    phenotypes: str | os.PathLike | None = None,
    known_loci: str | os.PathLike | None = None,
    genes: str | os.PathLike | None = None,
    truth: str | os.PathLike | None = None,
    joint: str | os.PathLike | None = None,
    threads: int = 1,
    progress: bool = True,
) -> dict[str, Path]:
    """Run the loci stage.

    Args:
        sumstats: folder of GWAS-SSF ``<dimension>.tsv.gz`` files.
        ld_genotypes: the prefix, or prefixes, of the genotypes LD is taken from (PLINK 1 or PLINK 2 filesets with
            the same samples, see :class:`LDReference`): the analysed samples' per-chromosome genotypes
            (results/genotypes/chr{c}), or a PLINK 1 reference panel (loci.ld_reference).
        out_dir: output folder (OUTPUT_FILES, and TRUTH_FILES with ``truth``).
        settings: FUMA thresholds and options, the regional plots' margin (:meth:`LociSettings.from_config`).
        phenotypes: table with one column per dimension (pheno.tsv or udips.tsv) for M_eff.
        known_loci: table chromosome, start, end, ...: merged loci overlapping none are novel.
        genes: table chromosome, start, end, gene: names loci.
        truth: the simulated demo's truth/loci.tsv (effect, variant_id, chromosome, base_pair_location).
        joint: the joint test's ``joint.tsv.gz``: its p is clumped as one more test named ``joint``, and the
            merged loci say which tests reach them (``tests``) with the joint p of their lead SNP.
        threads: processes that read summary statistics.
        progress: show progress bars.

    Returns:
        Output name -> path.
    """
    files = sumstats_files(sumstats)
    # the .pgen files stay open while the reference lives: closed however the stage ends
    with LDReference(ld_genotypes) as reference:
        # small tables first, so a bad one fails before the long read
        positions = _read_position_tables(genes, known_loci, truth)
        fuma = settings.fuma
        thresholds = study_thresholds(fuma.p_threshold, list(files), phenotypes)
        tests = _scan_tests(files, fuma.candidate_p, joint, threads, progress)
        found = independent_significant_snps(tests.scan, reference, fuma, settings.skip_missing_ld, progress)
        tables = _loci_tables(tests, found, fuma.merge_distance_bp, thresholds, positions)
        _log_loci(tables, len(found), joint is not None)
        return _write_outputs(out_dir, tables, thresholds, tests, reference, settings, positions)
