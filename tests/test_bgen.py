"""The numpy/zlib BGEN 1.2 reader and writer: round trips, agreement with plink2, the .bgi index, refusals."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.io.bgen import (
    BgenError,
    BgenFile,
    check_bgen,
    read_bgen_header,
    write_bgen,
    write_sample_file,
)

needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N_SAMPLES = 60
N_VARIANTS = 25


def _variants(n: int, chrom: str = "01", start: int = 10_000) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame({"chrom": [chrom] * n, "id": [f"rs{100 + i}" for i in range(n)],
                         "pos": start + 137 * np.arange(n, dtype=np.int64),
                         "ref": rng.choice(list("AC"), n), "alt": rng.choice(list("GT"), n)})


def _dosages(n: int, m: int, seed: int = 3) -> np.ndarray:
    """Soft dosages, the ends 0 and 2 exactly, and a few missing."""
    rng = np.random.default_rng(seed)
    dosages = rng.uniform(0, 2, (n, m))
    dosages[rng.random((n, m)) < 0.2] = 0.0
    dosages[rng.random((n, m)) < 0.1] = 2.0
    dosages[rng.random((n, m)) < 0.05] = np.nan
    return dosages


def _ploidy(n: int) -> np.ndarray:
    ploidy = np.full(n, 2)
    ploidy[::3] = 1
    return ploidy


def _assert_close(got: np.ndarray, expected: np.ndarray, bits: int, haploid: bool) -> None:
    """Within half a quantum of a diploid dosage, or a whole one where a haploid P(A) is doubled."""
    quantum = 1 / ((1 << bits) - 1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=(1.0 if haploid else 0.5) * quantum + 1e-6)


def _patch(path: Path, offset: int, value: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(value)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("haploid", [False, True])
def test_round_trip_gives_back_the_dosages(tmp_path: Path, bits: int, haploid: bool) -> None:
    dosages, variants = _dosages(N_SAMPLES, N_VARIANTS), _variants(N_VARIANTS)
    ploidy = _ploidy(N_SAMPLES) if haploid else None
    ids = [f"s{i}" for i in range(N_SAMPLES)]
    write_bgen(tmp_path / "r.bgen", variants, dosages, bits=bits, sample_ids=ids, ploidy=ploidy)
    rng = np.random.default_rng(0)
    rows, columns = rng.permutation(N_SAMPLES)[:17], np.array([7, 0, 24, 3, 3])
    with BgenFile(tmp_path / "r.bgen") as bgen:
        assert bgen.header.sample_ids == tuple(ids)
        assert (bgen.header.n_samples, bgen.header.n_variants) == (N_SAMPLES, N_VARIANTS)
        pd.testing.assert_frame_equal(bgen.variants, variants, check_dtype=False)
        assert bgen.variants["pos"].dtype == np.int64
        _assert_close(bgen.read_dosages(np.arange(N_VARIANTS)), dosages, bits, haploid)
        _assert_close(bgen.read_dosages(columns, rows), dosages[np.ix_(rows, columns)], bits, haploid)
        assert bgen.read_dosages(np.array([], dtype=np.int64), rows).shape == (17, 0)
    assert np.isnan(dosages).any() and (dosages == 2).any()


def test_hard_calls_are_exact_and_uncompressed_files_read(tmp_path: Path) -> None:
    dosages = np.random.default_rng(1).integers(0, 3, (40, 6)).astype(float)
    dosages[5, 2] = np.nan
    write_bgen(tmp_path / "h.bgen", _variants(6), dosages, compression=0)
    assert read_bgen_header(tmp_path / "h.bgen").compression == 0
    with BgenFile(tmp_path / "h.bgen") as bgen:
        np.testing.assert_array_equal(bgen.read_dosages(np.arange(6)), dosages.astype(np.float32))


def _first_block(variants: pd.DataFrame, first_offset: int) -> int:
    """Offset of the first variant's probability data in an uncompressed file written by write_bgen.

    write_bgen writes the variant-id field as chrom:pos_ref_alt; the 4 after the identifying data is C.
    """
    row = variants.iloc[0]
    varid = f"{row['chrom']}:{row['pos']}_{row['ref']}_{row['alt']}"
    strings = 2 + len(varid) + 2 + len(row["id"]) + 2 + len(row["chrom"])
    alleles = 2 + 4 + len(row["ref"]) + 4 + len(row["alt"])
    return first_offset + strings + 4 + alleles + 4


def test_phased_blocks_sum_the_haplotypes(tmp_path: Path) -> None:
    # diploid biallelic samples store two values phased or not, so flipping the phased byte re-reads
    # (P(AA), P(AB)) as (P(hap 1 = A), P(hap 2 = A)): 0 -> (1, 0) -> 1 ALT, 1 -> (0, 1) -> 1, 2 -> (0, 0) -> 2
    dosages = np.array([[0.0], [1.0], [2.0], [np.nan], [0.0], [2.0]])
    ploidy = np.array([2, 2, 2, 2, 1, 1])
    variants = _variants(1)
    write_bgen(tmp_path / "p.bgen", variants, dosages, sample_ids=None, ploidy=ploidy, compression=0)
    data = _first_block(variants, read_bgen_header(tmp_path / "p.bgen").first_variant_offset)
    _patch(tmp_path / "p.bgen", data + 8 + 6, b"\x01")
    with BgenFile(tmp_path / "p.bgen") as bgen:
        got = bgen.read_dosages([0])[:, 0]
    np.testing.assert_array_equal(got, np.array([1, 1, 2, np.nan, 0, 2], dtype=np.float32))


def test_threads_give_the_same_block(tmp_path: Path) -> None:
    dosages = _dosages(300, 120, seed=9)
    write_bgen(tmp_path / "t.bgen", _variants(120), dosages, index=False)
    columns, rows = np.random.default_rng(2).permutation(120), np.arange(0, 300, 7)[::-1]
    with BgenFile(tmp_path / "t.bgen") as one, BgenFile(tmp_path / "t.bgen", threads=2) as two:
        np.testing.assert_array_equal(one.read_dosages(columns, rows), two.read_dosages(columns, rows))
        np.testing.assert_array_equal(one.read_dosages(columns), two.read_dosages(columns))


# --------------------------------------------------------------------------- against plink2


def _plink2_dosages(folder: Path, bgen: Path, sample: Path, n: int, m: int) -> tuple[np.ndarray, pd.DataFrame]:
    """ALT dosages and the .pvar of plink2's import of a .bgen (ref-first)."""
    import pgenlib

    out = folder / "plink2"
    subprocess.run(["plink2", "--bgen", str(bgen), "ref-first", "--sample", str(sample), "--make-pgen",
                    "--out", str(out)], check=True, capture_output=True)
    pvar = pd.read_csv(f"{out}.pvar", sep="\t", dtype={"#CHROM": str})
    reader = pgenlib.PgenReader(str(out.with_suffix(".pgen")).encode())
    dosages, buffer = np.empty((n, m)), np.empty(n, dtype=np.float64)
    for j in range(m):
        reader.read_dosages(j, buffer)
        dosages[:, j] = np.where(buffer < 0, np.nan, buffer)  # pgenlib's missing is -9
    reader.close()
    return dosages, pvar


@needs_plink2
@pytest.mark.parametrize("chrom", ["01", "X"])
def test_dosages_and_variants_agree_with_plink2(tmp_path: Path, chrom: str) -> None:
    n, m = 150, 40
    dosages, variants = _dosages(n, m, seed=11), _variants(m, chrom, start=5_000_000)
    variants.loc[5, "id"] = variants.loc[4, "id"]  # duplicate rsids are kept, by plink2 and by us
    ids = [f"u{i}" for i in range(n)]
    sex = np.where(np.arange(n) % 2 == 0, 1, 2)
    ploidy = np.where(sex == 1, 1, 2) if chrom == "X" else None  # males haploid on X, as UK Biobank
    write_bgen(tmp_path / "f.bgen", variants, dosages, bits=8, ploidy=ploidy)
    write_sample_file(tmp_path / "f.sample", ids, ids, sex)
    expected, pvar = _plink2_dosages(tmp_path, tmp_path / "f.bgen", tmp_path / "f.sample", n, m)
    with BgenFile(tmp_path / "f.bgen") as bgen:
        got = bgen.read_dosages(np.arange(m))
        table = bgen.variants
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    assert table["chrom"].tolist() == [chrom] * m
    assert pvar["#CHROM"].tolist() == [chrom.lstrip("0")] * m  # plink2 renames "01" to "1"
    assert table["pos"].tolist() == pvar["POS"].tolist()
    assert table["id"].tolist() == pvar["ID"].tolist()
    assert table["ref"].tolist() == pvar["REF"].tolist()
    assert table["alt"].tolist() == pvar["ALT"].tolist()


# --------------------------------------------------------------------------- variant table and index


def test_index_and_scan_give_the_same_table(tmp_path: Path) -> None:
    dosages, variants = _dosages(30, N_VARIANTS), _variants(N_VARIANTS)
    variants.loc[3, "id"] = ""  # an empty rsid: the variant-id field is the ID
    variants.loc[9, "alt"] = "G,T"  # multi-allelic: the index holds only the second allele
    write_bgen(tmp_path / "a.bgen", variants, dosages, index=True)
    write_bgen(tmp_path / "b.bgen", variants, dosages, index=False)
    assert Path(f"{tmp_path / 'a.bgen'}.bgi").is_file()
    assert not Path(f"{tmp_path / 'b.bgen'}.bgi").exists()
    with BgenFile(tmp_path / "a.bgen") as indexed, BgenFile(tmp_path / "b.bgen") as scanned:
        pd.testing.assert_frame_equal(indexed.variants, scanned.variants)
        np.testing.assert_array_equal(indexed.offsets, scanned.offsets)
        assert indexed.offsets.dtype == np.int64
        assert indexed.offsets[0] == indexed.header.first_variant_offset
        table = indexed.variants
    row = variants.loc[3]
    assert table.loc[3, "id"] == f"01:{row['pos']}_{row['ref']}_{row['alt']}"
    assert table.loc[9, "alt"] == "G,T"


def test_the_index_is_used_and_a_stale_one_is_not(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_bgen(tmp_path / "i.bgen", _variants(10), _dosages(20, 10))
    with sqlite3.connect(f"{tmp_path / 'i.bgen'}.bgi") as connection:
        connection.execute("UPDATE Variant SET rsid = 'from_index' WHERE position = 10000")
    with BgenFile(tmp_path / "i.bgen") as bgen:
        assert bgen.variants.loc[0, "id"] == "from_index"
    with sqlite3.connect(f"{tmp_path / 'i.bgen'}.bgi") as connection:
        connection.execute("DELETE FROM Variant WHERE position = 10137")
    with caplog.at_level(logging.WARNING, logger="vitudip.bgen"), BgenFile(tmp_path / "i.bgen") as bgen:
        assert bgen.variants["id"].tolist() == _variants(10)["id"].tolist()
    assert "scanning the .bgen instead" in caplog.text


def test_chromosome_codes_are_kept_and_duplicate_ids_allowed(tmp_path: Path) -> None:
    variants = _variants(4)
    variants["chrom"] = ["01", "01", "X", "chr22"]
    variants["id"] = ["rs1", "rs1", "rs1", "rs2"]
    for index in (True, False):
        write_bgen(tmp_path / "c.bgen", variants, _dosages(10, 4), index=index)
        with BgenFile(tmp_path / "c.bgen") as bgen:
            assert bgen.variants["chrom"].tolist() == ["01", "01", "X", "chr22"]
            assert bgen.variants["id"].tolist() == ["rs1", "rs1", "rs1", "rs2"]


def test_sample_file_is_oxford_format(tmp_path: Path) -> None:
    write_sample_file(tmp_path / "s.sample", ["f1", "f2"], ["i1", "i2"], [1, 2])
    assert (tmp_path / "s.sample").read_text().splitlines() == [
        "ID_1 ID_2 missing sex", "0 0 0 D", "f1 i1 0 1", "f2 i2 0 2"]
    with pytest.raises(ValueError, match="whitespace"):
        write_sample_file(tmp_path / "t.sample", ["f 1"], ["i1"])


# --------------------------------------------------------------------------- refusals


def test_random_bytes_are_not_a_bgen(tmp_path: Path) -> None:
    path = tmp_path / "noise.bgen"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for read in (read_bgen_header, check_bgen, BgenFile):
        with pytest.raises(BgenError, match="not a BGEN file") as error:
            read(path)
        assert str(path) in str(error.value)
    path.write_bytes(b"bgen")
    with pytest.raises(BgenError, match="not a BGEN file"):
        read_bgen_header(path)


def test_a_truncated_header_is_refused(tmp_path: Path) -> None:
    write_bgen(tmp_path / "full.bgen", _variants(2), _dosages(5, 2), sample_ids=list("abcde"))
    path = tmp_path / "cut.bgen"
    path.write_bytes((tmp_path / "full.bgen").read_bytes()[:30])
    with pytest.raises(BgenError, match="truncated") as error:
        read_bgen_header(path)
    assert str(path) in str(error.value)


def _set_flags(path: Path, compression: int, layout: int) -> None:
    with open(path, "rb") as handle:
        header_length = struct.unpack("<I", handle.read(8)[4:])[0]
        handle.seek(header_length)
        flags = struct.unpack("<I", handle.read(4))[0]
    _patch(path, header_length, struct.pack("<I", (flags & ~0b111111) | compression | (layout << 2)))


@pytest.mark.parametrize(("compression", "layout", "message"), [
    (1, 1, r"layout 1 \(BGEN 1\.1\).*plink2 --bgen .* --export bgen-1\.2 bits=8.*qctool"),
    (2, 2, r"zstd.*only zlib-compressed or uncompressed.*--export bgen-1\.2"),
])
def test_layout_1_and_zstd_are_refused(tmp_path: Path, compression: int, layout: int, message: str) -> None:
    path = tmp_path / "flags.bgen"
    write_bgen(path, _variants(3), _dosages(8, 3))
    _set_flags(path, compression, layout)
    for read in (read_bgen_header, check_bgen, BgenFile):
        with pytest.raises(BgenError, match=message) as error:
            read(path)
        assert str(path) in str(error.value)


def test_a_4bit_first_variant_is_refused(tmp_path: Path) -> None:
    path, variants = tmp_path / "four.bgen", _variants(3)
    write_bgen(path, variants, _dosages(8, 3), compression=0)
    check_bgen(path)
    data = _first_block(variants, read_bgen_header(path).first_variant_offset)
    _patch(path, data + 8 + 8 + 1, b"\x04")
    with pytest.raises(BgenError, match=r"stored at 4 bits.*bits=8") as error:
        check_bgen(path)
    assert str(path) in str(error.value) and "rs100" in str(error.value)
    with BgenFile(path) as bgen, pytest.raises(BgenError, match="stored at 4 bits") as error:
        bgen.read_dosages([0])
    assert f"{path}: variant 'rs100' (01:10000)" in str(error.value)


def test_a_block_of_other_sample_count_is_refused(tmp_path: Path) -> None:
    path, variants = tmp_path / "n.bgen", _variants(2)
    write_bgen(path, variants, _dosages(8, 2), compression=0)
    _patch(path, _first_block(variants, read_bgen_header(path).first_variant_offset), struct.pack("<I", 7))
    with BgenFile(path) as bgen, pytest.raises(BgenError, match="holds 7 samples, the file header 8") as error:
        bgen.read_dosages([0])
    assert str(path) in str(error.value)


def test_check_bgen_refuses_another_sample_count(tmp_path: Path) -> None:
    path = tmp_path / "c.bgen"
    write_bgen(path, _variants(2), _dosages(12, 2))
    assert check_bgen(path, 12, "c.sample").n_samples == 12
    with pytest.raises(BgenError) as error:
        check_bgen(path, 13, "other.sample")
    assert str(error.value) == (f"{path} holds 12 samples but other.sample lists 13: the .sample does not belong "
                                "to this .bgen")


def test_multiallelic_variants_are_refused_when_read(tmp_path: Path) -> None:
    path, variants = tmp_path / "m.bgen", _variants(3)
    variants.loc[1, "alt"] = "G,T"
    write_bgen(path, variants, _dosages(10, 3))
    with BgenFile(path) as bgen:
        assert bgen.variants.loc[1, "alt"] == "G,T"
        assert bgen.read_dosages([0, 2]).shape == (10, 2)
        with pytest.raises(BgenError, match=r"3 alleles.*multiallelics=-") as error:
            bgen.read_dosages([0, 1])
    assert f"{path}: variant 'rs101' (01:10137)" in str(error.value)
    variants.loc[0, "alt"] = "G,T"
    write_bgen(path, variants, _dosages(10, 3))
    with pytest.raises(BgenError, match="multiallelics=-"):
        check_bgen(path)
