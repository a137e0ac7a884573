"""BGEN 1.2 (layout 2) in numpy and zlib: header checks, a variant table, ALT dosages, and a writer.

UK Biobank's imputed genotypes are one BGEN 1.2 per chromosome (8 bits per probability, layout 2,
zlib, with a bgenix ``.bgen.bgi`` index) holding ~487,000 samples, of which a study analyses a few
tens of thousands. :class:`BgenFile` decompresses each requested variant's block (unavoidable) but
turns only the requested sample rows into dosages, and decodes variants in a thread pool
(``zlib.decompress`` and ``os.pread`` release the GIL).

Conventions:

* The first allele is REF and the second ALT (plink2's ``ref-first``); a dosage is the expected
  count of ALT: unphased diploid P(AB) + 2 P(BB); haploid 2 P(B), the 0..2 scale plink2 imports
  haploid calls on; phased the sum over the haplotypes of P(B).
* A variant's ID is its rsid field, or its variant-id field where the rsid is empty; chromosome
  codes are kept exactly as written (UK Biobank writes ``01``).
* Probabilities of 8 or 16 bits are read; other bit depths, multi-allelic variants and ploidies
  other than 1 or 2 are refused with a :class:`BgenError` that names the file and the variant.

Format: https://www.well.ox.ac.uk/~gav/bgen_format/spec/latest.html
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("vitudip.bgen")

_MAGIC = b"bgen"
#: Some writers before v1.2 left the magic number as four zero bytes, which the spec still allows.
_OLD_MAGIC = b"\0\0\0\0"
_UNCOMPRESSED, _ZLIB, _ZSTD = 0, 1, 2
_SAMPLE_IDS_FLAG = 1 << 31
_MISSING_BIT = 0x80
_PLOIDY_BITS = 0x3F
#: Probability integer types of the bit depths read (little-endian, byte-aligned).
_PROBABILITY_DTYPES = {8: np.dtype(np.uint8), 16: np.dtype("<u2")}
#: Bytes read at once for a variant's identifying data; grown when its strings are longer.
_HEADER_WINDOW = 4096
_SCAN_PROGRESS = 1_000_000
_INDEX_COLUMNS = ("chromosome, position, rsid, number_of_alleles, allele1, allele2, file_start_position, "
                  "size_in_bytes")


def _dosage_table_8bit() -> np.ndarray:
    """ALT dosage of every 8-bit (P(AA), P(AB)) pair, indexed by the pair read as one little-endian uint16."""
    pair = np.arange(1 << 16, dtype=np.int32)
    aa, ab = pair & 0xFF, pair >> 8
    return ((510 - 2 * aa - ab) / np.float32(255)).astype(np.float32)


_DOSAGE_OF_PAIR_8BIT = _dosage_table_8bit()


class BgenError(ValueError):
    """A file this module cannot read as BGEN 1.2 layout 2; the message names the file (and the variant)."""


class _Truncated(Exception):
    """The bytes at hand end before the field being read."""


class _BadBlock(Exception):
    """A genotype block this module cannot decode; the caller adds the file and the variant to the message."""


@dataclass(frozen=True)
class BgenHeader:
    """What a BGEN header block (and its sample identifier block) says about the file."""

    path: str
    n_variants: int
    n_samples: int
    compression: int
    layout: int
    sample_ids: tuple[str, ...] | None
    #: absolute file offset of the first variant data block
    first_variant_offset: int


@dataclass(frozen=True)
class _Variant:
    """A variant's identifying data, and where its genotype data block sits."""

    varid: str
    rsid: str
    chrom: str
    pos: int
    alleles: tuple[str, ...]
    #: absolute offset of the genotype block's length field C
    genotype_offset: int
    #: C, the bytes of the genotype block after its length field
    genotype_length: int

    @property
    def id(self) -> str:
        """The rsid, or the variant-id field where the rsid is empty."""
        return self.rsid or self.varid

    @property
    def end(self) -> int:
        """Absolute offset just past this variant's data block."""
        return self.genotype_offset + 4 + self.genotype_length

    def label(self) -> str:
        """The variant as error messages name it."""
        return f"variant '{self.id}' ({self.chrom}:{self.pos})"


class _Cursor:
    """Little-endian fields read in order from a byte buffer; :class:`_Truncated` past its end."""

    def __init__(self, buffer: bytes | memoryview, position: int = 0) -> None:
        self.buffer = memoryview(buffer)
        self.position = position

    def take(self, n: int) -> memoryview:
        end = self.position + n
        if end > len(self.buffer):
            raise _Truncated
        out = self.buffer[self.position:end]
        self.position = end
        return out

    def uint(self, width: int) -> int:
        return int.from_bytes(self.take(width), "little")

    def text(self, width: int) -> str:
        """A string stored as a ``width``-byte length and its bytes."""
        return bytes(self.take(self.uint(width))).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- header


def _check_magic(path: str, data: bytes) -> None:
    """Refuse a file whose first bytes are not a BGEN header's.

    Raises:
        BgenError: fewer than 20 bytes, or no magic number.
    """
    if len(data) < 20:
        raise BgenError(f"{path} is not a BGEN file: {len(data)} bytes, shorter than a BGEN header")
    if data[16:20] not in (_MAGIC, _OLD_MAGIC):
        raise BgenError(f"{path} is not a BGEN file: no 'bgen' magic number at byte 16")


def _header_fields(path: str, data: bytes) -> tuple[int, int, int, int, int]:
    """Offset, header length, M, N and flags from the first bytes of a BGEN file, checked for length.

    Raises:
        BgenError: lengths that do not fit.
    """
    offset, header_length, n_variants, n_samples = struct.unpack_from("<IIII", data)
    if header_length < 20 or offset < header_length:
        raise BgenError(f"{path}: corrupt BGEN header: header length {header_length}, first variant at "
                        f"offset {offset}")
    if len(data) < 4 + header_length:
        raise BgenError(f"{path}: truncated BGEN header: {len(data)} bytes, the header needs {4 + header_length}")
    (flags,) = struct.unpack_from("<I", data, header_length)
    return offset, header_length, n_variants, n_samples, flags


def _check_flags(path: str, compression: int, layout: int) -> None:
    """Refuse layouts other than 2 and compression other than none or zlib, saying how to convert.

    Raises:
        BgenError: layout 1 or unknown, zstd or unknown compression.
    """
    convert = (f"plink2 --bgen {path} ref-first --sample <its .sample> --export bgen-1.2 bits=8 --out <new prefix>, "
               f"or qctool -g {path} -s <its .sample> -og <new>.bgen -ofiletype bgen_v1.2 -bgen-bits 8")
    if layout == 1:
        raise BgenError(f"{path} is BGEN layout 1 (BGEN 1.1); only BGEN 1.2 layout 2 is read: convert it, e.g. "
                        f"{convert}")
    if layout != 2:
        raise BgenError(f"{path}: unknown BGEN layout {layout}; only BGEN 1.2 layout 2 is read")
    if compression == _ZSTD:
        raise BgenError(f"{path} is zstd-compressed; only zlib-compressed or uncompressed BGEN is read: recompress "
                        f"it, e.g. {convert} (both write zlib)")
    if compression not in (_UNCOMPRESSED, _ZLIB):
        raise BgenError(f"{path}: unknown BGEN compression code {compression}")


def _sample_ids(path: str, data: bytes, start: int, n_samples: int) -> tuple[str, ...]:
    """The sample identifier block that starts at ``start`` in ``data``.

    Raises:
        BgenError: truncated, or a sample count that differs from the header's.
    """
    cursor = _Cursor(data, start)
    try:
        cursor.uint(4)
        count = cursor.uint(4)
        if count != n_samples:
            raise BgenError(f"{path}: the sample identifier block lists {count} samples, the header {n_samples}")
        return tuple(cursor.text(2) for _ in range(count))
    except _Truncated:
        raise BgenError(f"{path}: truncated sample identifier block") from None


def read_bgen_header(path: str | os.PathLike) -> BgenHeader:
    """Read and check a BGEN file's header block and sample identifiers.

    Args:
        path: the .bgen file.

    Returns:
        The header; ``sample_ids`` is None when the file stores none.

    Raises:
        BgenError: not a BGEN file, a truncated header, layout other than 2, or zstd compression.
        FileNotFoundError: no such file.
    """
    name = os.fspath(path)
    with open(name, "rb") as handle:
        head = handle.read(_HEADER_WINDOW)
        # checked before reading on, so a large file of another format is not read whole
        _check_magic(name, head)
        # the header and sample block end where the first variant starts
        (offset,) = struct.unpack_from("<I", head)
        head += handle.read(max(0, offset + 4 - len(head)))
    offset, header_length, n_variants, n_samples, flags = _header_fields(name, head)
    compression, layout = flags & 0b11, (flags >> 2) & 0b1111
    _check_flags(name, compression, layout)
    ids = _sample_ids(name, head, 4 + header_length, n_samples) if flags & _SAMPLE_IDS_FLAG else None
    if len(head) < offset + 4 and n_variants:
        raise BgenError(f"{name}: truncated: the first variant should start at byte {offset + 4}")
    return BgenHeader(path=name, n_variants=n_variants, n_samples=n_samples, compression=compression,
                      layout=layout, sample_ids=ids, first_variant_offset=offset + 4)


# --------------------------------------------------------------------------- variant blocks


def _parse_variant(buffer: bytes | memoryview, start: int) -> _Variant:
    """A layout-2 variant's identifying data and its genotype length field, from ``buffer`` at ``start``.

    ``genotype_offset`` is relative to the buffer. Raises :class:`_Truncated` when the buffer ends first.
    """
    cursor = _Cursor(buffer, start)
    varid, rsid, chrom = cursor.text(2), cursor.text(2), cursor.text(2)
    pos = cursor.uint(4)
    alleles = tuple(cursor.text(4) for _ in range(cursor.uint(2)))
    genotype_offset = cursor.position
    return _Variant(varid, rsid, chrom, pos, alleles, genotype_offset, cursor.uint(4))


def _read_variant(fd: int, offset: int, file_size: int, path: str, number: int) -> _Variant:
    """The variant whose data block starts at absolute ``offset``, its offsets made absolute.

    Raises:
        BgenError: the file ends inside the variant.
    """
    window = _HEADER_WINDOW
    while True:
        buffer = os.pread(fd, window, offset)
        try:
            variant = _parse_variant(buffer, 0)
            break
        except _Truncated:
            if offset + window >= file_size:
                raise BgenError(f"{path}: truncated: the file ends inside variant {number + 1}'s "
                                f"identifying data (byte {offset})") from None
            window *= 4
    absolute = _Variant(variant.varid, variant.rsid, variant.chrom, variant.pos, variant.alleles,
                        offset + variant.genotype_offset, variant.genotype_length)
    if absolute.end > file_size:
        raise BgenError(f"{path}: truncated: {absolute.label()} ends at byte {absolute.end}, past the end "
                        f"of the file ({file_size} bytes)")
    return absolute


def _probability_data(payload: memoryview, compression: int) -> memoryview | bytes:
    """The probability data of a genotype block (its bytes after the length C), decompressed.

    Raises:
        _BadBlock: corrupt compressed data or a length that differs from the stated one.
    """
    if compression == _UNCOMPRESSED:
        return payload
    if len(payload) < 4:
        raise _BadBlock("genotype block shorter than its length fields")
    (expected,) = struct.unpack_from("<I", payload)
    try:
        data = zlib.decompress(payload[4:])
    except zlib.error as error:
        raise _BadBlock(f"corrupt zlib data ({error})") from None
    if len(data) != expected:
        raise _BadBlock(f"genotype block decompresses to {len(data)} bytes, not the {expected} it states")
    return data


def _block_layout(data: bytes | memoryview, n_samples: int, path: str) -> tuple[int, int, int, bool, int]:
    """K, min ploidy, max ploidy, phased and bit depth of a block's probability data, checked.

    Raises:
        _BadBlock: N other than the header's, more than two alleles, or a bit depth other than 8 or 16.
    """
    if len(data) < 10:
        raise _BadBlock("probability data shorter than its header")
    n, n_alleles, min_ploidy, max_ploidy = struct.unpack_from("<IHBB", data)
    if n != n_samples:
        raise _BadBlock(f"genotype block holds {n} samples, the file header {n_samples}")
    if n_alleles != 2:
        raise _BadBlock(f"genotype block holds {n_alleles} alleles; only biallelic variants are read")
    if len(data) < 10 + n:
        raise _BadBlock("probability data shorter than its ploidy bytes")
    phased, bits = data[8 + n], data[9 + n]
    if bits not in _PROBABILITY_DTYPES:
        raise _BadBlock(f"probabilities stored at {bits} bits; only 8 or 16 bits are read: convert the file, e.g. "
                        f"plink2 --bgen {path} ref-first --sample <its .sample> --export bgen-1.2 bits=8 --out "
                        f"<new prefix>, or qctool -g {path} -og <new>.bgen -ofiletype bgen_v1.2 -bgen-bits 8")
    return n_alleles, min_ploidy, max_ploidy, bool(phased), bits


def _diploid_dosages(data: bytes | memoryview, n: int, rows: np.ndarray | None, bits: int) -> np.ndarray:
    """Dosages of unphased blocks where every sample is diploid: two stored values per sample.

    Only the requested rows are gathered; 8-bit pairs are looked up in a table of all 65,536 pairs.
    """
    start = 10 + n
    dtype = _PROBABILITY_DTYPES[bits]
    if len(data) < start + 2 * n * dtype.itemsize:
        raise _BadBlock("probability data shorter than its samples need")
    missing = np.frombuffer(data, np.uint8, n, 8)
    if bits == 8:
        pairs = np.frombuffer(data, "<u2", n, start)
        dosage = _DOSAGE_OF_PAIR_8BIT[pairs if rows is None else pairs[rows]]
    else:
        values = np.frombuffer(data, dtype, 2 * n, start).reshape(n, 2)
        taken = (values if rows is None else values[rows]).astype(np.int32)
        dosage = (131070 - 2 * taken[:, 0] - taken[:, 1]).astype(np.float32) / np.float32(65535)
    flagged = (missing if rows is None else missing[rows]) >= _MISSING_BIT
    dosage[flagged] = np.nan
    return dosage


def _mixed_dosages(data: bytes | memoryview, n: int, rows: np.ndarray | None, bits: int, phased: bool) -> np.ndarray:
    """Dosages of phased blocks or blocks of mixed ploidy, gathering each requested sample's values.

    A biallelic sample of ploidy p stores p values either way (unphased: P(A) or P(AA), P(AB);
    phased: P(A) of each haplotype), so its values start at the cumulative sum of the ploidies before it.

    Raises:
        _BadBlock: a requested, non-missing sample of ploidy other than 1 or 2, or data too short.
    """
    dtype, top = _PROBABILITY_DTYPES[bits], np.float32((1 << bits) - 1)
    flags = np.frombuffer(data, np.uint8, n, 8)
    ploidy = (flags & _PLOIDY_BITS).astype(np.int64)
    first = np.cumsum(ploidy) - ploidy
    total = int(ploidy.sum())
    if len(data) < 10 + n + total * dtype.itemsize:
        raise _BadBlock("probability data shorter than its samples' ploidies need")
    values = np.frombuffer(data, dtype, total, 10 + n)
    rows = np.arange(n) if rows is None else rows
    p, missing = ploidy[rows], flags[rows] >= _MISSING_BIT
    odd = ~missing & ((p < 1) | (p > 2))
    if odd.any():
        raise _BadBlock(f"sample row {int(rows[odd][0])} has ploidy {int(p[odd][0])}; only 1 or 2 are read")
    last = max(total - 1, 0)
    # missing samples may store no values; their clipped reads are replaced by NaN below
    a = values[np.minimum(first[rows], last)].astype(np.float32) if total else np.zeros(rows.size, np.float32)
    b = values[np.minimum(first[rows] + 1, last)].astype(np.float32) if total else a
    diploid = p == 2
    if phased:
        lost = np.where(diploid, a + b, 2 * a)  # P(A) summed over haplotypes; a haploid one counts twice
    else:
        lost = np.where(diploid, 2 * a + b, 2 * a)  # 2 P(AA) + P(AB), or twice a haploid P(A)
    dosage = (2 * top - lost) / top
    dosage[missing] = np.nan
    return dosage.astype(np.float32, copy=False)


def _decode(data: bytes | memoryview, n_samples: int, rows: np.ndarray | None, path: str) -> np.ndarray:
    """ALT dosages (float32, NaN = missing) of the requested rows of one block's probability data.

    Raises:
        _BadBlock: anything :func:`_block_layout` or the dosage functions refuse.
    """
    _, min_ploidy, max_ploidy, phased, bits = _block_layout(data, n_samples, path)
    if not phased and min_ploidy == max_ploidy == 2:
        return _diploid_dosages(data, n_samples, rows, bits)
    return _mixed_dosages(data, n_samples, rows, bits, phased)


def _multiallelic_message(path: str, variant: _Variant) -> str:
    return (f"{path}: {variant.label()} has {len(variant.alleles)} alleles; only biallelic variants are read: "
            f"split them first, e.g. plink2 --bgen {path} ref-first --sample <its .sample> --make-pgen "
            "multiallelics=- --out <new prefix>")


def check_bgen(path: str | os.PathLike, n_samples_expected: int | None = None,
               sample_file: str | None = None) -> BgenHeader:
    """Check a .bgen cheaply: its header, and the first variant's genotype block.

    Reads only the header and the first variant, so it can run on every chromosome's file at
    workflow start.

    Args:
        path: the .bgen file.
        n_samples_expected: the sample count of its .sample file, if known.
        sample_file: that .sample file, for the message.

    Returns:
        The header.

    Raises:
        BgenError: what :func:`read_bgen_header` refuses; a header sample count other than
            ``n_samples_expected``; a first variant that is not biallelic, or whose probabilities are
            not 8 or 16 bits, or whose block is corrupt.
    """
    header = read_bgen_header(path)
    name = header.path
    if n_samples_expected is not None and header.n_samples != n_samples_expected:
        raise BgenError(f"{name} holds {header.n_samples} samples but {sample_file or 'the .sample file'} lists "
                        f"{n_samples_expected}: the .sample does not belong to this .bgen")
    if header.n_variants == 0:
        return header
    fd = os.open(name, os.O_RDONLY)
    try:
        variant = _read_variant(fd, header.first_variant_offset, os.fstat(fd).st_size, name, 0)
        if len(variant.alleles) != 2:
            raise BgenError(_multiallelic_message(name, variant))
        payload = os.pread(fd, variant.genotype_length, variant.genotype_offset + 4)
        try:
            _block_layout(_probability_data(memoryview(payload), header.compression), header.n_samples, name)
        except _BadBlock as problem:
            raise BgenError(f"{name}: {variant.label()}: {problem}") from None
    finally:
        os.close(fd)
    return header


# --------------------------------------------------------------------------- variant table


_COLUMNS = ["chrom", "id", "pos", "ref", "alt"]


def _table_row(variant: _Variant) -> tuple[str, str, int, str, str]:
    """A variant's row of the variant table; ALT is "." when the variant has a single allele."""
    ref = variant.alleles[0] if variant.alleles else "."
    return variant.chrom, variant.id, variant.pos, ref, ",".join(variant.alleles[1:]) or "."


def _frame(rows: list[tuple[str, str, int, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    frame["pos"] = frame["pos"].astype(np.int64)
    return frame


VariantTable = tuple[pd.DataFrame, np.ndarray, np.ndarray]


def _scan_variants(fd: int, header: BgenHeader, file_size: int) -> VariantTable:
    """The variant table, offsets and sizes read from every variant's identifying data, skipping genotype blocks.

    Raises:
        BgenError: the file ends before the header's number of variants.
    """
    rows, offsets, sizes = [], np.empty(header.n_variants, np.int64), np.empty(header.n_variants, np.int64)
    offset, started = header.first_variant_offset, time.perf_counter()
    for number in range(header.n_variants):
        variant = _read_variant(fd, offset, file_size, header.path, number)
        rows.append(_table_row(variant))
        offsets[number], sizes[number] = offset, variant.end - offset
        offset = variant.end
        if (number + 1) % _SCAN_PROGRESS == 0:
            log.info("%s: scanned %d of %d variants (%.0f s)", header.path, number + 1, header.n_variants,
                     time.perf_counter() - started)
    return _frame(rows), offsets, sizes


def _index_rows(index_path: Path) -> list[tuple] | None:
    """The Variant table of a bgenix index in file order, or None (with a warning) when it cannot be read."""
    try:
        # immutable: no locking or journal, so a read-only or network file system works
        connection = sqlite3.connect(f"{index_path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            return connection.execute(f"SELECT {_INDEX_COLUMNS} FROM Variant ORDER BY file_start_position").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:
        log.warning("%s: cannot read the index (%s); scanning the .bgen instead", index_path, error)
        return None


def _indexed_variants(fd: int, header: BgenHeader, file_size: int) -> VariantTable | None:
    """The variant table, offsets and sizes from ``<path>.bgi`` when there is one that fits the file, else None.

    The index lacks the variant-id field and alleles past the second, so variants with an empty
    rsid or other than two alleles are read from the file.
    """
    index_path = Path(f"{header.path}.bgi")
    rows = _index_rows(index_path) if index_path.is_file() else None
    if rows is None:
        return None
    offsets = np.array([row[6] for row in rows], dtype=np.int64)
    sizes = np.array([row[7] for row in rows], dtype=np.int64)
    # contiguous blocks from the first variant to within the file: a stale index fails this
    fits = len(rows) == header.n_variants and (not rows or (
        offsets[0] == header.first_variant_offset and (offsets[1:] == offsets[:-1] + sizes[:-1]).all()
        and offsets[-1] + sizes[-1] <= file_size))
    if not fits:
        log.warning("%s does not match %s (%d variants indexed, %d in the file, or other offsets); scanning the "
                    ".bgen instead", index_path, header.path, len(rows), header.n_variants)
        return None
    table = [(chrom, rsid, pos, ref, alt) for chrom, pos, rsid, _, ref, alt, _, _ in rows]
    for number, row in enumerate(rows):
        if not row[2] or row[3] != 2:
            table[number] = _table_row(_read_variant(fd, row[6], file_size, header.path, number))
    return _frame(table), offsets, sizes


# --------------------------------------------------------------------------- reader


def _indices(values: np.ndarray | Sequence[int], n: int, what: str, path: str) -> np.ndarray:
    """Sample-row or variant indices as int64, refusing boolean masks and any index out of range."""
    given = np.asarray(values)
    if given.dtype == bool:
        raise TypeError(f"{what} indices must be integers, not a boolean mask")
    index = given.astype(np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise IndexError(f"{what} index out of range for the {n} {what}s of {path}")
    return index


class BgenFile:
    """A BGEN 1.2 (layout 2) file: its header, variant table, and ALT dosages of any variants and samples.

    Attributes:
        header: the checked header.
        variants: chrom, id, pos, ref, alt of every variant, in file order.
        offsets: int64 absolute offset of each variant's data block.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        """Open the file and build its variant table, from ``<path>.bgi`` when it fits the file, else by a scan.

        Args:
            path: the .bgen file.
            threads: variants decoded at once by :meth:`read_dosages`.

        Raises:
            BgenError: what :func:`read_bgen_header` refuses, or a file that ends early.
            ValueError: threads below 1.
        """
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.header = read_bgen_header(path)
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._fd = os.open(self.header.path, os.O_RDONLY)
        try:
            size = os.fstat(self._fd).st_size
            table = _indexed_variants(self._fd, self.header, size) or _scan_variants(self._fd, self.header, size)
        except BaseException:
            os.close(self._fd)
            raise
        self.variants, self.offsets, self._sizes = table

    def _column(self, variant: int, rows: np.ndarray | None) -> np.ndarray:
        """Dosages of one variant at the requested rows (all when None)."""
        offset, size = int(self.offsets[variant]), int(self._sizes[variant])
        block = os.pread(self._fd, size, offset)
        try:
            found = _parse_variant(block, 0)
        except _Truncated:
            raise BgenError(f"{self.header.path}: truncated variant {variant + 1} at byte {offset}") from None
        if len(found.alleles) != 2:
            raise BgenError(_multiallelic_message(self.header.path, found))
        start = found.genotype_offset + 4
        try:
            if start + found.genotype_length > len(block):
                raise _BadBlock("genotype block runs past the variant's end")
            data = _probability_data(memoryview(block)[start:start + found.genotype_length], self.header.compression)
            return _decode(data, self.header.n_samples, rows, self.header.path)
        except _BadBlock as problem:
            raise BgenError(f"{self.header.path}: {found.label()}: {problem}") from None

    def read_dosages(self, variant_index: np.ndarray | Sequence[int],
                     sample_rows: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """Expected ALT (second allele) counts of some variants at some samples.

        Args:
            variant_index: positions in :attr:`variants`, in the order wanted.
            sample_rows: sample rows in the file, in the order wanted; None for all.

        Returns:
            (len(sample_rows) or N, len(variant_index)) float32, NaN = missing.

        Raises:
            BgenError: a multi-allelic variant, bit depth other than 8 or 16, ploidy other than 1 or
                2, a block whose sample count differs from the header, or a corrupt block.
            IndexError: an index out of range.
        """
        path = self.header.path
        index = _indices(variant_index, self.header.n_variants, "variant", path)
        rows = None if sample_rows is None else _indices(sample_rows, self.header.n_samples, "sample", path)
        out = np.empty((self.header.n_samples if rows is None else rows.size, index.size), dtype=np.float32)

        def fill(column: int) -> None:
            out[:, column] = self._column(int(index[column]), rows)

        if self.threads == 1 or index.size < 2:
            for column in range(index.size):
                fill(column)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="bgen")
            list(self._pool.map(fill, range(index.size)))
        return out

    def close(self) -> None:
        """Close the file and stop the thread pool; safe to call twice."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> BgenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- writer


def _quantised(dosage: np.ndarray, haploid: np.ndarray, top: int) -> np.ndarray:
    """Integer probabilities of 0, 1 and 2 ALT copies (haploid: of A, B and nothing) summing to ``top``.

    Diploid: the mass goes to the two integer genotypes around the dosage. Each row is floored and
    its shortfall given to the largest remainders, so no stored value sum exceeds ``top`` and the
    implied last probability is never negative. Missing rows are zero.
    """
    d = np.nan_to_num(dosage, nan=0.0)
    probability = np.zeros((d.size, 3))
    rows = np.arange(d.size)
    low = np.clip(np.floor(d), 0, 1).astype(np.int64)
    low[haploid] = 0
    share = np.where(haploid, d / 2, d - low)
    probability[rows, low] = 1 - share
    probability[rows, low + 1] += share
    scaled = probability * top
    counts = np.floor(scaled)
    shortfall = top - counts.sum(axis=1)
    rank = np.argsort(np.argsort(counts - scaled, axis=1, kind="stable"), axis=1)
    counts += rank < shortfall[:, None]
    counts[np.isnan(dosage)] = 0
    return counts.astype(np.int64)


def _genotype_data(dosage: np.ndarray, ploidy: np.ndarray, n_alleles: int, bits: int) -> bytes:
    """The uncompressed probability data of one unphased variant.

    A sample of ploidy p stores all but the last of its C(p + K - 1, K - 1) genotype probabilities,
    in colex order (diploid: AA, AB, BB, AC, BC, CC, ...; haploid: A, B, C, ...); alleles past
    the second get no mass.
    """
    haploid = ploidy == 1
    counts = _quantised(dosage, haploid, (1 << bits) - 1)
    diploid_stored = n_alleles * (n_alleles + 1) // 2 - 1
    table = np.zeros((dosage.size, diploid_stored), dtype=np.int64)
    filled = min(3, diploid_stored)
    table[:, :filled] = counts[:, :filled]
    haploid_stored = n_alleles - 1
    keep = np.arange(diploid_stored)[None, :] < np.where(haploid, haploid_stored, diploid_stored)[:, None]
    flags = ploidy.astype(np.uint8) | np.where(np.isnan(dosage), _MISSING_BIT, 0).astype(np.uint8)
    low, high = (int(ploidy.min()), int(ploidy.max())) if ploidy.size else (2, 2)
    head = struct.pack("<IHBB", dosage.size, n_alleles, low, high)
    return (head + flags.tobytes() + bytes([0, bits])
            + table[keep].astype(_PROBABILITY_DTYPES[bits]).tobytes())


def _variant_block(row: tuple[str, str, int, str, str], dosage: np.ndarray, ploidy: np.ndarray, bits: int,
                   compression: int) -> bytes:
    """One variant's data block: identifying data (variant-id field ``chrom:pos_ref_alt``, rsid field ``id``)
    and its genotype block."""
    chrom, rsid, pos, ref, alt = row
    alleles = [ref, *alt.split(",")]

    def text(value: str, width: int) -> bytes:
        raw = value.encode()
        return len(raw).to_bytes(width, "little") + raw

    varid = f"{chrom}:{pos}_{ref}_{alt.replace(',', '_')}"
    head = (text(varid, 2) + text(rsid, 2) + text(chrom, 2) + struct.pack("<IH", pos, len(alleles))
            + b"".join(text(allele, 4) for allele in alleles))
    data = _genotype_data(dosage, ploidy, len(alleles), bits)
    if compression == _ZLIB:
        packed = zlib.compress(data)
        return head + struct.pack("<II", len(packed) + 4, len(data)) + packed
    return head + struct.pack("<I", len(data)) + data


def _header_bytes(n_variants: int, n_samples: int, compression: int, sample_ids: Sequence[str] | None) -> bytes:
    """The offset, header block (no free data) and sample identifier block of a layout-2 file."""
    flags = compression | (2 << 2) | (_SAMPLE_IDS_FLAG if sample_ids is not None else 0)
    samples = b""
    if sample_ids is not None:
        body = b"".join(len(raw).to_bytes(2, "little") + raw for raw in (str(s).encode() for s in sample_ids))
        samples = struct.pack("<II", 8 + len(body), n_samples) + body
    header = struct.pack("<III", 20, n_variants, n_samples) + _MAGIC + struct.pack("<I", flags)
    return struct.pack("<I", len(header) + len(samples)) + header + samples


def _write_index(path: str, records: list[tuple]) -> None:
    """``<path>.bgi`` with bgenix's Variant and Metadata tables, replacing any old one."""
    index_path = Path(f"{path}.bgi")
    index_path.unlink(missing_ok=True)
    with open(path, "rb") as handle:
        first = handle.read(1000)
    stat = os.stat(path)
    connection = sqlite3.connect(index_path)
    try:
        connection.execute(
            "CREATE TABLE Variant (chromosome TEXT NOT NULL, position INT NOT NULL, rsid TEXT NOT NULL, "
            "number_of_alleles INT NOT NULL, allele1 TEXT NOT NULL, allele2 TEXT NULL, file_start_position INT NOT "
            "NULL, size_in_bytes INT NOT NULL, PRIMARY KEY (chromosome, position, rsid, allele1, allele2, "
            "file_start_position)) WITHOUT ROWID")
        connection.execute(
            "CREATE TABLE Metadata (filename TEXT NOT NULL, file_size INT NOT NULL, last_write_time INT NOT NULL, "
            "first_1000_bytes BLOB NOT NULL, index_creation_time INT NOT NULL)")
        connection.executemany("INSERT INTO Variant VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
        connection.execute("INSERT INTO Metadata VALUES (?, ?, ?, ?, ?)",
                           (path, stat.st_size, int(stat.st_mtime), first, int(time.time())))
        connection.commit()
    finally:
        connection.close()


def _checked_write_inputs(variants: pd.DataFrame, dosages: np.ndarray, bits: int, sample_ids: Sequence[str] | None,
                          ploidy: np.ndarray | None, compression: int) -> tuple[np.ndarray, np.ndarray]:
    """The dosages as float64 and the per-sample ploidies, after checking every argument of :func:`write_bgen`.

    Raises:
        ValueError: any argument that does not fit the others or the format.
    """
    if bits not in _PROBABILITY_DTYPES:
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    if compression not in (_UNCOMPRESSED, _ZLIB):
        raise ValueError(f"compression must be 0 (none) or 1 (zlib), not {compression}")
    values = np.asarray(dosages, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(variants):
        raise ValueError(f"dosages must be (n_samples, {len(variants)} variants), not {values.shape}")
    if ((values < 0) | (values > 2)).any():
        raise ValueError("dosages must lie in [0, 2] (NaN for missing)")
    n = values.shape[0]
    if sample_ids is not None and len(sample_ids) != n:
        raise ValueError(f"{len(sample_ids)} sample IDs for {n} samples")
    sample_ploidy = np.full(n, 2, dtype=np.int64) if ploidy is None else np.asarray(ploidy, dtype=np.int64)
    if sample_ploidy.shape != (n,) or not np.isin(sample_ploidy, (1, 2)).all():
        raise ValueError(f"ploidy must be 1 or 2 for each of the {n} samples")
    return values, sample_ploidy


def write_bgen(path: str | os.PathLike, variants: pd.DataFrame, dosages: np.ndarray, bits: int = 8,
               sample_ids: Sequence[str] | None = None, index: bool = True, ploidy: np.ndarray | None = None,
               *, compression: int = _ZLIB) -> None:
    """Write unphased ALT dosages as a BGEN 1.2 layout-2 file, with a bgenix-style index.

    Each dosage d becomes probabilities on the two integer genotypes around it (P(floor d) = 1 - frac,
    P(floor d + 1) = frac); a haploid sample gets P(A) = 1 - d / 2. The variant-id field is written
    as ``chrom:pos_ref_alt`` (as UK Biobank's files do) and the rsid field as ``id``.

    Args:
        path: the .bgen to write.
        variants: chrom (written as given, e.g. "01"), id, pos, ref, alt (alleles past the second
            joined with ",", which get no probability mass).
        dosages: (n_samples, n_variants) ALT dosages in [0, 2], NaN = missing.
        bits: 8 or 16 bits per probability.
        sample_ids: written as the sample identifier block when given.
        index: also write ``<path>.bgi``.
        ploidy: per-sample 1 or 2 (default all 2).
        compression: 1 zlib, 0 none (for tests that patch blocks).

    Raises:
        ValueError: arguments that do not fit each other or the format.
    """
    values, sample_ploidy = _checked_write_inputs(variants, dosages, bits, sample_ids, ploidy, compression)
    name = os.fspath(path)
    columns = variants[["chrom", "id", "pos", "ref", "alt"]]
    records = []
    with open(name, "wb") as handle:
        offset = handle.write(_header_bytes(len(variants), values.shape[0], compression, sample_ids))
        for j, (chrom, rsid, pos, ref, alt) in enumerate(columns.itertuples(index=False)):
            row = (str(chrom), str(rsid), int(pos), str(ref), str(alt))
            block = _variant_block(row, values[:, j], sample_ploidy, bits, compression)
            handle.write(block)
            alleles = [row[3], *row[4].split(",")]
            records.append((row[0], row[2], row[1], len(alleles), alleles[0], alleles[1], offset, len(block)))
            offset += len(block)
    if index:
        _write_index(name, records)
    else:
        Path(f"{name}.bgi").unlink(missing_ok=True)


def write_sample_file(path: str | os.PathLike, fid: Sequence[str], iid: Sequence[str],
                      sex: Sequence[int] | None = None) -> None:
    """Write an Oxford .sample file: ID_1 (FID), ID_2 (IID), missing (0) and sex.

    Args:
        path: the .sample to write.
        fid: family IDs.
        iid: individual IDs, as many as ``fid``.
        sex: 1 male, 2 female, 0 unknown (default all 0).

    Raises:
        ValueError: lengths that differ, IDs with whitespace, or sex codes other than 0, 1, 2.
    """
    sexes = [0] * len(iid) if sex is None else [int(code) for code in sex]
    if not len(fid) == len(iid) == len(sexes):
        raise ValueError(f"{len(fid)} FIDs, {len(iid)} IIDs and {len(sexes)} sex codes: they must be as many")
    if any(len(str(value).split()) != 1 for value in [*fid, *iid]):
        raise ValueError("sample IDs must be non-empty and without whitespace in a .sample file")
    if not set(sexes) <= {0, 1, 2}:
        raise ValueError("sex must be 1 (male), 2 (female) or 0 (unknown)")
    lines = ["ID_1 ID_2 missing sex", "0 0 0 D"]
    lines += [f"{f} {i} 0 {s}" for f, i, s in zip(fid, iid, sexes)]
    Path(path).write_text("\n".join(lines) + "\n")
