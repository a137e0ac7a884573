"""Genotype blocks of every format the in-process engine reads, as ALT dosages.

One interface (:class:`GenotypeReader`) over three formats, each read directly in
blocks of variants, with no PLINK 1 copy:

* PLINK 1 ``.bed`` (hard calls), with :func:`vitudip.io.plink.read_bed`;
* PLINK 2 ``.pgen`` with ``pgenlib``: the stored dosage where the file has one,
  the hard call (0/1/2) elsewhere, which is the dosage plink2 ``--glm`` uses;
* BGEN 1.2 with :mod:`vitudip.io.bgen`: the expected ALT count from the genotype
  probabilities (unphased: P(het) + 2 P(hom ALT); phased: the sum of the two
  haplotypes' ALT probabilities), only the requested samples converted.

A block is float32 (samples x variants), NaN = missing. float32 holds PGEN
dosages (multiples of 1/16384) and hard calls exactly.

ALT of a BGEN variant is its second allele, the first being REF: the
``ref-first`` convention that plink2 and REGENIE are given for BGEN input
(:meth:`~vitudip.genetics.genotypes.GenotypeFiles.plink2_args`), so every
engine tests the same allele. Its variant ID is the rsid field, the one plink2
takes as ID; samples come from the Oxford .sample file (ID_1 = FID, ID_2 = IID).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from vitudip.genetics.genotypes import GenotypeFiles, find_genotypes
from vitudip.io.chromosomes import canonical_chromosomes
from vitudip.io.plink import read_bed, read_bim

#: pgenlib's value for a missing dosage.
_PGEN_MISSING = -9.0


def hardcall_dosages(calls: np.ndarray) -> np.ndarray:
    """Integer ALT counts (0/1/2, negative = missing) as float32 dosages with NaN for missing.

    Args:
        calls: integer array of any shape.
    """
    dosages = calls.astype(np.float32)
    dosages[calls < 0] = np.nan
    return dosages


def _variant_indices(variant_index: np.ndarray, n_variants: int, variant_file: str) -> np.ndarray:
    """The block's variant indices as int64, refusing any outside the fileset."""
    index = np.asarray(variant_index, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= n_variants):
        raise IndexError(f"variant index out of range for the {n_variants} variants of {variant_file}")
    return index


class GenotypeReader(ABC):
    """ALT dosages of one fileset, read a block of variants at a time.

    Attributes:
        files: the fileset.
        samples: FID and IID of every sample, in file order.
        variants: one row per variant (chrom, id, pos, ref, alt as text, pos int64), in file order.
    """

    def __init__(self, files: GenotypeFiles, variants: pd.DataFrame, samples: pd.DataFrame | None = None) -> None:
        """Keep the fileset, its samples and its variant table.

        Args:
            files: the fileset.
            variants: its variant table (chrom, id, pos, ref, alt).
            samples: its samples when already read (None: read them from the sample file).
        """
        self.files = files
        self.samples = files.samples() if samples is None else samples
        self.variants = variants[["chrom", "id", "pos", "ref", "alt"]].reset_index(drop=True)

    @property
    def variant_file(self) -> str:
        """The file that lists the variants (for messages)."""
        return self.files.variant_file

    def read_block(self, variant_index: np.ndarray, sample_rows: np.ndarray | None = None) -> np.ndarray:
        """ALT dosages of some variants.

        Args:
            variant_index: positions of the variants in :attr:`variants` (output columns follow its order).
            sample_rows: positions of the samples in :attr:`samples` to return, in that order (None = all).

        Returns:
            (samples, variants) float32 ALT dosages in [0, 2], NaN = missing.
        """
        index = _variant_indices(variant_index, len(self.variants), self.variant_file)
        rows = None if sample_rows is None else np.asarray(sample_rows, dtype=np.int64).reshape(-1)
        if rows is not None and rows.size and (rows.min() < 0 or rows.max() >= len(self.samples)):
            raise IndexError(f"sample row out of range for the {len(self.samples)} samples of {self.files.sample_file}")
        return self._read(index, rows)

    @abstractmethod
    def _read(self, index: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """The block of checked variant indices and sample rows (see :meth:`read_block`)."""

    def close(self) -> None:  # noqa: B027 (a reader without open files need not override it)
        """Release the open files (nothing to release by default)."""

    def __enter__(self) -> GenotypeReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class BedReader(GenotypeReader):
    """PLINK 1 .bed/.bim/.fam: hard calls."""

    def __init__(self, files: GenotypeFiles) -> None:
        """Read the .bim and .fam of ``files``."""
        super().__init__(files, read_bim(files.prefix))

    def _read(self, index: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        calls = read_bed(self.files.prefix, index)
        return hardcall_dosages(calls if rows is None else calls[rows])


def _refuse_multiallelic(variants: pd.DataFrame, variant_file: str, how: str) -> None:
    """Raise ValueError naming the first variant with more than one ALT allele (plink2 tests each separately)."""
    multi = variants["alt"].str.contains(",", regex=False).to_numpy()
    if multi.any():
        row = variants.iloc[int(np.flatnonzero(multi)[0])]
        raise ValueError(
            f"{variant_file}: variant '{row['id']}' ({row['chrom']}:{row['pos']}) has several ALT alleles "
            f"({row['alt']}; {int(multi.sum())} such variants); the in-process engine tests biallelic variants: "
            f"split them first, e.g. {how}"
        )


class PgenReader(GenotypeReader):
    """PLINK 2 .pgen/.pvar/.psam with pgenlib: dosages, or hard calls where the file has no dosage."""

    def __init__(self, files: GenotypeFiles) -> None:
        """Read the .pvar and .psam and open the .pgen, checking that their counts agree."""
        import pgenlib

        super().__init__(files, files.variants())
        _refuse_multiallelic(self.variants, self.variant_file,
                             f"plink2 --pfile {files.prefix} --make-pgen multiallelics=- --out <new prefix>")
        pgen = f"{files.prefix}.pgen"
        try:
            self._reader = pgenlib.PgenReader(os.fsencode(pgen), raw_sample_ct=len(self.samples),
                                              variant_ct=len(self.variants))
        except RuntimeError as err:
            detail = err.args[0].decode(errors="replace") if isinstance(err.args[0], bytes) else str(err)
            raise ValueError(f"cannot read {pgen} with its {len(self.samples)} samples ({files.sample_file}) and "
                             f"{len(self.variants)} variants ({self.variant_file}): {detail.strip()}") from None
        self._subset: np.ndarray | None = None

    def _use_samples(self, rows: np.ndarray | None) -> tuple[int, np.ndarray | None]:
        """Decode only the wanted samples (pgenlib takes them increasing): how many are read, and the reordering
        of those into ``rows`` (None when they are in order already)."""
        wanted, order = None, None
        if rows is not None:
            wanted, order = np.unique(rows, return_inverse=True)
            if np.array_equal(wanted, rows):
                order = None
            if wanted.size == len(self.samples):
                wanted = None
        if not (wanted is None and self._subset is None
                or wanted is not None and self._subset is not None and np.array_equal(wanted, self._subset)):
            self._reader.change_sample_subset(None if wanted is None else wanted.astype(np.uint32))
            self._subset = wanted
        return (len(self.samples) if wanted is None else wanted.size), order

    def _read(self, index: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        n_read, order = self._use_samples(rows)
        block = np.empty((index.size, n_read), dtype=np.float32)
        if index.size:
            self._reader.read_dosages_list(index.astype(np.uint32), block)
        block[block == _PGEN_MISSING] = np.nan
        dosages = block.T
        return np.ascontiguousarray(dosages if order is None else dosages[order])

    def close(self) -> None:
        """Close the .pgen."""
        self._reader.close()


class BgenReader(GenotypeReader):
    """BGEN 1.2 (layout 2) with :class:`vitudip.io.bgen.BgenFile`: expected ALT counts of diploid or haploid,
    biallelic variants, only the sample rows asked for converted to dosages."""

    def __init__(self, files: GenotypeFiles, threads: int = 1) -> None:
        """Open the .bgen, check its sample count against the .sample and read its variant table.

        Args:
            files: the fileset.
            threads: threads decompressing a block's variants.
        """
        from vitudip.io.bgen import BgenFile

        bgen_path = f"{files.prefix}.bgen"
        self._bgen = BgenFile(bgen_path, threads=threads)
        try:
            samples = files.samples()
            if self._bgen.header.n_samples != len(samples):
                raise ValueError(f"{bgen_path} holds {self._bgen.header.n_samples} samples but {files.sample_file} "
                                 f"lists {len(samples)}: the .sample does not belong to this .bgen")
            variants = self._bgen.variants
            chrom = canonical_chromosomes(variants["chrom"], bgen_path, first_line=1, unit="variant")
            super().__init__(files, variants.assign(chrom=chrom.to_numpy()), samples)
            _refuse_multiallelic(self.variants, bgen_path,
                                 f"plink2 --bgen {bgen_path} ref-first --sample {files.sample_file} "
                                 "--make-pgen multiallelics=- --out <new prefix> (and use the PLINK 2 fileset)")
        except BaseException:
            self.close()
            raise

    def _read(self, index: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        return self._bgen.read_dosages(index, rows)

    def close(self) -> None:
        """Close the .bgen."""
        self._bgen.close()


_READERS = {"bed": BedReader, "pgen": PgenReader, "bgen": BgenReader}


def open_genotypes(prefix: str | os.PathLike) -> GenotypeReader:
    """A block reader for the fileset behind ``prefix`` (PLINK 1, PLINK 2 or BGEN 1.2, as :func:`find_genotypes`).

    Args:
        prefix: genotype path without extension.

    Raises:
        FileNotFoundError: no complete fileset (names the missing files).
        ValueError: files that do not agree with each other, or variants the engine cannot test.
    """
    files = find_genotypes(prefix)
    return _READERS[files.format](files)
