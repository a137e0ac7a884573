"""The analysed subjects split into a discovery and a replication set, each with its own GWAS tables.

The split is drawn once from the pheno stage's tables (the subjects every GWAS engine analyses), so both sets
hold only subjects with an image, genotypes and covariates, and no subject is in both.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.pheno import FLOAT_FORMAT
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import COVAR, ID_COLUMNS, PHENO
from vitudip.io.tables import Table
from vitudip.replication.settings import ReplicationSettings

log = logging.getLogger("vitudip.replication")

#: The two sets, in the order of every table that lists them.
SETS = ("discovery", "replication")
#: A set needs at least this many subjects beyond its covariates (the regression's residual degrees of freedom).
MIN_SUBJECTS_BEYOND_COVARIATES = 10
SPLIT_SUMMARY_COLUMNS = ["discovery", "replication", "covariates", "split", "unknown_ids"]


@dataclass(frozen=True)
class Split:
    """Which analysed subjects are in the replication set.

    Attributes:
        replication: (n,) True for a replication subject, in the phenotype table's order.
        unknown_ids: IDs of a split file that are no analysed subject (0 for other splits).
    """

    replication: np.ndarray
    unknown_ids: int = 0


def read_id_file(path: str | os.PathLike) -> set[str]:
    """The IIDs of a file: one per line, or FID IID (the last field is read); ``#`` lines and an IID header skipped."""
    with open(path) as handle:
        ids = {line.split()[-1] for line in handle if line.strip() and not line.startswith("#")}
    return ids - {"IID"}


def split_subjects(iids: pd.Series, settings: ReplicationSettings, n_covariates: int,
                   covariate: pd.Series | None = None) -> Split:
    """Draw the split of the analysed subjects and check that both sets can be analysed.

    Args:
        iids: the analysed subjects' IIDs (the phenotype table's).
        settings: the replication settings.
        n_covariates: columns of the covariate table, for the size check.
        covariate: with split ``covariate``, its level (text) for every subject of ``iids``.

    Returns:
        The split.

    Raises:
        ValueError: a set (or a level of the split covariate) with fewer than covariates + 10 subjects, a level
            not among the covariate's, or a subject without a level; the message names the sizes and the key.
    """
    n, fewest = len(iids), n_covariates + MIN_SUBJECTS_BEYOND_COVARIATES
    unknown = 0
    if settings.split == "fraction":
        order = np.random.default_rng(settings.seed).permutation(n)
        replication = np.zeros(n, dtype=bool)
        replication[order[: int(round(settings.fraction * n))]] = True
    elif settings.split == "file":
        wanted = read_id_file(settings.file)
        replication = iids.isin(wanted).to_numpy()
        unknown = len(wanted - set(iids))
        if unknown:
            log.warning("replication.file %s: %d of its %d IDs are no analysed subject (not imaged, genotyped, "
                        "with covariates or past QC); they are ignored", settings.file, unknown, len(wanted))
    else:
        if covariate.isna().any():
            raise ValueError(f"config key 'replication.covariate': {int(covariate.isna().sum())} analysed subject(s) "
                             f"have no '{settings.covariate}' in the covariates file, so their set is unknown")
        levels = covariate.to_numpy(dtype=str)
        counts = pd.Series(levels).value_counts()
        absent = [level for level in settings.levels if level not in counts.index]
        if absent:
            raise ValueError(f"config key 'replication.levels': {absent} not among the levels of "
                             f"'{settings.covariate}' of the analysed subjects ({', '.join(map(str, counts.index))})")
        small = counts[counts < fewest]
        if not small.empty:
            raise ValueError(f"config key 'replication.covariate': level(s) of '{settings.covariate}' with fewer "
                             f"analysed subjects than covariates + {MIN_SUBJECTS_BEYOND_COVARIATES} ({fewest}): "
                             + ", ".join(f"{level} ({count})" for level, count in small.items()))
        replication = np.isin(levels, settings.levels)
    sizes = {"discovery": int((~replication).sum()), "replication": int(replication.sum())}
    if min(sizes.values()) < fewest:
        raise ValueError(f"config key 'replication.{settings.split}': the split leaves {sizes['discovery']} discovery "
                         f"and {sizes['replication']} replication subjects of {n}; each set needs at least "
                         f"{fewest} (the {n_covariates} covariates + {MIN_SUBJECTS_BEYOND_COVARIATES})")
    return Split(replication=replication, unknown_ids=unknown)


def _varying_covariates(covar: pd.DataFrame, name: str) -> pd.DataFrame:
    """The covariate table without the columns constant within one set (a covariate split's own levels)."""
    values = covar.drop(columns=list(ID_COLUMNS))
    constant = [column for column in values.columns if values[column].nunique(dropna=True) <= 1]
    if constant:
        log.info("%s set: covariate(s) %s are constant there and dropped from its GWAS", name, ", ".join(constant))
    return covar.drop(columns=constant)


def write_split(pheno_path: str | os.PathLike, covar_path: str | os.PathLike, settings: ReplicationSettings,
                out_dir: str | os.PathLike, covariates_path: str | os.PathLike | None = None) -> dict[str, Path]:
    """Split the analysed subjects and write each set's GWAS tables.

    Args:
        pheno_path: the pheno stage's ``pheno.tsv``.
        covar_path: its ``covar.tsv``.
        settings: the replication settings.
        out_dir: folder for ``split.tsv``, ``split_summary.tsv`` and ``<set>/pheno.tsv``, ``<set>/covar.tsv``.
        covariates_path: the study's covariates file (split ``covariate``).

    Returns:
        Output name -> path.
    """
    pheno, covar = PHENO.read(pheno_path), COVAR.read(covar_path)
    if list(pheno["IID"]) != list(covar["IID"]):
        raise ValueError(f"{pheno_path} and {covar_path} list different subjects: were they written by one run?")
    covariate = None
    if settings.split == "covariate":
        table = Table("covariates file", required=("IID", settings.covariate), text=("IID", settings.covariate),
                      infer_others=False)
        levels = table.read(covariates_path, columns=["IID", settings.covariate]).set_index("IID")[settings.covariate]
        covariate = pheno["IID"].map(levels)
    n_covariates = covar.shape[1] - len(ID_COLUMNS)
    split = split_subjects(pheno["IID"], settings, n_covariates, covariate)
    out_dir = Path(out_dir)
    targets = {"split": out_dir / "split.tsv", "summary": out_dir / "split_summary.tsv"}
    for name in SETS:
        targets.update({f"{name}_pheno": out_dir / name / "pheno.tsv", f"{name}_covar": out_dir / name / "covar.tsv"})
    in_set = {"discovery": ~split.replication, "replication": split.replication}
    summary = pd.DataFrame([{"discovery": int(in_set["discovery"].sum()),
                             "replication": int(in_set["replication"].sum()), "covariates": n_covariates,
                             "split": settings.split, "unknown_ids": split.unknown_ids}],
                           columns=SPLIT_SUMMARY_COLUMNS)
    with staged_outputs(targets) as staged:
        write_tsv(pheno[list(ID_COLUMNS)].assign(set=np.where(split.replication, "replication", "discovery")),
                  staged["split"])
        write_tsv(summary, staged["summary"])
        for name, rows in in_set.items():
            PHENO.write(pheno[rows], staged[f"{name}_pheno"], na_rep="NA", float_format=FLOAT_FORMAT)
            COVAR.write(_varying_covariates(covar[rows], name), staged[f"{name}_covar"], na_rep="NA",
                        float_format=FLOAT_FORMAT)
    log.info("%s split of %d subjects: %d discovery, %d replication", settings.split, len(pheno),
             int(summary.at[0, "discovery"]), int(summary.at[0, "replication"]))
    return targets
