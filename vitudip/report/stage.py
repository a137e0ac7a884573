"""The ``report`` stage in one call: ``summary.tsv``, and for the simulated demo ``truth.tsv`` and its score."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import (
    HERITABILITY,
    LOCI_MERGED,
    LOCUS_REGIONS,
    REGIONS,
    REPLICATION,
    TRUTH_RECOVERY,
    TRUTH_REGIONS,
)
from vitudip.report.summary import TOP_REGIONS, study_summary
from vitudip.report.tables import (
    LOCI_COLUMNS,
    LOCUS_REGIONS_COLUMNS,
    REGIONS_COLUMNS,
    REPLICATION_COLUMNS,
    with_replication,
)
from vitudip.report.truth import summary_line, truth_summary, truth_table

log = logging.getLogger("vitudip.report")


@dataclass(frozen=True)
class TruthFiles:
    """The simulated demo's inputs and outputs of the truth scoring.

    Attributes:
        recovery: loci/truth_recovery.tsv (planted SNPs found by the loci stage).
        regions: demo/truth/regions.tsv (each planted effect's region and side).
        table: truth.tsv to write.
        summary: truth_summary.tsv to write (one row).
    """

    recovery: str | os.PathLike
    regions: str | os.PathLike
    table: str | os.PathLike
    summary: str | os.PathLike


def summarise_study(loci_path: str | os.PathLike, regions_path: str | os.PathLike, summary_path: str | os.PathLike,
                    truth: TruthFiles | None = None, top_n: int = TOP_REGIONS,
                    locus_regions_path: str | os.PathLike | None = None,
                    heritability_path: str | os.PathLike | None = None,
                    replication_path: str | os.PathLike | None = None,
                    method: str = "vit") -> dict[str, Path]:
    """Write the study summary and, with ``truth``, the demo's truth scoring.

    Every input is read and checked before anything is written; the outputs are
    moved into place together.

    Args:
        loci_path: loci/loci_merged.tsv.
        regions_path: perdi/regions.tsv.
        summary_path: summary.tsv to write.
        truth: the demo's truth files (None for real data).
        top_n: PerDI regions listed and scored per dimension.
        locus_regions_path: perdi/locus_regions.tsv (None: the summary's locus_ columns stay empty).
        heritability_path: gwas/heritability.tsv (None: the summary's h2 columns stay empty).
        method: the embedding the GWAS analysed, whose rows of ``heritability_path`` are the dimensions'.
        replication_path: loci/replication.tsv: each locus's ``replicated`` and ``replicated_bonferroni`` go into
            the summary and truth tables, and their counts into the truth summary (None: no such columns).

    Returns:
        Output name -> path.
    """
    loci = LOCI_MERGED.read(loci_path, columns=LOCI_COLUMNS)
    regions = REGIONS.read(regions_path, columns=REGIONS_COLUMNS)
    locus_regions = (LOCUS_REGIONS.read(locus_regions_path, columns=LOCUS_REGIONS_COLUMNS)
                     if locus_regions_path is not None else None)
    heritability = None
    if heritability_path is not None:
        table = HERITABILITY.read(heritability_path)
        heritability = table[table["embedding"] == method]
    replication = (REPLICATION.read(replication_path, columns=REPLICATION_COLUMNS)
                   if replication_path is not None else None)
    targets = {"summary": Path(summary_path)}
    if truth is not None:
        recovery = TRUTH_RECOVERY.read(truth.recovery)
        planted = TRUTH_REGIONS.read(truth.regions)
        targets.update(truth=Path(truth.table), truth_summary=Path(truth.summary))

    summary = study_summary(loci, regions, top_n, locus_regions, heritability)
    unmapped = sorted(set(summary.loc[~summary["perdi_mapped"].astype(bool), "dimension"]))
    if unmapped:
        log.warning("%d locus dimension(s) have no PerDI map (region columns NA): %s", len(unmapped),
                    ", ".join(unmapped))
    if replication is not None:
        summary = with_replication(summary, replication)
        log.info("%d of %d loci replicated (%d at Bonferroni)", int(replication["replicated"].sum()), len(loci),
                 int(replication["replicated_bonferroni"].sum()))
    log.info("%d merged loci, %d locus-dimension rows", len(loci), len(summary))
    with staged_outputs(targets) as staged:
        write_tsv(summary, staged["summary"])
        if truth is not None:
            table = truth_table(recovery, loci, planted, regions, top_n, locus_regions)
            scores = truth_summary(table, top_n)
            if replication is not None:
                # the planted SNPs scored on replication as on discovery: those whose locus replicated
                table = with_replication(table, replication)
                found = table[table["found"].astype(bool)].groupby("effect")
                scores = scores.assign(replicated=int(found["replicated"].any().sum()),
                                       replicated_bonferroni=int(found["replicated_bonferroni"].any().sum()))
                log.info("truth: %d of %d recovered planted SNPs replicated (%d at Bonferroni)",
                         int(scores.at[0, "replicated"]), int(scores.at[0, "recovered"]),
                         int(scores.at[0, "replicated_bonferroni"]))
            write_tsv(table, staged["truth"])
            write_tsv(scores, staged["truth_summary"])
            log.info("truth: %s", summary_line(scores, top_n))
    return targets
