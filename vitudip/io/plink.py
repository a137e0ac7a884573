"""PLINK 1 binary filesets (.bed/.bim/.fam) in numpy.

Conventions:

* Dosages are ALT allele counts 0/1/2 as int8, -1 for missing, shaped
  (n_samples, n_variants).
* The .bim lists A1 = ALT and A2 = REF, which is how plink2 reads a .bim
  (column 5 as ALT, column 6 as REF). In the .bed, genotype code 00 is
  "homozygous A1", so a stored 00 means two ALT alleles.
* Sex in the .fam uses PLINK's codes: 1 = male, 2 = female, 0 = unknown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.io.atomic import staged_outputs
from vitudip.io.chromosomes import canonical_chromosomes

#: First three bytes of a SNP-major PLINK 1 .bed file.
BED_MAGIC = bytes([0x6C, 0x1B, 0x01])

#: 2-bit .bed code for dosage d at index d + 1 (missing, 0, 1, 2 ALT alleles).
_CODE_OF_DOSAGE = np.array([0b01, 0b11, 0b10, 0b00], dtype=np.uint8)

#: ALT count for each 2-bit .bed code 00, 01, 10, 11.
_DOSAGE_OF_CODE = np.array([2, -1, 1, 0], dtype=np.int8)

#: Bytes per block when writing or reading, to keep temporaries bounded.
_BLOCK_BYTES = 1 << 26

VariantIndex = int | slice | Sequence[int] | np.ndarray | None


def _byte_table() -> np.ndarray:
    """Dosages of the four samples packed in each possible byte, shape (256, 4)."""
    byte = np.arange(256, dtype=np.uint8)[:, None]
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    return _DOSAGE_OF_CODE[(byte >> shifts) & 0b11]


_DOSAGES_OF_BYTE = _byte_table()


def bed_path(prefix: str | os.PathLike, ext: str) -> Path:
    """Path of one file of a fileset: ``prefix`` plus ``.bed``, ``.bim`` or ``.fam``."""
    return Path(f"{os.fspath(prefix)}.{ext}")


def bytes_per_variant(n_samples: int) -> int:
    """Bytes one variant occupies in a .bed: 2 bits per sample, rounded up to a byte."""
    return (n_samples + 3) // 4


def _variants_per_block(n_samples: int) -> int:
    """How many variants fit in one block of about ``_BLOCK_BYTES`` unpacked bytes."""
    return max(1, _BLOCK_BYTES // max(4 * bytes_per_variant(n_samples), 1))


# --------------------------------------------------------------------------- writing


def pack_variants(dosages: np.ndarray) -> np.ndarray:
    """Pack a block of dosages into .bed records.

    Args:
        dosages: (n_samples, n_block) integer ALT counts 0/1/2, -1 for missing.

    Returns:
        (n_block, bytes_per_variant(n_samples)) uint8 records, one row per variant.
    """
    n_samples, n_block = dosages.shape
    block = np.asarray(dosages)
    bad = (block < -1) | (block > 2)
    if bad.any():
        raise ValueError(f"dosages must be 0, 1, 2 or -1 (missing); found {block[bad][0]}")
    n_pad = 4 * bytes_per_variant(n_samples)
    # Padding samples get code 00, which PLINK expects in the unused trailing bits.
    codes = np.zeros((n_block, n_pad), dtype=np.uint8)
    # Index the code table with 1-byte values (0..3) to keep the temporary small.
    codes[:, :n_samples] = _CODE_OF_DOSAGE[(block.T.astype(np.int8) + 1).view(np.uint8)]
    quads = codes.reshape(n_block, n_pad // 4, 4)
    return quads[..., 0] | (quads[..., 1] << 2) | (quads[..., 2] << 4) | (quads[..., 3] << 6)


def _write_bed_file(path: Path, dosages: np.ndarray) -> None:
    """Write the magic bytes and all variant records block by block."""
    n_samples, n_variants = dosages.shape
    step = _variants_per_block(n_samples)
    with open(path, "wb") as handle:
        handle.write(BED_MAGIC)
        for start in range(0, n_variants, step):
            handle.write(pack_variants(dosages[:, start : start + step]).tobytes())


def _bim_frame(variants: pd.DataFrame) -> pd.DataFrame:
    """The six .bim columns from a variant table (chrom, id, pos, ref, alt)."""
    missing = [c for c in ("chrom", "id", "pos", "ref", "alt") if c not in variants.columns]
    if missing:
        raise ValueError(f"variants table lacks column(s) {missing}")
    return pd.DataFrame(
        {
            "chrom": variants["chrom"].astype(str).to_numpy(),
            "id": variants["id"].astype(str).to_numpy(),
            "cm": 0,
            "pos": variants["pos"].astype(np.int64).to_numpy(),
            "a1": variants["alt"].astype(str).to_numpy(),
            "a2": variants["ref"].astype(str).to_numpy(),
        }
    )


def _sex_codes(sex: np.ndarray | Sequence[int] | None, n_samples: int) -> np.ndarray:
    """Validate PLINK sex codes (1 male, 2 female, 0 unknown); None means all unknown."""
    if sex is None:
        return np.zeros(n_samples, dtype=np.int64)
    codes = np.asarray(sex).astype(np.int64)
    if codes.shape != (n_samples,):
        raise ValueError(f"sex has shape {codes.shape}, expected ({n_samples},)")
    if not np.isin(codes, (0, 1, 2)).all():
        raise ValueError("sex must use PLINK codes 1 = male, 2 = female, 0 = unknown")
    return codes


def _phenotype_values(phenotype: np.ndarray | Sequence[float] | None, n_samples: int) -> np.ndarray:
    """Phenotype column; None or NaN becomes PLINK's missing value -9."""
    if phenotype is None:
        return np.full(n_samples, -9.0)
    values = np.asarray(phenotype, dtype=float)
    if values.shape != (n_samples,):
        raise ValueError(f"phenotype has shape {values.shape}, expected ({n_samples},)")
    return np.where(np.isnan(values), -9.0, values)


def _fam_frame(sample_ids: Sequence, sex: np.ndarray | None, phenotype: np.ndarray | None) -> pd.DataFrame:
    """The six .fam columns; FID and IID are both the sample id."""
    ids = [str(s) for s in sample_ids]
    if any(not s or any(ch.isspace() for ch in s) for s in ids):
        raise ValueError("sample ids must be non-empty and contain no whitespace")
    return pd.DataFrame(
        {
            "fid": ids,
            "iid": ids,
            "father": "0",
            "mother": "0",
            "sex": _sex_codes(sex, len(ids)),
            "phenotype": _phenotype_values(phenotype, len(ids)),
        }
    )


def write_bed(
    prefix: str | os.PathLike,
    dosages: np.ndarray,
    variants: pd.DataFrame,
    sample_ids: Sequence,
    sex: np.ndarray | Sequence[int] | None = None,
    phenotype: np.ndarray | Sequence[float] | None = None,
) -> None:
    """Write a SNP-major PLINK 1 fileset ``prefix``.bed/.bim/.fam.

    The three files are staged under temporary names and renamed into place,
    so a failure leaves no partial fileset behind.

    Args:
        prefix: path without extension.
        dosages: (n_samples, n_variants) integer ALT allele counts 0/1/2, -1 = missing.
        variants: one row per variant with columns chrom, id, pos, ref, alt
            (other columns are ignored). ALT is written as A1, REF as A2.
        sample_ids: n_samples ids, used as both FID and IID.
        sex: PLINK codes per sample (1 = male, 2 = female, 0 = unknown); None = all 0.
        phenotype: per-sample values, NaN = missing; None = all missing (-9).
    """
    dosages = np.asarray(dosages)
    if dosages.ndim != 2 or not np.issubdtype(dosages.dtype, np.integer):
        raise ValueError(f"dosages must be a 2-D integer array, got {dosages.ndim}-D {dosages.dtype}")
    n_samples, n_variants = dosages.shape
    if len(variants) != n_variants:
        raise ValueError(f"variants has {len(variants)} rows but dosages has {n_variants} columns")
    if len(sample_ids) != n_samples:
        raise ValueError(f"{len(sample_ids)} sample ids for {n_samples} rows of dosages")
    bim = _bim_frame(variants)
    fam = _fam_frame(sample_ids, sex, phenotype)
    targets = {ext: bed_path(prefix, ext) for ext in ("bed", "bim", "fam")}
    with staged_outputs(targets) as staged:
        _write_bed_file(staged["bed"], dosages)
        bim.to_csv(staged["bim"], sep="\t", header=False, index=False)
        fam.to_csv(staged["fam"], sep="\t", header=False, index=False, float_format="%.10g")


# --------------------------------------------------------------------------- reading


def _require(path: Path) -> Path:
    """Raise FileNotFoundError naming ``path`` when it does not exist."""
    if not path.is_file():
        raise FileNotFoundError(f"PLINK file not found: {path}")
    return path


def read_bim(prefix: str | os.PathLike) -> pd.DataFrame:
    """Read ``prefix``.bim.

    Args:
        prefix: path without extension.

    Returns:
        DataFrame with columns chrom (str, plink2's name: :mod:`vitudip.io.chromosomes`), id (str),
        cm (float), pos (int64), alt (A1, str) and ref (A2, str).

    Raises:
        ValueError: a chromosome code plink2 would not read (names the line).
    """
    path = _require(bed_path(prefix, "bim"))
    names = ["chrom", "id", "cm", "pos", "alt", "ref"]
    text = {"chrom": str, "id": str, "alt": str, "ref": str}
    frame = pd.read_csv(
        path, sep=r"\s+", header=None, names=names, dtype={**text, "cm": float, "pos": np.int64},
        keep_default_na=False,
    )
    frame["chrom"] = canonical_chromosomes(frame["chrom"], str(path), first_line=1)
    return frame


def read_fam(prefix: str | os.PathLike) -> pd.DataFrame:
    """Read ``prefix``.fam.

    Args:
        prefix: path without extension.

    Returns:
        DataFrame with columns fid, iid, father, mother (str), sex (int64,
        1 = male, 2 = female, 0 = unknown) and phenotype (float; -9 kept as is).
    """
    path = _require(bed_path(prefix, "fam"))
    names = ["fid", "iid", "father", "mother", "sex", "phenotype"]
    frame = pd.read_csv(
        path, sep=r"\s+", header=None, names=names, dtype=str, keep_default_na=False
    )
    frame["sex"] = pd.to_numeric(frame["sex"]).astype(np.int64)
    # Case/control files may write "NA"; coerce such entries to NaN.
    frame["phenotype"] = pd.to_numeric(frame["phenotype"], errors="coerce")
    return frame


def _count_lines(path: Path) -> int:
    """Number of non-empty lines in a text file (how .bim/.fam give the .bed's dimensions).

    Remembered per file version (size and modification time): a GWAS reads the
    .bed block by block, and recounting a 10 M-line .bim for every block would cost
    seconds each.
    """
    stat = path.stat()
    return _count_lines_of_version(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _count_lines_of_version(path: str, size: int, mtime_ns: int) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _check_bed(path: Path, n_samples: int, n_variants: int) -> None:
    """Check the magic bytes and that the size matches the .bim/.fam counts."""
    expected = len(BED_MAGIC) + n_variants * bytes_per_variant(n_samples)
    actual = path.stat().st_size
    if actual >= len(BED_MAGIC):
        with open(path, "rb") as handle:
            if handle.read(len(BED_MAGIC)) != BED_MAGIC:
                raise ValueError(f"{path} is not a SNP-major PLINK .bed (wrong magic bytes)")
    if actual != expected:
        raise ValueError(
            f"{path} has {actual} bytes but {n_variants} variants x {n_samples} samples "
            f"need {expected} bytes; the .bed does not match its .bim/.fam"
        )


def check_bed_fileset(prefix: str | os.PathLike) -> tuple[int, int]:
    """A PLINK 1 fileset's .bed has the magic bytes and the size its .fam and .bim give it (a truncated copy fails).

    Args:
        prefix: path without extension.

    Returns:
        (samples, variants).

    Raises:
        FileNotFoundError: a file of the fileset is missing.
        ValueError: naming the .bed, its size and the size it should have.
    """
    bed = _require(bed_path(prefix, "bed"))
    n_variants = _count_lines(_require(bed_path(prefix, "bim")))
    n_samples = _count_lines(_require(bed_path(prefix, "fam")))
    _check_bed(bed, n_samples, n_variants)
    return n_samples, n_variants


def _selected_variants(variant_index: VariantIndex, n_variants: int) -> np.ndarray:
    """Turn a variant selection (None, int, slice or index array) into int64 indices."""
    if variant_index is None:
        return np.arange(n_variants, dtype=np.int64)
    if isinstance(variant_index, slice):
        return np.arange(n_variants, dtype=np.int64)[variant_index]
    index = np.atleast_1d(np.asarray(variant_index))
    if index.dtype == bool:
        raise TypeError("variant_index must hold integer indices, not a boolean mask")
    index = index.astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= n_variants):
        raise IndexError(f"variant_index out of range for {n_variants} variants")
    return index


def unpack_variants(records: np.ndarray, n_samples: int) -> np.ndarray:
    """Unpack .bed records into dosages.

    Args:
        records: (n_block, bytes_per_variant(n_samples)) uint8 records.
        n_samples: samples in the fileset (drops the padding at the end of each record).

    Returns:
        (n_samples, n_block) int8 ALT counts, -1 = missing.
    """
    unpacked = _DOSAGES_OF_BYTE[records].reshape(records.shape[0], -1)
    return unpacked[:, :n_samples].T


def read_bed(prefix: str | os.PathLike, variant_index: VariantIndex = None) -> np.ndarray:
    """Read dosages from ``prefix``.bed, optionally only some variants.

    Only the records of the selected variants are read (the file is memory
    mapped), so reading a block of a large fileset is cheap.

    Args:
        prefix: path without extension; .bim and .fam give the dimensions.
        variant_index: None for all variants, or an int, slice or integer
            array of variant indices (output columns follow its order).

    Returns:
        (n_samples, n_selected) int8 ALT allele counts, -1 = missing.
    """
    bed = bed_path(prefix, "bed")
    n_samples, n_variants = check_bed_fileset(prefix)
    index = _selected_variants(variant_index, n_variants)
    out = np.empty((n_samples, index.size), dtype=np.int8)
    if index.size == 0 or n_samples == 0:
        return out
    width = bytes_per_variant(n_samples)
    records = np.memmap(bed, dtype=np.uint8, mode="r", offset=len(BED_MAGIC), shape=(n_variants, width))
    try:
        step = _variants_per_block(n_samples)
        for start in range(0, index.size, step):
            chunk = index[start : start + step]
            out[:, start : start + chunk.size] = unpack_variants(np.asarray(records[chunk]), n_samples)
    finally:
        del records  # release the mapping (and its file handle) promptly
    return out
