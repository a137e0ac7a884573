"""Linkage disequilibrium (r²) from a PLINK 1 reference, computed in process.

plink 1.9 ``--clump`` does not use the squared correlation of genotype counts
(what ``--r2`` reports): its r² comes from haplotype frequencies estimated by
maximum likelihood from the unphased genotypes (the ``--ld`` estimate), the
closer one to FUMA's r² from phased reference panels. Both are offered here:

* ``haplotype`` (default): for each pair, the 3 x 3 table of genotype counts
  fixes every haplotype except those of double heterozygotes; the maximum
  likelihood share of ``AB/ab`` among them is a root of a cubic (the EM
  fixed-point equation). All roots in range are tried and the one with the
  highest likelihood is kept, then r² = D² / (pA pa pB pb).
* ``dosage``: the squared Pearson correlation of ALT allele counts.

Samples missing either genotype are left out of that pair (pairwise complete).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import xlogy

from vitudip.genetics.sumstats import ssf_chromosome
from vitudip.io.plink import read_bed, read_bim, read_fam

logger = logging.getLogger("vitudip.loci")

LD_METHODS = ("haplotype", "dosage")

#: Imaginary parts below this (in haplotype-frequency units) count as real roots.
_REAL_ROOT_TOLERANCE = 1e-9


def genotype_tables(dosages: np.ndarray, index: int, columns: np.ndarray | slice) -> np.ndarray:
    """Genotype count tables of one variant against others.

    Args:
        dosages: (n_samples, n_variants) int8 ALT counts, -1 = missing.
        index: the column of the one variant.
        columns: the columns of the others.

    Returns:
        (k, 3, 3) float64 counts; ``[v, i, j]`` = samples with i ALT alleles at
        ``index`` and j at the v-th other variant (missing at either: not counted).
    """
    x = dosages[:, index]
    block = dosages[:, columns]
    tables = np.empty((block.shape[1], 3, 3))
    for i in range(3):
        rows = block[x == i]
        for j in range(3):
            tables[:, i, j] = np.count_nonzero(rows == j, axis=0)
    return tables


def dosage_r2(tables: np.ndarray) -> np.ndarray:
    """Squared correlation of ALT counts from genotype tables (plink 1.9 ``--r2``).

    Args:
        tables: (k, 3, 3) counts from :func:`genotype_tables`.

    Returns:
        (k,) r² in [0, 1]; 0 where either variant is constant.
    """
    values = np.arange(3.0)
    n = tables.sum(axis=(1, 2))
    rows, cols = tables.sum(axis=2), tables.sum(axis=1)
    sx, sy = rows @ values, cols @ values
    sxx, syy = rows @ values**2, cols @ values**2
    sxy = np.einsum("kij,i,j->k", tables, values, values)
    covariance = n * sxy - sx * sy
    variance = (n * sxx - sx**2) * (n * syy - sy**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(variance > 0, covariance**2 / np.where(variance > 0, variance, 1.0), 0.0)
    return np.clip(r2, 0.0, 1.0)


def haplotype_r2(tables: np.ndarray) -> np.ndarray:
    """r² from maximum-likelihood haplotype frequencies (plink 1.9 ``--clump`` and ``--ld``).

    Args:
        tables: (k, 3, 3) counts from :func:`genotype_tables`.

    Returns:
        (k,) r² in [0, 1]; 0 where either variant is monomorphic or no sample is called at both.
    """
    n = tables.sum(axis=(1, 2))
    scale = np.where(n > 0, 2.0 * n, 1.0)
    t = tables / scale[:, None, None]
    # Haplotype frequencies fixed by the genotypes (A, B = ALT at the first and second variant);
    # h is the share of haplotypes carried by double heterozygotes, whose phase is unknown.
    ab_ = 2 * t[:, 2, 2] + t[:, 2, 1] + t[:, 1, 2]
    ab = 2 * t[:, 0, 0] + t[:, 0, 1] + t[:, 1, 0]
    a_b = 2 * t[:, 2, 0] + t[:, 2, 1] + t[:, 1, 0]
    a__b = 2 * t[:, 0, 2] + t[:, 1, 2] + t[:, 0, 1]
    h = t[:, 1, 1]
    # f = share of AB (and ab) haplotypes among the double heterozygotes' ones; its EM fixed points solve
    # 2f³ + (AB + ab - Ab - aB - 3h) f² + (AB·ab + (Ab + h)(aB + h) - h(AB + ab)) f - h·AB·ab = 0.
    c2 = (ab_ + ab - a_b - a__b - 3 * h) / 2
    c1 = (ab_ * ab + (a_b + h) * (a__b + h) - h * (ab_ + ab)) / 2
    c0 = -h * ab_ * ab / 2
    companion = np.zeros((n.size, 3, 3))
    companion[:, 0, 0], companion[:, 0, 1], companion[:, 0, 2] = -c2, -c1, -c0
    companion[:, 1, 0] = companion[:, 2, 1] = 1.0
    roots = np.linalg.eigvals(companion)
    real = np.abs(roots.imag) <= _REAL_ROOT_TOLERANCE
    roots = np.where(real, np.clip(roots.real, 0.0, h[:, None]), np.nan)
    # The end points are valid phasings too: they make sure a candidate exists, and never beat a true maximum.
    f = np.concatenate([roots, np.zeros((n.size, 1)), h[:, None]], axis=1)
    p_ab_ = ab_[:, None] + f
    p_ab = ab[:, None] + f
    p_a_b = a_b[:, None] + h[:, None] - f
    p_a__b = a__b[:, None] + h[:, None] - f
    with np.errstate(divide="ignore", invalid="ignore"):
        likelihood = (
            xlogy(ab_[:, None], p_ab_) + xlogy(ab[:, None], p_ab) + xlogy(a_b[:, None], p_a_b)
            + xlogy(a__b[:, None], p_a__b) + xlogy(h[:, None], p_ab_ * p_ab + p_a_b * p_a__b)
        )
    likelihood = np.where(np.isnan(likelihood), -np.inf, likelihood)
    best = np.argmax(likelihood, axis=1)[:, None]
    p_ab_best = np.take_along_axis(p_ab_, best, axis=1)[:, 0]
    # ALT frequencies: the known AB and Ab (or aB) haplotypes plus half of the double heterozygotes' 2h
    freq_a = ab_ + a_b + h
    freq_b = ab_ + a__b + h
    d = p_ab_best - freq_a * freq_b
    denominator = freq_a * (1 - freq_a) * freq_b * (1 - freq_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(denominator > 1e-12, d**2 / np.where(denominator > 1e-12, denominator, 1.0), 0.0)
    return np.clip(r2, 0.0, 1.0)


def pair_r2(dosages: np.ndarray, index: int, columns: np.ndarray | slice, method: str = "haplotype") -> np.ndarray:
    """r² of one variant against others.

    Args:
        dosages: (n_samples, n_variants) int8 ALT counts, -1 = missing.
        index: the column of the one variant.
        columns: the columns of the others.
        method: "haplotype" (plink 1.9 --clump) or "dosage" (plink 1.9 --r2).

    Returns:
        (k,) r² in [0, 1].
    """
    if method not in LD_METHODS:
        raise ValueError(f"LD method must be one of {LD_METHODS}, got '{method}'")
    tables = genotype_tables(dosages, index, columns)
    return haplotype_r2(tables) if method == "haplotype" else dosage_r2(tables)


class LDBlock:
    """Genotypes of a run of variants on one chromosome, with r² to neighbours computed once and cached.

    Args:
        dosages: (n_samples, m) int8 ALT counts, -1 = missing; columns sorted by position.
        positions: (m,) base-pair positions, non-decreasing.
        window_bp: pairs further apart than this have r² taken as 0 (plink's --clump-kb).
        method: an LD_METHODS entry.
    """

    def __init__(self, dosages: np.ndarray, positions: np.ndarray, window_bp: int, method: str = "haplotype") -> None:
        if method not in LD_METHODS:
            raise ValueError(f"LD method must be one of {LD_METHODS}, got '{method}'")
        self.dosages = dosages
        self.positions = np.asarray(positions, dtype=np.int64)
        self.window_bp = int(window_bp)
        self.method = method
        self._rows: dict[int, tuple[int, np.ndarray]] = {}
        called = dosages >= 0
        counts = called.sum(axis=0)
        alt = np.where(called, dosages, 0).sum(axis=0, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            freq = np.where(counts > 0, alt / (2.0 * np.maximum(counts, 1)), np.nan)
        #: minor allele frequency of each column in the reference (NaN when never called)
        self.maf = np.minimum(freq, 1.0 - freq)

    def __len__(self) -> int:
        return self.positions.size

    def neighbours(self, column: int) -> tuple[int, int]:
        """Columns [lo, hi) within ``window_bp`` of ``column`` (itself included)."""
        position = self.positions[column]
        lo = int(np.searchsorted(self.positions, position - self.window_bp, side="left"))
        hi = int(np.searchsorted(self.positions, position + self.window_bp, side="right"))
        return lo, hi

    def r2_row(self, column: int) -> tuple[int, np.ndarray]:
        """r² of ``column`` with its neighbours.

        Returns:
            (lo, r2): r2[k] is the r² with column lo + k, over the columns of :meth:`neighbours`.
        """
        cached = self._rows.get(column)
        if cached is None:
            lo, hi = self.neighbours(column)
            cached = (lo, pair_r2(self.dosages, column, slice(lo, hi), self.method))
            self._rows[column] = cached
        return cached

    def r2(self, a: int, b: int) -> float:
        """r² between two columns (0 when further apart than the window)."""
        lo, row = self.r2_row(a)
        return float(row[b - lo]) if lo <= b < lo + row.size else 0.0


class LDReference:
    """A PLINK 1 fileset used for LD: variants matched to summary statistics, genotypes read on demand.

    Args:
        prefix: path without .bed/.bim/.fam.
    """

    def __init__(self, prefix: str | os.PathLike) -> None:
        self.prefix = Path(prefix)
        bim = read_bim(prefix)
        self.n_samples = len(read_fam(prefix))
        self._bim = pd.DataFrame(
            {"variant_id": bim["id"].to_numpy(), "alt": bim["alt"].to_numpy(), "ref": bim["ref"].to_numpy(),
             "chromosome": _chromosome_numbers(bim["chrom"]), "reference_row": np.arange(len(bim))}
        )
        logger.info("LD reference %s: %d variants, %d samples", self.prefix, len(bim), self.n_samples)

    def locate(self, variants: pd.DataFrame) -> np.ndarray:
        """Rows of the reference holding each variant.

        A variant matches a reference variant with the same variant_id and chromosome
        and the same two alleles, in either order (r² does not depend on which is ALT).

        Args:
            variants: columns chromosome, variant_id, effect_allele, other_allele.

        Returns:
            (len(variants),) int64 reference rows, -1 where the reference lacks the variant.
        """
        query = pd.DataFrame(
            {"variant_id": variants["variant_id"].to_numpy(), "chromosome": variants["chromosome"].to_numpy(),
             "a1": variants["effect_allele"].to_numpy(), "a2": variants["other_allele"].to_numpy(),
             "query_row": np.arange(len(variants))}
        )
        merged = query.merge(self._bim, on=["variant_id", "chromosome"], how="inner")
        same = ((merged["a1"] == merged["alt"]) & (merged["a2"] == merged["ref"])) | (
            (merged["a1"] == merged["ref"]) & (merged["a2"] == merged["alt"])
        )
        merged = merged[same].drop_duplicates("query_row")
        rows = np.full(len(variants), -1, dtype=np.int64)
        rows[merged["query_row"].to_numpy()] = merged["reference_row"].to_numpy()
        return rows

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Genotypes of some reference rows.

        Args:
            rows: reference rows (from :meth:`locate`, none -1).

        Returns:
            (n_samples, len(rows)) int8 ALT counts of the reference's A1, -1 = missing.
        """
        return read_bed(self.prefix, np.asarray(rows, dtype=np.int64))


def _chromosome_numbers(names: pd.Series) -> np.ndarray:
    """GWAS-SSF numbers of a chromosome column (each distinct name converted once)."""
    names = names.astype(str)
    return names.map({name: ssf_chromosome(name) for name in names.unique()}).to_numpy(dtype=np.int64)
