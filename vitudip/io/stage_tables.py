"""The tables one stage writes and later stages read, each described once, with its reader and writer.

Stages import these instead of each other, so the phenotype stage needs no
PyTorch to read the embedding's UDIPs and PerDI no training code to read the
QC table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vitudip.io.tables import Table

#: Sample ID columns of every table keyed like the genotype files.
ID_COLUMNS = ("FID", "IID")
UDIP_PREFIX = "udip_"
RECON_COLUMN = "recon_mse"
SPLIT_NAMES = ("train", "val", "test")

#: ``preprocess/qc.tsv``: every subject of the samples table, ``ok`` or ``excluded`` with its reason.
QC = Table("QC table", required=("subject_id", "status"), text=("subject_id", "status", "reason", "path"),
           unique="subject_id", writer="the preprocess stage")
#: ``preprocess/splits.tsv``: train, val or test for every QC-passed subject.
SPLITS = Table("splits table", required=("subject_id", "split"), text=("subject_id", "split"),
               unique="subject_id", writer="the preprocess stage")
#: ``embed/udips.tsv``: FID, IID and one column per dimension.
UDIPS = Table("UDIP table", required=ID_COLUMNS, text=ID_COLUMNS, unique="IID", writer="the embed stage")
#: ``embed/recon_mse.tsv``: each subject's reconstruction error over its brain voxels.
RECON = Table("reconstruction-error table", required=(*ID_COLUMNS, RECON_COLUMN), text=ID_COLUMNS,
              numbers=(RECON_COLUMN,), unique="IID", writer="the embed stage")
#: ``pheno/pheno.tsv`` and ``pheno/covar.tsv``: FID, IID, then the GWAS's phenotypes or covariates.
PHENO = Table("phenotype table", required=ID_COLUMNS, text=ID_COLUMNS, writer="the pheno stage")
COVAR = Table("covariate table", required=ID_COLUMNS, text=ID_COLUMNS, writer="the pheno stage")
#: ``genotypes/sample_selection.tsv``: every sample of the genotype files, in file order, with its sex (PLINK codes)
#: and why it is not analysed (``reason`` empty: selected; the per-chromosome genotypes hold the selected ones).
SAMPLE_SELECTION = Table("sample selection table", required=(*ID_COLUMNS, "SEX", "reason"),
                         text=(*ID_COLUMNS, "reason"), integers=("SEX",), unique="IID",
                         writer="the select_samples rule")
#: ``checks/inputs.tsv``: what the input validation checked before training, each with the file and a count.
INPUT_CHECKS = Table("input checks table", required=("check", "file", "count"), text=("check", "file", "detail"),
                     integers=("count",), writer="the validate_inputs rule")
#: ``genotypes/sample_qc.tsv``: every genotype sample, ``ok``, ``excluded`` (reason) or ``related`` (to whom).
SAMPLE_QC = Table("sample QC table", required=(*ID_COLUMNS, "status", "reason"), text=(*ID_COLUMNS, "status", "reason"),
                  unique="IID", writer="the genotype_qc stage")
#: The variant filters of the genotype QC, in the order they are applied.
VARIANT_QC_FILTERS = ("call_rate", "maf", "mac", "info", "hwe")
#: ``genotypes/variant_qc.tsv``: per chromosome (and ``all``), the variants each filter newly removed.
VARIANT_QC = Table("variant QC table",
                   required=("chromosome", "variants", *(f"removed_{f}" for f in VARIANT_QC_FILTERS), "passing"),
                   text=("chromosome",),
                   integers=("variants", *(f"removed_{f}" for f in VARIANT_QC_FILTERS), "passing"),
                   writer="the genotype_qc stage")
#: ``loci/loci_merged.tsv``: one row per locus merged across dimensions (readers name the columns they use).
LOCI_MERGED = Table("merged loci table", required=("locus",),
                    text=("lead_snp", "lead_uniqID", "lead_dimension", "dimensions", "tests", "nearest_gene", "genes",
                          "known_loci"),
                    writer="the loci stage")
#: ``perdi/regions.tsv``: each mapped dimension's ranked brain regions.
REGIONS = Table("PerDI regions table", required=("dimension", "region", "side", "rank"),
                text=("dimension", "region", "side"), numbers=("ks_score",), integers=("rank",),
                writer="the PerDI stage")
#: ``perdi/locus_regions.tsv``: each locus direction's ranked brain regions (the regions.tsv columns, ``locus``
#: in front instead of ``dimension``).
LOCUS_REGIONS = Table("PerDI locus regions table", required=("locus", "lead_snp", "region", "side", "rank"),
                      text=("lead_snp", "region", "side"), numbers=("ks_score",), integers=("locus", "rank"),
                      writer="the PerDI stage")
#: ``perdi/locus_directions.tsv``: each locus's lead variant and its latent shift (one column per dimension).
LOCUS_DIRECTIONS = Table("PerDI locus directions table",
                         required=("locus", "lead_snp", "effect_allele", "multiplier", "sd_length"),
                         text=("lead_snp", "effect_allele", "other_allele", "locus_shift"),
                         numbers=("effect_allele_frequency", "multiplier", "sd_length"), integers=("locus",),
                         writer="the PerDI stage")

#: ``gwas/heritability.tsv``: each dimension's SNP heritability and its standard error.
HERITABILITY = Table("heritability table", required=("embedding", "dimension", "h2", "se"),
                     text=("embedding", "dimension"), numbers=("h2", "se"), writer="the heritability stage")


def udip_columns(n: int) -> list[str]:
    """``udip_000`` … for ``n`` dimensions."""
    return [f"{UDIP_PREFIX}{i:03d}" for i in range(n)]


def udip_table(subject_ids: Sequence[str], values: np.ndarray) -> pd.DataFrame:
    """FID, IID (both the subject id, as in the genotype files), then one column per dimension."""
    table = pd.DataFrame(values, columns=udip_columns(values.shape[1]))
    table.insert(0, "IID", list(subject_ids))
    table.insert(0, "FID", list(subject_ids))
    return table


def read_udips(path: str | os.PathLike) -> pd.DataFrame:
    """A UDIP table with string ids.

    Raises:
        ValueError: not a UDIP table (no ``udip_NNN`` column, a missing or repeated IID).
    """
    table = UDIPS.read(path)
    if not any(c.startswith(UDIP_PREFIX) for c in table.columns):
        raise ValueError(f"UDIP table {path} has no {UDIP_PREFIX}NNN columns")
    return table


def udip_matrix(table: pd.DataFrame) -> np.ndarray:
    """The dimension columns of a UDIP table as floats ``(subjects, dimensions)``."""
    return table[[c for c in table.columns if c.startswith(UDIP_PREFIX)]].to_numpy(float)


def recon_table(subject_ids: Sequence[str], errors: np.ndarray) -> pd.DataFrame:
    """``recon_mse.tsv``: FID, IID and each subject's reconstruction MSE over its brain voxels."""
    return pd.DataFrame({"FID": list(subject_ids), "IID": list(subject_ids), RECON_COLUMN: errors})


def read_recon_mse(path: str | os.PathLike) -> pd.Series:
    """A ``recon_mse.tsv`` as a float Series indexed by IID."""
    return RECON.read(path).set_index("IID")[RECON_COLUMN]


def read_qc(path: str | os.PathLike) -> pd.DataFrame:
    """``preprocess/qc.tsv``: string subject_id, status and reason (``""`` when the table has none)."""
    table = QC.read(path)
    if "reason" not in table.columns:
        table["reason"] = ""
    return table


def phenotype_names(path: str | os.PathLike) -> list[str]:
    """The phenotype columns of a ``pheno.tsv``, in file order, from its header alone."""
    return [c for c in PHENO.header(path) if c not in ID_COLUMNS]


def passed_subjects(qc_path: str | os.PathLike, splits_path: str | os.PathLike,
                    splits: Sequence[str] | None = None) -> pd.DataFrame:
    """QC-passed subjects with their cache row and split.

    Args:
        qc_path: ``preprocess/qc.tsv``.
        splits_path: ``preprocess/splits.tsv``.
        splits: keep only these splits (None: all).

    Returns:
        DataFrame ``subject_id``, ``row``, ``split`` in cache order.

    Raises:
        ValueError: an unknown split name, or a QC-passed subject without a cache row.
    """
    if splits is not None:
        unknown = set(splits) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"unknown split name(s) {sorted(unknown)}; use {', '.join(SPLIT_NAMES)}")
    qc = read_qc(qc_path)
    ok = qc.loc[qc["status"] == "ok", ["subject_id", "row"]]
    rows = pd.to_numeric(ok["row"], errors="coerce")
    if rows.isna().any():
        raise ValueError(f"QC table {qc_path}: subject '{ok['subject_id'][rows.isna()].iloc[0]}' is ok but has no "
                         "cache row: the table was not written by this version's preprocess stage; rerun it")
    ok = ok.assign(row=rows.astype(np.int64))
    table = ok.merge(SPLITS.read(splits_path), on="subject_id", how="inner", validate="one_to_one")
    if splits is not None:
        table = table[table["split"].isin(list(splits))]
    return table.sort_values("row").reset_index(drop=True)


#: The simulated demo's ``truth/loci.tsv``: each planted effect and its causal variant.
TRUTH_LOCI = Table("truth loci table", required=("effect",),
                   text=("effect", "variant_id", "chromosome"), integers=("base_pair_location",),
                   writer="the simulate stage")
#: The simulated demo's ``truth/regions.tsv``: each planted effect's brain region and side.
TRUTH_REGIONS = Table("truth regions table", required=("effect", "region", "side"),
                      text=("effect", "region", "side"), writer="the simulate stage")
#: The simulated demo's ``truth/measures.tsv``: every subject's planted measures.
TRUTH_MEASURES = Table("truth measures table", required=("subject_id",), text=("subject_id",), unique="subject_id",
                       writer="the simulate stage")
#: ``loci/truth_recovery.tsv``: whether the loci stage found each planted variant.
TRUTH_RECOVERY = Table("truth recovery table",
                       required=("effect", "variant_id", "found", "locus", "lead_snp", "lead_distance_bp", "lead_p",
                                 "dimensions"),
                       text=("effect", "variant_id", "tests", "lead_snp", "dimensions"), writer="the loci stage")
#: ``loci/replication.tsv``: each discovery locus's lead in the replication set.
REPLICATION = Table("replication table", required=("locus", "replicated", "replicated_bonferroni"),
                    text=("lead_snp", "dimension", "tests", "effect_allele"), writer="the replicate_loci rule")
#: ``replication/split_summary.tsv``: the sizes of the discovery and replication sets.
SPLIT_SUMMARY = Table("replication split summary", required=("discovery", "replication", "unknown_ids"),
                      text=("split",), writer="the split_replication rule")

