"""The pheno stage: join UDIPs, covariates, genotype samples and image QC into PLINK2/REGENIE tables.

Subjects are matched on IID (as strings, so leading zeros survive). The
output FID is the genotype file's, because plink2 and REGENIE match phenotype
rows to genotype samples on FID and IID together. A .psam without a FID
column means FID "0", as plink2 reads it.

Every subject seen in any input and not analysed gets exactly one reason in
``exclusions.tsv``, the first that applies of: "QC excluded: <reason>",
"no image", "no genotype", "no covariates", "missing covariate: <column>", then the genotype QC's
(``genotypes/sample_qc.tsv``: "not in keep list <file>", "genotype call rate <r> < <limit>", and
"related (KING kinship <k> >= <cutoff>) to <IID>" unless relatives are kept, as for REGENIE),
then the outlier rule's.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from vitudip.config import input_table
from vitudip.external_tools import run_tool
from vitudip.genetics.genotypes import check_variant_ids, find_genotypes
from vitudip.genetics.settings import PhenoSettings
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import (
    COVAR,
    ID_COLUMNS,
    PHENO,
    SAMPLE_QC,
    UDIP_PREFIX,
    read_qc,
    read_recon_mse,
    read_udips,
)

log = logging.getLogger("vitudip.pheno")

#: The keys ``prepare_phenotypes`` expects in ``out``.
OUTPUT_KEYS = ("pheno", "covar", "samples", "exclusions")

#: Blom's offset for the rank-based inverse-normal transform.
BLOM_OFFSET = 3 / 8

#: Above this many samples plink2 uses its randomized (approx) PCA, as its docs advise.
APPROX_PCA_ABOVE = 5000

#: Significant digits of floats in the output tables.
FLOAT_FORMAT = "%.8g"


# --------------------------------------------------------------------------- reading inputs


def _require_columns(table: pd.DataFrame, columns: list[str], what: str) -> None:
    """Raise naming the missing columns and listing the available ones."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}; "
                         f"available: {', '.join(map(str, table.columns))}")


def _check_unique(ids: pd.Series, what: str) -> None:
    """Raise naming the first id that occurs twice."""
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise ValueError(f"{what} has duplicate id '{duplicated.iloc[0]}'")


def read_covariates(path: str | os.PathLike) -> pd.DataFrame:
    """The user's covariates file (IID, FID optional, then covariates) as text cells until parsed (``NA`` and
    empty cells NaN), checked by its schema's contract (:func:`vitudip.config.input_table`)."""
    return input_table("covariates").read(path)


def parse_numeric(covariates: pd.DataFrame, columns: list[str], path: str | os.PathLike) -> pd.DataFrame:
    """Convert covariate columns to floats, keeping NaN for missing cells.

    Args:
        covariates: the string table from ``read_covariates``.
        columns: columns to convert.
        path: the file, for messages.

    Returns:
        Float frame of ``columns`` with the same index.

    Raises:
        ValueError: a cell is neither missing nor a finite number.
    """
    parsed = {}
    for column in columns:
        raw = covariates[column]
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        bad = raw.notna() & ~np.isfinite(values)
        if bad.any():
            at = bad.to_numpy().nonzero()[0][0]
            raise ValueError(f"covariates file {path}: column '{column}' has non-numeric value "
                             f"'{raw.iloc[at]}' for subject '{covariates['IID'].iloc[at]}'")
        parsed[column] = values
    return pd.DataFrame(parsed, index=covariates.index)


# --------------------------------------------------------------------------- joining


@dataclass
class Inputs:
    """The four inputs, read, checked and keyed by IID."""

    udips: pd.DataFrame  # index IID; FID and udip_* columns
    genotypes: pd.DataFrame  # FID, IID in genotype-file order
    covariates: pd.DataFrame  # index IID; FID (if given) and the used columns, numeric ones parsed
    qc: pd.DataFrame  # index subject_id; status, reason


def _read_inputs(udips_path: str | os.PathLike, covariates_path: str | os.PathLike,
                 genotype_prefix: str | os.PathLike, qc_path: str | os.PathLike,
                 settings: PhenoSettings) -> Inputs:
    """Read all inputs, refusing duplicate ids, missing columns and non-numeric cells."""
    udips = read_udips(udips_path)
    genotypes = find_genotypes(genotype_prefix).samples()
    covariates = read_covariates(covariates_path)
    qc = read_qc(qc_path)
    _check_unique(genotypes["IID"], f"genotype samples of {genotype_prefix}")
    if settings.file_pcs():
        what = f"covariates file {covariates_path} (genetic_pcs={settings.genetic_pcs}, pcs_from='file')"
        _require_columns(covariates, settings.file_pcs(), what)
    _require_columns(covariates, settings.used_columns(), f"covariates file {covariates_path}")
    numeric = parse_numeric(covariates, settings.numeric_columns(), covariates_path)
    ids = ["IID", *[c for c in ["FID"] if c in covariates.columns]]
    used = pd.concat([covariates[[*ids, *settings.categorical]], numeric], axis=1)
    return Inputs(udips=udips.set_index("IID"), genotypes=genotypes,
                  covariates=used.set_index("IID"), qc=qc.set_index("subject_id"))


def _first_missing(covariates: pd.DataFrame, columns: list[str]) -> pd.Series:
    """For each subject with a missing used covariate, the first such column (IID -> column)."""
    if not columns:
        return pd.Series(dtype=str)
    missing = covariates[columns].isna()
    return missing[missing.any(axis=1)].idxmax(axis=1)


def _all_ids(inputs: Inputs) -> list[str]:
    """Every IID of any input, in order of first appearance (UDIPs, genotypes, covariates, QC)."""
    ordered = [*inputs.udips.index, *inputs.genotypes["IID"], *inputs.covariates.index, *inputs.qc.index]
    return list(dict.fromkeys(ordered))


def _qc_excluded(qc: pd.DataFrame) -> dict[str, str]:
    """IID -> QC reason for subjects whose image did not pass QC."""
    failed = qc[qc["status"] != "ok"]
    return {iid: reason or status for iid, status, reason in zip(failed.index, failed["status"], failed["reason"])}


def exclusion_reasons(inputs: Inputs, used_columns: list[str]) -> dict[str, str]:
    """One reason per dropped subject, the first that applies in the documented precedence.

    Args:
        inputs: the read inputs.
        used_columns: covariate columns that must be present.

    Returns:
        IID -> reason for every subject of any input that is not analysed.
    """
    qc_failed = _qc_excluded(inputs.qc)
    genotyped = set(inputs.genotypes["IID"])
    missing = _first_missing(inputs.covariates, used_columns).to_dict()
    reasons = {}
    for iid in _all_ids(inputs):
        if iid in qc_failed:
            reasons[iid] = f"QC excluded: {qc_failed[iid]}"
        elif iid not in inputs.udips.index:
            reasons[iid] = "no image"
        elif iid not in genotyped:
            reasons[iid] = "no genotype"
        elif iid not in inputs.covariates.index:
            reasons[iid] = "no covariates"
        elif iid in missing:
            reasons[iid] = f"missing covariate: {missing[iid]}"
    return reasons


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)`` per column; 0 where the MAD is 0."""
    values = np.asarray(values, dtype=np.float64)
    median = np.nanmedian(values, axis=0)
    mad = 1.4826 * np.nanmedian(np.abs(values - median), axis=0)
    return np.divide(values - median, mad, out=np.zeros_like(values), where=mad > 0)


def outlier_reasons(udips: pd.DataFrame, recon_mse: pd.Series | None, limit: float) -> dict[str, str]:
    """Subjects with an extreme reconstruction error or UDIP, and why.

    Args:
        udips: the subjects to judge, index IID, ``udip_*`` columns.
        recon_mse: reconstruction MSE by IID (None: judge the UDIPs only).
        limit: robust SDs from the median that make an outlier.

    Returns:
        IID -> reason.
    """
    reasons = {}
    if recon_mse is not None:
        # on a log scale: an MSE is positive and right-skewed, and a broken image is off by a factor
        errors = np.log(recon_mse.reindex(udips.index).to_numpy(float).clip(min=1e-12))
        z = robust_z(errors[:, None])[:, 0]
        for iid, value in zip(udips.index, z):
            if value > limit:
                reasons[iid] = (f"outlier: log reconstruction error {value:.1f} robust SDs above the median "
                                f"(pheno.outlier_sd {limit:g})")
    # the UDIPs as one number per subject: the root-mean-square of its robust z over the dimensions, so
    # that a few subjects apart on one narrow dimension do not count, a subject apart on the whole does
    columns = [c for c in udips.columns if c.startswith(UDIP_PREFIX)]
    z = robust_z(udips[columns].to_numpy(float))
    distance = np.sqrt(np.nanmean(z**2, axis=1))
    far = robust_z(distance[:, None])[:, 0]
    for iid, value, row in zip(udips.index, far, np.abs(z)):
        if value > limit and iid not in reasons:
            reasons[iid] = (f"outlier: its UDIPs are {value:.1f} robust SDs farther from the median than usual "
                            f"(farthest: {columns[int(np.nanargmax(row))]}; pheno.outlier_sd {limit:g})")
    return reasons


def join_counts(inputs: Inputs, used_columns: list[str]) -> dict[str, int]:
    """How many UDIP subjects remain after each join step, in the order the reasons are given."""
    remaining = set(inputs.udips.index)
    counts = {"with UDIPs": len(remaining)}
    remaining -= set(_qc_excluded(inputs.qc))
    counts["passing image QC"] = len(remaining)
    remaining &= set(inputs.genotypes["IID"])
    counts["with genotypes"] = len(remaining)
    remaining &= set(inputs.covariates.index)
    counts["with covariates"] = len(remaining)
    remaining -= set(_first_missing(inputs.covariates, used_columns).index)
    counts["with complete covariates"] = len(remaining)
    return counts


def describe_counts(counts: dict[str, int]) -> str:
    """``with UDIPs 60 -> passing image QC 58 -> …`` for logs and errors."""
    return " -> ".join(f"{step} {n}" for step, n in counts.items())


def _exclusion_table(reasons: dict[str, str], inputs: Inputs) -> pd.DataFrame:
    """FID, IID, reason; FID from the genotypes, else the UDIPs, else the covariates, else the IID."""
    fids = {}
    sources = [inputs.covariates.get("FID"), inputs.udips["FID"], inputs.genotypes.set_index("IID")["FID"]]
    for source in sources:  # later sources win
        if source is not None:
            fids.update(source.dropna().to_dict())
    return pd.DataFrame({"FID": [fids.get(iid, iid) for iid in reasons], "IID": list(reasons),
                         "reason": list(reasons.values())}, columns=["FID", "IID", "reason"])


# --------------------------------------------------------------------------- covariates and phenotypes


def derived_terms(age: pd.Series, sex: pd.Series, terms: list[str]) -> pd.DataFrame:
    """The requested products of age and sex.

    Args:
        age: ages.
        sex: sex codes (0/1).
        terms: any of age2, sex_age and sex_age2 (the schema's pheno.derived).

    Returns:
        One column per term, named as the term.
    """
    formulas = {"age2": lambda: age**2, "sex_age": lambda: sex * age, "sex_age2": lambda: sex * age**2}
    return pd.DataFrame({term: formulas[term]() for term in terms}, index=age.index)


def _level_name(column: str, level: str) -> str:
    """``<column>_<level>`` with whitespace replaced, so the name stays one PLINK header token."""
    return f"{column}_{'_'.join(str(level).split())}"


def one_hot(values: pd.Series, column: str) -> pd.DataFrame:
    """Indicator columns for every level but the first (sorted) one.

    Args:
        values: the category of each analysed sample (no missing values).
        column: the covariate's name, for column names and messages.

    Returns:
        0/1 columns named ``<column>_<level>``.

    Raises:
        ValueError: fewer than two levels among the samples.
    """
    levels = sorted(values.unique())
    if len(levels) < 2:
        raise ValueError(f"categorical covariate '{column}' has a single level "
                         f"'{levels[0] if levels else ''}' among the {len(values)} analysed samples")
    return pd.DataFrame({_level_name(column, level): (values == level).astype(int) for level in levels[1:]},
                        index=values.index)


def _check_not_constant(covar: pd.DataFrame) -> None:
    """Raise naming the first covariate with a single value over the analysed samples."""
    for column in covar.columns:
        if covar[column].nunique() <= 1:
            raise ValueError(f"covariate '{column}' is constant ({covar[column].iloc[0]}) "
                             f"over the {len(covar)} analysed samples")


def covariate_matrix(covariates: pd.DataFrame, settings: PhenoSettings,
                     pcs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The final numeric covariates of the analysed samples, without intercept.

    Args:
        covariates: analysed samples' covariates (numeric columns parsed, none missing).
        settings: which columns and terms to include.
        pcs: plink2-computed PCs with the same index, or None.

    Returns:
        covariates, file PCs, derived terms, one-hot categories, then computed PCs.

    Raises:
        ValueError: a categorical covariate with one level, or a constant column.
    """
    parts = [covariates[[*settings.covariates, *settings.file_pcs()]]]
    if settings.derived:
        age = covariates[settings.age_column]
        if settings.centre_age:
            age = age - age.mean()
        parts.append(derived_terms(age, covariates[settings.sex_column], settings.derived))
    parts += [one_hot(covariates[column], column) for column in settings.categorical]
    if pcs is not None:
        parts.append(pcs)
    covar = pd.concat(parts, axis=1)
    _check_not_constant(covar)
    return covar


def inverse_normal(values: np.ndarray) -> np.ndarray:
    """Rank-based inverse-normal transform (Blom) of the non-missing values; ties get averaged ranks.

    Args:
        values: 1-D floats, NaN = missing.

    Returns:
        Φ⁻¹((rank - 3/8) / (n + 1/4)) where present, NaN elsewhere.
    """
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    present = ~np.isnan(values)
    n = int(present.sum())
    if n:
        ranks = rankdata(values[present])
        out[present] = norm.ppf((ranks - BLOM_OFFSET) / (n + 1 - 2 * BLOM_OFFSET))
    return out


def phenotype_table(udips: pd.DataFrame, inverse: bool) -> pd.DataFrame:
    """The UDIP columns of the analysed samples, inverse-normal transformed if asked.

    Args:
        udips: analysed samples' UDIP table (udip_* columns among others).
        inverse: apply ``inverse_normal`` to each column.

    Returns:
        The udip_* columns only.
    """
    table = udips[[c for c in udips.columns if c.startswith(UDIP_PREFIX)]].astype(float)
    if inverse:
        transformed = np.apply_along_axis(inverse_normal, 0, table.to_numpy())
        table = pd.DataFrame(transformed, index=table.index, columns=table.columns)
    return table


# --------------------------------------------------------------------------- plink2 PCs


def _read_eigenvec(path: Path) -> pd.DataFrame:
    """plink2's .eigenvec as a frame indexed by IID with PC1..PCk."""
    table = pd.read_csv(path, sep=r"\s+", dtype={"#FID": str, "FID": str, "#IID": str, "IID": str})
    table = table.rename(columns={"#FID": "FID", "#IID": "IID"}).set_index("IID")
    return table[[c for c in table.columns if c.startswith("PC")]].astype(float)


def _read_sscore(path: Path, k: int) -> pd.DataFrame:
    """plink2's .sscore of the PC allele weights as PC1..PCk indexed by IID."""
    table = pd.read_csv(path, sep="\t", dtype={"#FID": str, "FID": str, "#IID": str, "IID": str})
    table = table.rename(columns={"#FID": "FID", "#IID": "IID"}).set_index("IID")
    return table[[f"PC{i}_AVG" for i in range(1, k + 1)]].set_axis([f"PC{i}" for i in range(1, k + 1)], axis=1)


def plink2_pcs(prefix: str | os.PathLike, samples: pd.DataFrame, k: int, threads: int = 1,
               extract: str | os.PathLike | None = None, project: pd.DataFrame | None = None) -> pd.DataFrame:
    """Genetic principal components of some samples with ``plink2 --pca``, optionally projected onto others.

    Args:
        prefix: genotype prefix (.pgen/.pvar/.psam or .bed/.bim/.fam).
        samples: FID and IID of the samples the PCs are computed on (unrelated, QC-passed).
        k: number of components.
        threads: plink2 --threads.
        extract: file of the variant IDs to use (the genotype QC's passing variants); None = all.
        project: FID and IID of the samples to score (relatives kept for REGENIE among them): every one
            of them, ``samples`` included, gets the projection ``plink2 --score`` of its genotypes on the
            PCs' allele weights (centred and scaled with the PC samples' frequencies), so all share one scale.

    Returns:
        PC1..PCk indexed by IID, in the order of ``project`` if given, else of ``samples``.

    Raises:
        ToolError: plink2 is missing or failed (the end of its log is in the message).
        RuntimeError: plink2 returned no PCs for a sample.
    """
    files = find_genotypes(prefix)
    variants = ["--extract", os.fspath(extract)] if extract is not None else []
    with tempfile.TemporaryDirectory(prefix="vitudip-pca-") as tmp:
        keep, out = Path(tmp) / "keep.tsv", Path(tmp) / "pca"
        samples[["FID", "IID"]].rename(columns={"FID": "#FID"}).to_csv(keep, sep="\t", index=False)
        # plink2's docs recommend the randomized algorithm for large cohorts
        approx = ["approx"] if len(samples) > APPROX_PCA_ABOVE else []
        weights = ["allele-wts"] if project is not None else []
        freq = ["--freq"] if project is not None else []
        command = ["plink2", *files.plink2_args(), "--keep", str(keep), *variants, *freq,
                   "--pca", str(k), *approx, *weights, "--threads", str(threads), "--out", str(out)]
        run_tool(command, f"{k} genetic PCs of {len(samples)} samples on {files.prefix}", log, Path(f"{out}.log"))
        if project is None:
            pcs = _read_eigenvec(Path(f"{out}.eigenvec"))
        else:
            scored = Path(tmp) / "project.tsv"
            project[["FID", "IID"]].rename(columns={"FID": "#FID"}).to_csv(scored, sep="\t", index=False)
            # plink2's recipe (score#pca_project): the .eigenvec.allele columns are
            # CHROM ID REF ALT A1 PC1..PCk, so IDs in 2, alleles in 5, weights from 6
            command = ["plink2", *files.plink2_args(), "--keep", str(scored), *variants,
                       "--read-freq", f"{out}.afreq", "--score", f"{out}.eigenvec.allele", "2", "5",
                       "header-read", "no-mean-imputation", "variance-standardize",
                       "--score-col-nums", f"6-{5 + k}", "--threads", str(threads), "--out", f"{out}_projected"]
            run_tool(command, f"projecting the PCs onto {len(project)} samples of {files.prefix}", log,
                     Path(f"{out}_projected.log"))
            pcs = _read_sscore(Path(f"{out}_projected.sscore"), k)
            samples = project
    lacking = [iid for iid in samples["IID"] if iid not in pcs.index]
    if lacking:
        raise RuntimeError(f"plink2 --pca returned no PCs for {len(lacking)} sample(s), e.g. '{lacking[0]}'")
    return pcs.loc[samples["IID"]]


# --------------------------------------------------------------------------- the stage


def genotype_qc_reasons(path: str | os.PathLike, genotypes: pd.DataFrame,
                        keep_related: bool) -> tuple[set[str], dict[str, str]]:
    """The genotype QC's verdict on each sample: (IIDs marked related, IID -> reason for those it drops).

    Raises:
        ValueError: the table is not of these genotype files (a sample of them is missing from it).
    """
    table = SAMPLE_QC.read(path)
    lacking = sorted(set(genotypes["IID"]) - set(table["IID"]))
    if lacking:
        raise ValueError(f"sample QC table {path} lacks {len(lacking)} genotype sample(s), e.g. '{lacking[0]}': "
                         "it was made from other genotype files; rerun genotype_qc")
    related = set(table.loc[table["status"] == "related", "IID"])
    dropped = table[(table["status"] == "excluded") | ((table["status"] == "related") & (not keep_related))]
    return related, dict(zip(dropped["IID"], dropped["reason"]))


def _check_outputs(out: dict[str, str | os.PathLike]) -> None:
    """Raise unless ``out`` names exactly the four outputs."""
    if sorted(out) != sorted(OUTPUT_KEYS):
        raise ValueError(f"out must have the keys {', '.join(OUTPUT_KEYS)}, got {', '.join(out)}")


def _check_min_samples(counts: dict[str, int], min_samples: int) -> None:
    """Raise with the count at each join step when too few samples remain."""
    n = list(counts.values())[-1]
    if n < min_samples:
        raise ValueError(f"only {n} samples remain, fewer than min_samples={min_samples} "
                         f"({describe_counts(counts)})")


def _with_ids(table: pd.DataFrame, analysed: pd.DataFrame) -> pd.DataFrame:
    """Prefix the genotype FID and IID of the analysed samples to a table indexed like them."""
    return pd.concat([analysed[["FID", "IID"]].reset_index(drop=True), table.reset_index(drop=True)], axis=1)


def _check_genotype_variant_ids(genotype_prefix: str | os.PathLike) -> None:
    """Refuse missing or repeated variant IDs in the genotype files (BGEN's are left to the GWAS engine).

    Args:
        genotype_prefix: PLINK 2, PLINK 1 or BGEN prefix.

    Raises:
        ValueError: from :func:`~vitudip.genetics.genotypes.check_variant_ids`.
    """
    genotypes = find_genotypes(genotype_prefix)
    variants = genotypes.variants()
    if variants is None:
        log.info("BGEN input: variant IDs are checked by the GWAS engine, not here")
    else:
        check_variant_ids(variants, genotypes.variant_file)


def _remaining_samples(inputs: Inputs, reasons: dict[str, str]) -> pd.DataFrame:
    """The genotype samples with UDIPs and no exclusion reason (yet), in genotype-file order.

    Args:
        inputs: the read inputs.
        reasons: IID -> exclusion reason so far.

    Returns:
        Their rows of ``inputs.genotypes``, indexed from 0.
    """
    iids = inputs.genotypes["IID"]
    return inputs.genotypes[iids.isin(inputs.udips.index) & ~iids.isin(reasons)].reset_index(drop=True)


def _outlier_exclusions(inputs: Inputs, reasons: dict[str, str], recon_mse_path: str | os.PathLike | None,
                        limit: float) -> dict[str, str]:
    """The outliers among the samples still kept, each logged as a warning.

    Args:
        inputs: the read inputs.
        reasons: IID -> exclusion reason so far.
        recon_mse_path: embed/recon_mse.tsv; None: judge the UDIPs only.
        limit: robust SDs from the median that make an outlier (``settings.outlier_sd``).

    Returns:
        IID -> reason, as :func:`outlier_reasons`.
    """
    kept = _remaining_samples(inputs, reasons)["IID"].tolist()
    recon = read_recon_mse(recon_mse_path) if recon_mse_path is not None else None
    outliers = outlier_reasons(inputs.udips.loc[kept], recon, limit)
    for iid, reason in outliers.items():
        log.warning("subject %s dropped from the GWAS: %s", iid, reason)
    return outliers


def _exclusions(inputs: Inputs, settings: PhenoSettings, counts: dict[str, int],
                sample_qc_path: str | os.PathLike | None, keep_related: bool,
                recon_mse_path: str | os.PathLike | None) -> tuple[dict[str, str], set[str]]:
    """Why each subject is not analysed: the join's reasons, then the genotype QC's, then the outlier rule's.

    Args:
        inputs: the read inputs.
        settings: the used covariate columns, ``min_samples`` and ``outlier_sd`` (None: no outlier rule).
        counts: samples per join step; with a genotype QC it gains "passing genotype QC", which is logged
            and checked against ``min_samples``.
        sample_qc_path: genotypes/sample_qc.tsv of the genotype QC; None: no genotype QC.
        keep_related: keep the samples it marks related.
        recon_mse_path: embed/recon_mse.tsv, for the outlier rule; None: judge the UDIPs only.

    Returns:
        (IID -> reason for every subject of any input not analysed, IIDs the genotype QC marks related).
    """
    reasons = exclusion_reasons(inputs, settings.used_columns())
    related: set[str] = set()
    if sample_qc_path is not None:
        related, dropped = genotype_qc_reasons(sample_qc_path, inputs.genotypes, keep_related)
        reasons.update({iid: reason for iid, reason in dropped.items()
                        if iid not in reasons and iid in inputs.udips.index})
        counts["passing genotype QC"] = len(_remaining_samples(inputs, reasons))
        log.info("samples per join step: %s", describe_counts(counts))
        _check_min_samples(counts, settings.min_samples)
    if settings.outlier_sd is not None:
        reasons.update(_outlier_exclusions(inputs, reasons, recon_mse_path, settings.outlier_sd))
    return reasons, related


def _analysed_covariates(inputs: Inputs, analysed: pd.DataFrame, related: set[str], settings: PhenoSettings,
                         genotype_prefix: str | os.PathLike, threads: int,
                         variants_path: str | os.PathLike | None) -> pd.DataFrame:
    """The covariate matrix of the analysed samples, with the genetic PCs plink2 computes when asked.

    The PCs are computed on the unrelated analysed samples and, when relatives are among them,
    projected onto all, so that all share one scale.

    Args:
        inputs: the read inputs.
        analysed: FID and IID of the analysed samples, in output order.
        related: IIDs the genotype QC marks related.
        settings: covariates, terms and ``genetic_pcs``.
        genotype_prefix: the genotype files.
        threads: threads for plink2.
        variants_path: the variants the PCs use; None: all.
    """
    pcs = None
    if settings.computed_pcs():
        unrelated = analysed[~analysed["IID"].isin(related)]
        project = analysed if len(unrelated) < len(analysed) else None
        pcs = plink2_pcs(genotype_prefix, unrelated, settings.genetic_pcs, threads, extract=variants_path,
                         project=project)
    return covariate_matrix(inputs.covariates.loc[analysed["IID"]], settings, pcs)


def _write_tables(out: dict[str, str | os.PathLike], analysed: pd.DataFrame, pheno: pd.DataFrame,
                  covar: pd.DataFrame, exclusions: pd.DataFrame) -> None:
    """Write the stage's four tables together, atomically.

    Args:
        out: paths for "pheno", "covar", "samples" and "exclusions".
        analysed: FID and IID of the analysed samples, in the order of ``pheno`` and ``covar``.
        pheno: their phenotypes.
        covar: their covariates.
        exclusions: FID, IID and reason of the others.
    """
    with staged_outputs(out) as staged:
        PHENO.write(_with_ids(pheno, analysed), staged["pheno"], na_rep="NA", float_format=FLOAT_FORMAT)
        COVAR.write(_with_ids(covar, analysed), staged["covar"], na_rep="NA", float_format=FLOAT_FORMAT)
        write_tsv(analysed[list(ID_COLUMNS)], staged["samples"])
        write_tsv(exclusions, staged["exclusions"])


def prepare_phenotypes(udips_path: str | os.PathLike, covariates_path: str | os.PathLike,
                       genotype_prefix: str | os.PathLike, qc_path: str | os.PathLike,
                       settings: PhenoSettings, out: dict[str, str | os.PathLike],
                       threads: int = 1, recon_mse_path: str | os.PathLike | None = None,
                       sample_qc_path: str | os.PathLike | None = None, keep_related: bool = False,
                       variants_path: str | os.PathLike | None = None) -> dict:
    """Write the phenotype, covariate, sample and exclusion tables of the pheno stage.

    Args:
        udips_path: embed/udips.tsv (FID, IID, udip_*).
        covariates_path: covariates TSV (IID, optional FID, covariate columns).
        genotype_prefix: PLINK 2 (.psam) or PLINK 1 (.fam) prefix; its order is the output order.
        qc_path: preprocess/qc.tsv (subject_id, status, reason).
        settings: covariates and transforms.
        out: paths for "pheno", "covar", "samples" and "exclusions" (written together, atomically).
        threads: threads for plink2 (genetic PCs).
        recon_mse_path: embed/recon_mse.tsv, for the outlier rule (``settings.outlier_sd``).
        sample_qc_path: genotypes/sample_qc.tsv of the genotype QC; None: no genotype QC.
        keep_related: keep the samples it marks related (REGENIE models relatedness; the linear engines
            need unrelated samples); the genetic PCs are computed without them and projected onto them.
        variants_path: genotypes/variants_pass.txt, the variants the genetic PCs use; None: all.

    Returns:
        Summary: n_samples, n_phenotypes, covariates (column names), join counts
        per step, n_excluded and the number of exclusions per reason.
    """
    _check_outputs(out)
    _check_genotype_variant_ids(genotype_prefix)  # before any GWAS: later stages key variants by ID
    inputs = _read_inputs(udips_path, covariates_path, genotype_prefix, qc_path, settings)
    counts = join_counts(inputs, settings.used_columns())
    log.info("samples per join step: %s", describe_counts(counts))
    _check_min_samples(counts, settings.min_samples)
    reasons, related = _exclusions(inputs, settings, counts, sample_qc_path, keep_related, recon_mse_path)
    analysed = _remaining_samples(inputs, reasons)
    covar = _analysed_covariates(inputs, analysed, related, settings, genotype_prefix, threads, variants_path)
    pheno = phenotype_table(inputs.udips.loc[analysed["IID"]], settings.inverse_normal)
    exclusions = _exclusion_table(reasons, inputs)
    _write_tables(out, analysed, pheno, covar, exclusions)
    by_reason = exclusions["reason"].value_counts().to_dict()
    log.info("%d samples analysed with %d phenotypes and covariates %s; %d excluded: %s",
             len(analysed), pheno.shape[1], list(covar.columns), len(exclusions), by_reason)
    return {"n_samples": len(analysed), "n_phenotypes": pheno.shape[1], "covariates": list(covar.columns),
            "counts": counts, "n_excluded": len(exclusions), "exclusions": by_reason}
