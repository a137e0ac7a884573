"""Linkage disequilibrium (r²) from genotype hard calls, computed in process.

The genotypes are one or more PLINK 1 or PLINK 2 filesets with the same samples
(:class:`LDReference`): the analysed samples' per-chromosome genotypes, or a
PLINK 1 reference panel. A PLINK 2 fileset is read through its hard calls
(pgenlib's, at plink2's 0.1 threshold: a dosage further than 0.1 from every
integer is a missing call).

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
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import xlogy

from vitudip.genetics.genotypes import GenotypeFiles, find_genotypes
from vitudip.genetics.sumstats import ssf_chromosome
from vitudip.io.plink import read_bed

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


class _Fileset:
    """One genotype fileset of an LD reference: its variant table, and hard calls read by row.

    A PLINK 2 fileset keeps its .pgen open (pgenlib) until :meth:`close`; a PLINK 1 one is memory
    mapped on each read (:func:`~vitudip.io.plink.read_bed`).

    Args:
        files: a PLINK 1 or PLINK 2 fileset.
        n_samples: its samples (checked against the .pgen's header).

    Raises:
        ValueError: the .pgen does not match its .pvar/.psam.
    """

    def __init__(self, files: GenotypeFiles, n_samples: int) -> None:
        self.files = files
        self.n_samples = n_samples
        self.variants = files.variants()
        self._pgen = _open_pgen(files, n_samples, len(self.variants)) if files.format == "pgen" else None

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Hard calls of some rows of this fileset.

        Args:
            rows: (k,) int64 rows within the fileset.

        Returns:
            (n_samples, k) int8 ALT counts, -1 = missing.
        """
        if self._pgen is None:
            return read_bed(self.files.prefix, rows)
        calls = np.empty((rows.size, self.n_samples), dtype=np.int8)
        if rows.size:
            self._pgen.read_list(rows.astype(np.uint32), calls)
        calls[calls < 0] = -1  # pgenlib marks a missing hard call -9 (a dosage > 0.1 from any integer, too)
        return np.ascontiguousarray(calls.T)

    def close(self) -> None:
        """Close the .pgen (nothing to close for PLINK 1)."""
        if self._pgen is not None:
            self._pgen.close()
            self._pgen = None


class LDReference:
    """Genotype filesets used for LD: variants matched to summary statistics, hard calls read on demand.

    The filesets (e.g. one per chromosome) hold the same samples in the same order; their variant
    tables are concatenated, so a reference row is global and each row remembers its fileset. Use it
    as a context manager (or call :meth:`close`): PLINK 2 filesets stay open while it lives.

    Args:
        prefixes: one prefix or several, each without extension: a PLINK 1 (.bed/.bim/.fam) or PLINK 2
            (.pgen/.pvar/.psam) fileset, as :func:`~vitudip.genetics.genotypes.find_genotypes` finds it.

    Raises:
        ValueError: no prefix, a BGEN fileset, or filesets whose samples differ (naming the first such fileset).
        FileNotFoundError: a prefix without a complete fileset.
    """

    def __init__(self, prefixes: str | os.PathLike | Sequence[str | os.PathLike]) -> None:
        files = [_ld_fileset(prefix) for prefix in _prefix_list(prefixes)]
        self.n_samples = _check_same_samples(files)
        self._filesets: list[_Fileset] = []
        try:
            for each in files:
                self._filesets.append(_Fileset(each, self.n_samples))
        except BaseException:
            self.close()
            raise
        self._variants = _variant_table([fileset.variants for fileset in self._filesets])
        # where each reference row is read: its fileset, and its row there
        self._fileset_of = self._variants["fileset"].to_numpy()
        self._fileset_row = self._variants["fileset_row"].to_numpy()
        logger.info("LD reference %s: %d variants, %d samples", self.description, len(self._variants),
                    self.n_samples)

    @property
    def variant_files(self) -> list[str]:
        """The .bim/.pvar file of every fileset, in order."""
        return [fileset.files.variant_file for fileset in self._filesets]

    @property
    def description(self) -> str:
        """The variant files, for messages (the first and last, with the count, when there are many)."""
        names = self.variant_files
        if len(names) <= 3:
            return ", ".join(names)
        return f"{names[0]} ... {names[-1]} ({len(names)} filesets)"

    def close(self) -> None:
        """Close the open .pgen files."""
        for fileset in self._filesets:
            fileset.close()

    def __enter__(self) -> LDReference:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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
        merged = query.merge(self._variants[_MATCH_COLUMNS], on=["variant_id", "chromosome"], how="inner")
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
            (n_samples, len(rows)) int8 ALT counts, -1 = missing; columns in the order of ``rows``.

        Raises:
            IndexError: a row outside the reference.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self._variants)):
            raise IndexError(f"reference rows out of range for the {len(self._variants)} variants of "
                             f"{self.description}")
        fileset = self._fileset_of[rows]
        within = self._fileset_row[rows]
        out = np.empty((self.n_samples, rows.size), dtype=np.int8)
        for number in np.unique(fileset):
            columns = np.flatnonzero(fileset == number)
            out[:, columns] = self._filesets[number].read(within[columns])
        return out


#: The variant table's columns a query is matched on (the others say where each row is read).
_MATCH_COLUMNS = ["variant_id", "chromosome", "alt", "ref", "reference_row"]


def _prefix_list(prefixes: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """One prefix or several as a list of strings.

    Raises:
        ValueError: none given.
    """
    # a str is a Sequence too: one prefix, not one per character
    listed = [prefixes] if isinstance(prefixes, (str, os.PathLike)) else list(prefixes)
    if not listed:
        raise ValueError("no genotype fileset given to take LD from")
    return [os.fspath(prefix) for prefix in listed]


def _ld_fileset(prefix: str) -> GenotypeFiles:
    """The PLINK 1 or PLINK 2 fileset behind a prefix.

    Raises:
        ValueError: a BGEN fileset (its probabilities have no hard calls to read here).
        FileNotFoundError: no complete fileset.
    """
    files = find_genotypes(prefix)
    if files.format == "bgen":
        raise ValueError(
            f"{prefix}.bgen: LD is read from PLINK 1 or PLINK 2 filesets, not BGEN; convert it first, e.g. "
            f"plink2 --bgen {prefix}.bgen ref-first --sample {prefix}.sample --make-pgen --out <new prefix>")
    return files


def _check_same_samples(files: list[GenotypeFiles]) -> int:
    """Check that every fileset lists the first one's samples (FID and IID) in the same order.

    Args:
        files: the filesets, at least one.

    Returns:
        The number of samples.

    Raises:
        ValueError: naming the first fileset whose samples differ, and the first differing sample.
    """
    first = files[0].samples()
    expected = list(zip(first["FID"], first["IID"]))
    for other in files[1:]:
        samples = other.samples()
        found = list(zip(samples["FID"], samples["IID"]))
        if found != expected:
            raise ValueError(_sample_mismatch(files[0], other, expected, found))
    return len(expected)


def _sample_mismatch(first: GenotypeFiles, other: GenotypeFiles, expected: list[tuple[str, str]],
                     found: list[tuple[str, str]]) -> str:
    """The message for a fileset whose samples differ from the first one's: the first differing sample."""
    at = next((k for k, (a, b) in enumerate(zip(expected, found)) if a != b), min(len(expected), len(found)))

    def shown(pairs: list[tuple[str, str]]) -> str:
        return " ".join(pairs[at]) if at < len(pairs) else "none"

    return (f"{other.sample_file} does not list the samples of {first.sample_file} in the same order "
            f"({len(found)} vs {len(expected)} samples; sample {at + 1} is {shown(found)} vs {shown(expected)} "
            "as FID IID): the LD filesets must hold the same samples in the same order")


def _open_pgen(files: GenotypeFiles, n_samples: int, n_variants: int) -> object:
    """A pgenlib reader of a fileset's .pgen, checked against its .psam and .pvar counts.

    Raises:
        ValueError: the .pgen does not match them (naming the files).
    """
    import pgenlib  # only PLINK 2 filesets need it

    pgen = f"{files.prefix}.pgen"
    try:
        return pgenlib.PgenReader(os.fsencode(pgen), raw_sample_ct=n_samples, variant_ct=n_variants)
    except RuntimeError as err:
        detail = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        raise ValueError(f"cannot read {pgen} with its {n_samples} samples ({files.sample_file}) and "
                         f"{n_variants} variants ({files.variant_file}): {detail.strip()}") from None


def _variant_table(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The filesets' variant tables concatenated: each row's global reference_row, fileset and fileset_row."""
    frames = [
        pd.DataFrame({"variant_id": table["id"].to_numpy(), "alt": table["alt"].to_numpy(),
                      "ref": table["ref"].to_numpy(), "chromosome": _chromosome_numbers(table["chrom"]),
                      "fileset": number, "fileset_row": np.arange(len(table), dtype=np.int64)})
        for number, table in enumerate(tables)
    ]
    variants = pd.concat(frames, ignore_index=True)
    variants["reference_row"] = np.arange(len(variants), dtype=np.int64)
    return variants


def _chromosome_numbers(names: pd.Series) -> np.ndarray:
    """GWAS-SSF numbers of a chromosome column (each distinct name converted once)."""
    names = names.astype(str)
    return names.map({name: ssf_chromosome(name) for name in names.unique()}).to_numpy(dtype=np.int64)
