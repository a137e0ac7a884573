"""PLINK 1 binary I/O: round trips, malformed files, and agreement with plink2/plink1.9."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitudip.io.plink import read_bed, read_bim, read_fam, write_bed

N_SAMPLES = 103  # not a multiple of 4: the last byte of each record is padded
N_VARIANTS = 57


def _variants(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A variant table on two chromosomes with distinct REF/ALT nucleotides."""
    bases = np.array(list("ACGT"))
    ref_i = rng.integers(0, 4, n)
    alt_i = (ref_i + rng.integers(1, 4, n)) % 4
    chrom = np.where(np.arange(n) < n // 2, 1, 2)
    pos = np.arange(n) * 100 + 1000
    ref, alt = bases[ref_i], bases[alt_i]
    ids = [f"{c}:{p}:{r}:{a}" for c, p, r, a in zip(chrom, pos, ref, alt)]
    return pd.DataFrame({"chrom": chrom, "id": ids, "pos": pos, "ref": ref, "alt": alt})


@pytest.fixture
def fileset(tmp_path: Path) -> tuple[Path, np.ndarray, pd.DataFrame, list[str]]:
    """A written fileset with ~5 % missing genotypes and varied allele frequencies."""
    rng = np.random.default_rng(7)
    freq = rng.uniform(0.05, 0.95, N_VARIANTS)
    dosages = rng.binomial(2, freq, size=(N_SAMPLES, N_VARIANTS)).astype(np.int8)
    dosages[rng.random(dosages.shape) < 0.05] = -1
    variants = _variants(N_VARIANTS, rng)
    samples = [f"S{i:04d}" for i in range(N_SAMPLES)]
    prefix = tmp_path / "geno"
    sex = rng.integers(1, 3, N_SAMPLES)
    write_bed(prefix, dosages, variants, samples, sex=sex)
    return prefix, dosages, variants, samples


def _alt_freq(dosages: np.ndarray) -> np.ndarray:
    """ALT allele frequency per variant over non-missing genotypes."""
    observed = dosages >= 0
    return np.where(observed, dosages, 0).sum(axis=0) / (2.0 * observed.sum(axis=0))


def test_round_trip_with_missing(fileset) -> None:
    prefix, dosages, _, _ = fileset
    back = read_bed(prefix)
    assert back.dtype == np.int8
    np.testing.assert_array_equal(back, dosages)
    assert (back == -1).any()


def test_file_size_and_magic(fileset) -> None:
    prefix, _, _, _ = fileset
    raw = Path(f"{prefix}.bed").read_bytes()
    assert raw[:3] == bytes([0x6C, 0x1B, 0x01])
    assert len(raw) == 3 + N_VARIANTS * ((N_SAMPLES + 3) // 4)


def test_read_variant_subsets(fileset) -> None:
    prefix, dosages, _, _ = fileset
    picks = [40, 3, 3, 56, 0]
    np.testing.assert_array_equal(read_bed(prefix, picks), dosages[:, picks])
    np.testing.assert_array_equal(read_bed(prefix, slice(10, 30)), dosages[:, 10:30])
    np.testing.assert_array_equal(read_bed(prefix, 5), dosages[:, [5]])
    assert read_bed(prefix, []).shape == (N_SAMPLES, 0)
    with pytest.raises(IndexError):
        read_bed(prefix, [N_VARIANTS])


def test_bim_and_fam_tables(fileset) -> None:
    prefix, _, variants, samples = fileset
    bim = read_bim(prefix)
    assert list(bim.columns) == ["chrom", "id", "cm", "pos", "alt", "ref"]
    assert bim["chrom"].tolist() == variants["chrom"].astype(str).tolist()
    assert bim["id"].tolist() == variants["id"].tolist()
    assert bim["pos"].tolist() == variants["pos"].tolist()
    assert bim["alt"].tolist() == variants["alt"].tolist()
    assert bim["ref"].tolist() == variants["ref"].tolist()
    fam = read_fam(prefix)
    assert list(fam.columns) == ["fid", "iid", "father", "mother", "sex", "phenotype"]
    assert fam["iid"].tolist() == samples and fam["fid"].tolist() == samples
    assert set(fam["sex"]) <= {1, 2}
    assert (fam["phenotype"] == -9).all()


def test_small_and_padded_sample_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    variants = _variants(9, rng)
    for n in (1, 2, 3, 4, 5):
        dosages = rng.integers(-1, 3, size=(n, 9)).astype(np.int8)
        prefix = tmp_path / f"n{n}"
        write_bed(prefix, dosages, variants, range(n))
        np.testing.assert_array_equal(read_bed(prefix), dosages)
        assert read_fam(prefix)["iid"].tolist() == [str(i) for i in range(n)]


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    variants = _variants(3, rng)
    with pytest.raises(ValueError, match="dosages must be 0, 1, 2 or -1"):
        write_bed(tmp_path / "x", np.full((4, 3), 3, np.int8), variants, range(4))
    with pytest.raises(ValueError, match="variants has 3 rows"):
        write_bed(tmp_path / "x", np.zeros((4, 2), np.int8), variants, range(4))
    with pytest.raises(ValueError, match="sex must use PLINK codes"):
        write_bed(tmp_path / "x", np.zeros((4, 3), np.int8), variants, range(4), sex=[0, 1, 2, 3])
    assert not list(tmp_path.iterdir())  # nothing written, not even temporaries


def test_missing_file_names_path(fileset) -> None:
    prefix, _, _, _ = fileset
    Path(f"{prefix}.fam").unlink()
    with pytest.raises(FileNotFoundError, match=r"geno\.fam"):
        read_bed(prefix)


def test_wrong_magic(fileset) -> None:
    prefix, _, _, _ = fileset
    bed = Path(f"{prefix}.bed")
    raw = bytearray(bed.read_bytes())
    raw[2] = 0x00  # individual-major mode byte
    bed.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is not a SNP-major PLINK .bed"):
        read_bed(prefix)


def test_truncated_bed(fileset) -> None:
    prefix, _, _, _ = fileset
    bed = Path(f"{prefix}.bed")
    raw = bed.read_bytes()
    bed.write_bytes(raw[:-5])
    expected = len(raw)
    with pytest.raises(ValueError, match=f"has {expected - 5} bytes.*need {expected} bytes"):
        read_bed(prefix)


def _run(tool: str, *args: str, cwd: Path) -> None:
    """Run a PLINK binary, failing the test with its log on a non-zero exit."""
    done = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{tool} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 binary not on PATH")
def test_plink2_reads_alt_frequencies(fileset, tmp_path: Path) -> None:
    prefix, dosages, variants, _ = fileset
    out = tmp_path / "freq"
    _run("plink2", "--bfile", str(prefix), "--freq", "--out", str(out), cwd=tmp_path)
    afreq = pd.read_csv(f"{out}.afreq", sep="\t")
    assert afreq["ID"].tolist() == variants["id"].tolist()
    assert afreq["REF"].tolist() == variants["ref"].tolist()
    assert afreq["ALT"].tolist() == variants["alt"].tolist()
    np.testing.assert_allclose(afreq["ALT_FREQS"], _alt_freq(dosages), atol=1e-5)
    np.testing.assert_array_equal(afreq["OBS_CT"], 2 * (dosages >= 0).sum(axis=0))


@pytest.mark.skipif(shutil.which("plink1.9") is None, reason="plink1.9 binary not on PATH")
def test_plink19_make_bed_round_trip(fileset, tmp_path: Path) -> None:
    prefix, dosages, variants, _ = fileset
    out = tmp_path / "copy"
    _run("plink1.9", "--bfile", str(prefix), "--make-bed", "--out", str(out), cwd=tmp_path)
    bim = read_bim(out)
    assert bim["id"].tolist() == variants["id"].tolist()
    # plink1.9 makes A1 the minor allele, so some variants come back with alleles swapped.
    swapped = (bim["alt"] == variants["ref"]).to_numpy()
    assert ((bim["alt"] == variants["alt"]).to_numpy() | swapped).all()
    back = read_bed(out)
    flipped = np.where(back >= 0, 2 - back, -1).astype(np.int8)
    np.testing.assert_array_equal(np.where(swapped, flipped, back), dosages)


def test_a_rewritten_fileset_is_read_with_its_new_dimensions(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    prefix = tmp_path / "geno"
    first = rng.integers(0, 3, size=(10, 7)).astype(np.int8)
    write_bed(prefix, first, _variants(7, rng), [f"s{i}" for i in range(10)])
    assert np.array_equal(read_bed(prefix), first)
    # the .bim/.fam line counts are remembered per file version, never across versions
    second = rng.integers(0, 3, size=(12, 9)).astype(np.int8)
    write_bed(prefix, second, _variants(9, rng), [f"s{i}" for i in range(12)])
    assert np.array_equal(read_bed(prefix), second)
