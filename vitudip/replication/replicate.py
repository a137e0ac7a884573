"""Each discovery locus's lead variant tested in the replication set, and whether it replicates.

A locus found in the discovery set by one dimension replicates, as in UDIP (Patel et al., Commun Biol 2024,
doi:10.1038/s42003-024-06096-7: 97 loci in 22,880 discovery subjects, 60 replicated in 12,359), when its lead
variant has p below ``replication.p_threshold`` (0.05) on the same dimension in the replication set with the
discovery's direction of effect; ``replicated_bonferroni`` asks p below that threshold over the number of loci.
A locus only the joint test found has no direction: it replicates on the replication set's joint test p.
Every lead also gets the replication set's joint test p (``replication_joint_p``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.joint_stage import build_test
from vitudip.genetics.joint_stats import z_scores
from vitudip.genetics.settings import JointSettings, ShardSettings
from vitudip.genetics.shard import gwas_shard
from vitudip.genetics.sumstats import read_sumstats, read_sumstats_region, ssf_chromosome
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import LOCI_MERGED, SPLIT_SUMMARY
from vitudip.loci.annotate import JOINT_TEST
from vitudip.loci.scan import sumstats_files

log = logging.getLogger("vitudip.replication")

#: The merged loci's columns the replication reads.
LEAD_COLUMNS = ["locus", "chromosome", "lead_position", "lead_snp", "lead_dimension", "lead_p", "tests"]
REPLICATION_COLUMNS = [
    "locus", "chromosome", "lead_position", "lead_snp", "dimension", "tests", "effect_allele", "discovery_beta",
    "discovery_p", "replication_beta", "replication_se", "replication_p", "same_sign", "replication_joint_p",
    "replicated", "replicated_bonferroni",
]
REPLICATION_SUMMARY_COLUMNS = [
    "discovery_subjects", "replication_subjects", "unknown_ids", "loci", "tested", "replicated",
    "replicated_bonferroni", "p_threshold", "bonferroni_threshold",
]
_STATISTICS = ["variant_id", "effect_allele", "other_allele", "beta", "standard_error", "p_value"]


def read_leads(loci_path: str | os.PathLike) -> pd.DataFrame:
    """The discovery loci's lead variants (LEAD_COLUMNS of ``loci/loci_merged.tsv``)."""
    return LOCI_MERGED.read(loci_path, columns=LEAD_COLUMNS)


def replication_gwas(settings: ShardSettings, genotypes: Mapping[str, str | os.PathLike], pheno: str | os.PathLike,
                     covar: str | os.PathLike, loci_path: str | os.PathLike, out_dir: str | os.PathLike,
                     threads: int = 1, pred_list: str | os.PathLike | None = None,
                     memory_mb: int | None = None) -> Path:
    """The replication set's GWAS of every dimension at the discovery leads, with the discovery's engine.

    Args:
        settings: the study's GWAS settings (every dimension in one batch: the joint test needs them all).
        genotypes: chromosome (as gwas.chromosomes names it) -> its analysed samples' genotype prefix.
        pheno: the replication set's ``pheno.tsv``.
        covar: its ``covar.tsv``.
        loci_path: the discovery's ``loci/loci_merged.tsv``.
        out_dir: folder to write, one ``chr<chromosome>/<dimension>.tsv.gz`` folder per chromosome with a lead.
        threads: the engine's threads.
        pred_list: REGENIE step 1's prediction list of the replication set.
        memory_mb: the job's memory (plink2's workspace).

    Returns:
        ``out_dir``.
    """
    leads = read_leads(loci_path)
    by_number = {ssf_chromosome(name): name for name in genotypes}
    settings = dataclasses.replace(settings, n_batches=1)
    with staged_outputs({"out": out_dir}) as staged:
        staged["out"].mkdir()
        extract = staged["out"] / "leads.txt"
        extract.write_text("".join(f"{snp}\n" for snp in leads["lead_snp"].unique()))
        for number in sorted(set(leads["chromosome"].astype(int))):
            name = by_number[number]
            log.info("chromosome %s: %d lead(s)", name, int((leads["chromosome"] == number).sum()))
            gwas_shard(settings, genotypes[name], pheno, covar, staged["out"] / f"chr{name}", chromosomes=[name],
                       threads=threads, pred_list=pred_list, memory_mb=memory_mb, extract=extract)
    return Path(out_dir)


def read_replication_statistics(folder: str | os.PathLike) -> pd.DataFrame:
    """Every dimension's statistics of the leads from :func:`replication_gwas`'s folder (a ``dimension`` column)."""
    frames = [read_sumstats(path, _STATISTICS).assign(dimension=dimension)
              for chromosome in sorted(Path(folder).glob("chr*")) if chromosome.is_dir()
              for dimension, path in sumstats_files(chromosome).items()]
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=[*_STATISTICS, "dimension"]))


def discovery_statistics(leads: pd.DataFrame, sumstats: str | os.PathLike) -> pd.DataFrame:
    """Each single-dimension lead's discovery statistics on its lead dimension (the gathered, indexed files)."""
    files = sumstats_files(sumstats)
    rows = []
    for lead in leads[leads["lead_dimension"] != JOINT_TEST].itertuples(index=False):
        position = int(lead.lead_position)
        region = read_sumstats_region(files[lead.lead_dimension], int(lead.chromosome), position, position,
                                      _STATISTICS)
        rows.append(region[region["variant_id"] == lead.lead_snp].assign(locus=lead.locus).head(1))
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[*_STATISTICS, "locus"]))


def joint_p_values(statistics: pd.DataFrame, snps: list[str], test) -> dict[str, float]:
    """The joint test's p of each lead over the replication set's dimensions (NaN where it was not tested).

    Args:
        statistics: :func:`read_replication_statistics`'s frame.
        snps: the leads.
        test: the replication set's :class:`~vitudip.genetics.joint_stats.JointTest`.
    """
    if statistics.empty:
        return {snp: np.nan for snp in snps}
    index = ["variant_id", "dimension"]
    wide = statistics.set_index(index)[["beta", "standard_error", "p_value"]].unstack("dimension")
    wide = wide.reindex(snps)
    columns = list(test.dimensions)
    beta, se, p = (wide[name].reindex(columns=columns).to_numpy(float) for name in ("beta", "standard_error",
                                                                                      "p_value"))
    result = test.test(z_scores(beta, se, p), p)
    return dict(zip(snps, result.p_value))


def score_replication(leads: pd.DataFrame, discovery: pd.DataFrame, replication: pd.DataFrame,
                      joint_p: Mapping[str, float], p_threshold: float) -> pd.DataFrame:
    """One row per discovery locus: its lead in the replication set and whether it replicated.

    Args:
        leads: :func:`read_leads`.
        discovery: :func:`discovery_statistics` (locus, variant_id, effect_allele, other_allele, beta, p_value).
        replication: :func:`read_replication_statistics`.
        joint_p: lead -> the replication set's joint p (empty without the joint test).
        p_threshold: nominal threshold; the Bonferroni one divides it by the number of loci.

    Returns:
        REPLICATION_COLUMNS. The replication beta is of the discovery's effect allele (flipped where the engine
        reported the other one); a lead missing from the replication GWAS is not replicated.
    """
    bonferroni = p_threshold / max(len(leads), 1)
    found = discovery.set_index("locus")
    tested = replication.set_index(["variant_id", "dimension"])
    rows = []
    for lead in leads.itertuples(index=False):
        joint = lead.lead_dimension == JOINT_TEST
        row = {"locus": lead.locus, "chromosome": lead.chromosome, "lead_position": lead.lead_position,
               "lead_snp": lead.lead_snp, "dimension": lead.lead_dimension, "tests": lead.tests,
               "discovery_p": lead.lead_p, "replication_joint_p": joint_p.get(lead.lead_snp, np.nan)}
        if joint:
            p = row["replication_joint_p"]
            same = pd.NA
        else:
            start = found.loc[lead.locus]
            key = (lead.lead_snp, lead.lead_dimension)
            row.update(effect_allele=start["effect_allele"], discovery_beta=start["beta"])
            if key in tested.index:
                now = tested.loc[key]
                flip = -1.0 if now["effect_allele"] != start["effect_allele"] else 1.0
                row.update(replication_beta=flip * now["beta"], replication_se=now["standard_error"],
                           replication_p=now["p_value"])
            p = row.get("replication_p", np.nan)
            same = (bool(np.sign(row["replication_beta"]) == np.sign(start["beta"]))
                    if "replication_beta" in row else False)
        row["same_sign"] = same
        agrees = joint or bool(same)
        row["replicated"] = bool(agrees and p < p_threshold)
        row["replicated_bonferroni"] = bool(agrees and p < bonferroni)
        rows.append(row)
    table = pd.DataFrame(rows, columns=REPLICATION_COLUMNS)
    table["same_sign"] = table["same_sign"].astype("boolean")
    return table


def replicate_loci(loci_path: str | os.PathLike, discovery_sumstats: str | os.PathLike,
                   replication_gwas_dir: str | os.PathLike, split_summary: str | os.PathLike,
                   p_threshold: float, table_path: str | os.PathLike, summary_path: str | os.PathLike,
                   joint: JointSettings | None = None, genotypes: str | os.PathLike | None = None,
                   pheno: str | os.PathLike | None = None, covar: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``loci/replication.tsv`` and its one-row summary.

    Args:
        loci_path: the discovery's ``loci/loci_merged.tsv``.
        discovery_sumstats: the discovery's gathered GWAS-SSF folder.
        replication_gwas_dir: :func:`replication_gwas`'s folder.
        split_summary: ``replication/split_summary.tsv``.
        p_threshold: ``replication.p_threshold``.
        table_path: ``replication.tsv`` to write.
        summary_path: ``replication_summary.tsv`` to write.
        joint: the joint test's settings (None: no joint test); with it, ``genotypes`` (a fileset of the
            analysed samples), ``pheno`` and ``covar`` of the replication set give its phenotype correlation.

    Returns:
        Output name -> path.
    """
    leads = read_leads(loci_path)
    replication = read_replication_statistics(replication_gwas_dir)
    joint_p = ({} if joint is None else
               joint_p_values(replication, list(leads["lead_snp"]), build_test(genotypes, pheno, covar, joint)))
    table = score_replication(leads, discovery_statistics(leads, discovery_sumstats), replication, joint_p,
                              p_threshold)
    sizes = SPLIT_SUMMARY.read(split_summary).iloc[0]
    # the p each locus replicates on: its dimension's, or the joint test's for a joint-only locus
    tested_p = np.where(table["dimension"] == JOINT_TEST, table["replication_joint_p"],
                        table["replication_p"]).astype(float)
    summary = pd.DataFrame([{
        "discovery_subjects": int(sizes["discovery"]), "replication_subjects": int(sizes["replication"]),
        "unknown_ids": int(sizes["unknown_ids"]), "loci": len(table),
        "tested": int(np.isfinite(tested_p).sum()),
        "replicated": int(table["replicated"].sum()),
        "replicated_bonferroni": int(table["replicated_bonferroni"].sum()),
        "p_threshold": p_threshold, "bonferroni_threshold": p_threshold / max(len(table), 1),
    }], columns=REPLICATION_SUMMARY_COLUMNS)
    targets = {"table": Path(table_path), "summary": Path(summary_path)}
    with staged_outputs(targets) as staged:
        write_tsv(table, staged["table"])
        write_tsv(summary, staged["summary"])
    log.info("%d of %d discovery loci replicated in %d subjects (p < %g, same sign); %d at Bonferroni p < %.3g",
             int(summary.at[0, "replicated"]), len(table), int(sizes["replication"]), p_threshold,
             int(summary.at[0, "replicated_bonferroni"]), summary.at[0, "bonferroni_threshold"])
    return targets
