"""What every GWAS engine reads first: phenotypes and covariates matched to the genotype samples.

No PyTorch here: the plink2 and REGENIE engines use these checks as the in-process one does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitudip.genetics.genotypes import find_genotypes
from vitudip.io.chromosomes import require_chromosome
from vitudip.io.stage_tables import COVAR, ID_COLUMNS, PHENO
from vitudip.io.tables import Table

logger = logging.getLogger("vitudip.gwas")

#: Covariate columns whose normalised QR diagonal is below this are linear combinations of earlier ones.
COLLINEARITY_TOLERANCE = 1e-8

#: Name of the intercept column in messages about covariates.
INTERCEPT = "intercept"


#: Text that means "missing" in a phenotype table (besides an empty field).
MISSING_TOKENS = frozenset({"", "NA", "NAN", "NULL", "."})


@dataclass
class GwasInputs:
    """Phenotypes and covariates aligned to the genotype samples.

    Attributes:
        fam_rows: positions in the .fam of the analysed samples (the samples in
            the .fam, the phenotype and the covariate file), in .fam order.
        samples: FID and IID of those samples.
        phenotypes: (n_samples, n_phenotypes) float64 values, NaN = missing.
        covariates: (n_samples, n_covariates) float64 values, complete.
        sex: (n_samples,) sex as the genotype files give it (1 male, 2 female, 0 unknown), which
            plink2 uses on chromosome X (:func:`sex_covariate_on_x`).
    """

    fam_rows: np.ndarray
    samples: pd.DataFrame
    phenotypes: pd.DataFrame
    covariates: pd.DataFrame
    sex: np.ndarray


def _read_id_table(path: str | os.PathLike, table: Table) -> pd.DataFrame:
    """A phenotype or covariate table as text, refusing a repeated sample and a table of IDs alone."""
    frame = table.read(path, text_only=True)
    keys = frame["FID"] + "\t" + frame["IID"]
    if keys.duplicated().any():
        fid, iid = frame.loc[keys.duplicated(), list(ID_COLUMNS)].iloc[0]
        raise ValueError(f"{table.what} {path} lists sample FID '{fid}' IID '{iid}' more than once")
    if len(frame.columns) == len(ID_COLUMNS):
        raise ValueError(f"{table.what} {path} has no columns besides FID and IID")
    return frame


def _sample_keys(fid: pd.Series, iid: pd.Series) -> pd.Index:
    """One key per sample from FID and IID (plink2 matches on both)."""
    return pd.Index(fid.astype(str) + "\t" + iid.astype(str))


def _overlap_error(pheno: pd.DataFrame, covar: pd.DataFrame, genotyped: pd.DataFrame,
                   paths: list[str]) -> ValueError:
    """The error for an empty intersection, with a hint when only the FIDs disagree."""
    counts = f"{len(pheno)}, {len(covar)} and {len(genotyped)} samples"
    shared_iid = set(pheno["IID"]) & set(covar["IID"]) & set(genotyped["IID"])
    hint = " (their IIDs overlap, so the FIDs differ)" if shared_iid else ""
    return ValueError(
        f"no sample is in all of {paths[0]}, {paths[1]} and {paths[2]} ({counts}; matched on FID and IID){hint}"
    )


def _parse_numbers(
    table: pd.DataFrame, columns: Sequence[str], path: str | os.PathLike, what: str, allow_missing: bool
) -> pd.DataFrame:
    """Parse text columns into float64, naming the column and subject of the first bad entry.

    Args:
        table: text table with an IID column.
        columns: columns to parse.
        path: file the table came from (for messages).
        what: "phenotype" or "covariate" (for messages).
        allow_missing: whether empty/NA entries are allowed (they become NaN).

    Returns:
        float64 frame of the columns (positional index).
    """
    parsed = {}
    for column in columns:
        text = table[column].str.strip()
        missing = text.str.upper().isin(MISSING_TOKENS)
        values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~missing.to_numpy() & ~np.isfinite(values)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{what} '{column}' in {path} is not a finite number for subject "
                f"'{table['IID'].iloc[at]}': '{text.iloc[at]}'"
            )
        if missing.any() and not allow_missing:
            at = int(np.flatnonzero(missing.to_numpy())[0])
            raise ValueError(
                f"{what} '{column}' in {path} is missing (NaN) for subject '{table['IID'].iloc[at]}'; "
                f"{what}s must be complete for the analysed samples"
            )
        parsed[column] = values
    return pd.DataFrame(parsed)


def _check_phenotypes_vary(phenotypes: pd.DataFrame, path: str | os.PathLike) -> None:
    """Raise ValueError naming the first phenotype with fewer than two distinct values."""
    for name in phenotypes.columns:
        values = phenotypes[name].dropna()
        if values.nunique() < 2:
            raise ValueError(
                f"phenotype '{name}' in {path} is constant (or missing) over the {len(phenotypes)} analysed samples"
            )


def select_phenotypes(available: list[str], wanted: Sequence[str] | None, path: str | os.PathLike) -> list[str]:
    """The phenotype columns to analyse, in file order; unknown names raise ValueError."""
    if wanted is None:
        return available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ValueError(f"phenotype(s) {unknown} are not columns of {path}")
    return [name for name in available if name in set(wanted)]


def load_gwas_inputs(
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    phenotypes: Sequence[str] | None = None,
) -> GwasInputs:
    """Read and check the phenotype and covariate tables against the genotype samples.

    Samples are matched on FID and IID; the analysed samples are those in all
    three files, in the genotype file's order.

    Args:
        genotype_prefix: genotype fileset prefix (PLINK 1, PLINK 2 or BGEN; see :func:`find_genotypes`).
        pheno_path: TSV with FID, IID and one column per phenotype (empty/NA/NaN = missing).
        covar_path: TSV with FID, IID and numeric covariate columns (no intercept).
        phenotypes: phenotype columns to keep (None = all).

    Returns:
        The aligned inputs.

    Raises:
        FileNotFoundError: a genotype, phenotype or covariate file is missing.
        ValueError: no overlapping samples, a non-numeric or missing covariate,
            a constant phenotype, or collinear covariates.
    """
    genotypes = find_genotypes(genotype_prefix)
    pheno = _read_id_table(pheno_path, PHENO)
    covar = _read_id_table(covar_path, COVAR)
    genotyped = genotypes.samples()
    fam_keys = _sample_keys(genotyped["FID"], genotyped["IID"])
    pheno_keys = _sample_keys(pheno["FID"], pheno["IID"])
    covar_keys = _sample_keys(covar["FID"], covar["IID"])
    fam_rows = np.flatnonzero(fam_keys.isin(pheno_keys) & fam_keys.isin(covar_keys))
    if fam_rows.size == 0:
        paths = [str(pheno_path), str(covar_path), genotypes.sample_file]
        raise _overlap_error(pheno, covar, genotyped, paths)
    keys = fam_keys[fam_rows]
    pheno = pheno.iloc[pheno_keys.get_indexer(keys)].reset_index(drop=True)
    covar = covar.iloc[covar_keys.get_indexer(keys)].reset_index(drop=True)
    names = select_phenotypes([c for c in pheno.columns if c not in ID_COLUMNS], phenotypes, pheno_path)
    values = _parse_numbers(pheno, names, pheno_path, "phenotype", allow_missing=True)
    _check_phenotypes_vary(values, pheno_path)
    covariate_names = [c for c in covar.columns if c not in ID_COLUMNS]
    covariates = _parse_numbers(covar, covariate_names, covar_path, "covariate", allow_missing=False)
    covariate_basis(covariates.to_numpy(), covariate_names, f"{covar_path}, {len(keys)} analysed samples")
    samples = genotyped.iloc[fam_rows].reset_index(drop=True)
    logger.info(
        "%d samples in %s, %s and %s; %d phenotypes, %d covariates",
        len(keys), pheno_path, covar_path, genotypes.sample_file, len(names), len(covariate_names),
    )
    return GwasInputs(fam_rows=fam_rows, samples=samples, phenotypes=values, covariates=covariates,
                      sex=genotypes.sexes()[fam_rows])


#: The name of the sex covariate that plink2 adds on X, in messages.
X_SEX = "sex (from the genotype files, on X)"


def sex_covariate_on_x(inputs: GwasInputs) -> bool:
    """Whether every engine adds sex as a covariate on (non-PAR) chromosome X, as ``plink2 --glm`` does.

    plink2 2.00a3.5 adds the .fam/.psam sex (male 1, female 2) on X when the analysed samples
    of known sex include both sexes; samples of unknown sex then leave X's regressions (their
    covariate is missing). With one sex only it adds nothing and keeps every sample. When the
    covariates hold sex already (a column that is a linear function of it), plink2 would stop
    with VIF_INFINITE rather than add it twice: then no engine adds it (plink2 is run with
    ``no-x-sex``), the covariate stands for it and no sample leaves.

    Args:
        inputs: the aligned inputs.

    Returns:
        True when sex is to be added on X (and samples of unknown sex dropped there).
    """
    known = np.isin(inputs.sex, (1, 2))
    if np.unique(inputs.sex[known]).size < 2:
        return False
    q = covariate_basis(inputs.covariates.to_numpy()[known], list(inputs.covariates.columns),
                        f"{int(known.sum())} analysed samples of known sex")
    female = (inputs.sex[known] == 2).astype(np.float64)
    left = female - q @ (q.T @ female)
    already = np.linalg.norm(left) < COLLINEARITY_TOLERANCE * np.linalg.norm(female)
    if already:
        logger.info("the covariates hold sex already: no engine adds it again on chromosome X")
    return not already



def select_variants(bim: pd.DataFrame, chromosomes: Sequence[str | int] | None, bim_name: str) -> np.ndarray:
    """Indices of the .bim variants on ``chromosomes`` (None = all); none at all raises ValueError.

    Chromosomes are compared by plink2's names, as ``plink2 --chr`` selects them: 23, "X" and
    "chrX" are the same, XY (25) is not X, and PAR1/PAR2 are neither.
    """
    if chromosomes is None:
        return np.arange(len(bim))
    wanted = {require_chromosome(c, "the chromosomes to test") for c in chromosomes}
    index = np.flatnonzero(bim["chrom"].isin(wanted).to_numpy())
    if index.size == 0:
        raise ValueError(f"no variants on chromosome(s) {list(chromosomes)} in {bim_name}")
    return index


def extract_variants(variants: pd.DataFrame, index: np.ndarray, extract: str | os.PathLike) -> np.ndarray:
    """The entries of ``index`` whose variant ID is listed in ``extract`` (one ID per line), as plink2 --extract.

    Raises:
        ValueError: none of them is listed.
    """
    with open(extract) as handle:
        listed = {line.strip() for line in handle if line.strip()}
    # a hash lookup: np.isin on object arrays compares every pair (153 s for 89k IDs; hours at UK Biobank's 10 M)
    kept = index[variants["id"].iloc[index].isin(listed).to_numpy()]
    if kept.size == 0:
        raise ValueError(f"none of the {index.size} variants to test is listed in {extract}")
    logger.info("%d of %d variants listed in %s", kept.size, index.size, extract)
    return kept


def _collinearity_message(design: np.ndarray, names: list[str], column: int, context: str) -> str:
    """Say which earlier columns the dependent ``column`` of ``design`` is a combination of."""
    coef, *_ = np.linalg.lstsq(design[:, :column], design[:, column], rcond=None)
    partners = [names[i] for i in np.flatnonzero(np.abs(coef) > 1e-6 * np.abs(coef).max())]
    if partners == [INTERCEPT]:
        return f"covariate '{names[column]}' is constant ({context})"
    listed = ", ".join(f"'{p}'" for p in partners)
    return f"covariates are collinear: '{names[column]}' is a linear combination of {listed} ({context}); drop one"


def covariate_basis(covariates: np.ndarray, names: Sequence[str], context: str = "") -> np.ndarray:
    """Orthonormal basis of [intercept, covariates], or a ValueError naming collinear columns.

    Columns are scaled to unit norm, so the QR diagonal entry of a column is the
    relative size of what is left of it after the earlier columns; a column
    with almost nothing left is a linear combination of them.

    Args:
        covariates: (n, c) float64 values (no intercept column).
        names: the c covariate names (for messages).
        context: where the covariates come from (file, samples), for messages.

    Returns:
        (n, c + 1) float64 Q with orthonormal columns spanning the intercept and covariates.
    """
    design = np.column_stack([np.ones(len(covariates)), np.asarray(covariates, dtype=np.float64)])
    all_names = [INTERCEPT, *names]
    if design.shape[0] <= design.shape[1]:
        raise ValueError(f"{design.shape[0]} samples are too few for {design.shape[1]} covariate columns ({context})")
    norms = np.linalg.norm(design, axis=0)
    if (norms == 0).any():
        raise ValueError(f"covariate '{all_names[int(np.argmin(norms))]}' is all zero ({context})")
    design = design / norms
    q, r = np.linalg.qr(design)
    dependent = np.flatnonzero(np.abs(np.diag(r)) < COLLINEARITY_TOLERANCE)
    if dependent.size:
        raise ValueError(_collinearity_message(design, all_names, int(dependent[0]), context))
    return q
