"""Loci stage: LD against plink 1.9, FUMA definitions on hand-built LD, merging, novelty, thresholds, bad input, CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import xlogy

from vitudip.config import stage_config
from vitudip.genetics.sumstats import read_sumstats, write_sumstats
from vitudip.io.plink import read_bed, write_bed
from vitudip.loci.annotate import MERGED_COLUMNS, merge_across_dimensions, truth_recovery
from vitudip.loci.fuma import (
    IND_SIG_COLUMNS,
    LEAD_COLUMNS,
    LOCUS_COLUMNS,
    assign_loci,
    fuma_tables,
    in_mhc,
)
from vitudip.loci.ld import LDReference, dosage_r2, genotype_tables, haplotype_r2, pair_r2
from vitudip.loci.scan import VariantIndex, aligned_p_values, read_variants, scan_sumstats, sumstats_files
from vitudip.loci.settings import FumaSettings, LociSettings
from vitudip.loci.stage import OUTPUT_FILES, TRUTH_FILES, find_loci, independent_significant_snps
from vitudip.loci.thresholds import Thresholds, dimension_correlation, effective_number_of_tests
from vitudip.simulate.genotypes import simulate_genotypes

ROOT = Path(__file__).resolve().parent.parent
needs_plink1 = pytest.mark.skipif(shutil.which("plink1.9") is None, reason="plink1.9 not on PATH")


# --------------------------------------------------------------------------- helpers


def _variants(chrom: list[int], pos: list[int]) -> pd.DataFrame:
    """A .bim-like variant table with ids chrom:pos:A:G."""
    return pd.DataFrame({"chrom": chrom, "pos": pos, "id": [f"{c}:{p}:A:G" for c, p in zip(chrom, pos)],
                         "ref": "A", "alt": "G"})


def _write_sumstats(path: Path, variants: pd.DataFrame, p: np.ndarray) -> Path:
    frame = pd.DataFrame({
        "chromosome": variants["chrom"].to_numpy(), "base_pair_location": variants["pos"].to_numpy(),
        "effect_allele": variants["alt"].to_numpy(), "other_allele": variants["ref"].to_numpy(), "beta": 0.1,
        "standard_error": 0.01, "effect_allele_frequency": 0.3, "p_value": p, "variant_id": variants["id"].to_numpy(),
        "n": 1000,
    })
    return write_sumstats(frame, path)


def _redraw(rng: np.random.Generator, dosages: np.ndarray, share: float, freq: float = 0.3) -> np.ndarray:
    """A copy of ``dosages`` with a share of the samples redrawn at random: r² about (1 - share)²."""
    out = dosages.copy()
    chosen = rng.random(out.size) < share
    out[chosen] = rng.binomial(2, freq, chosen.sum())
    return out


def _loci_settings(**loci) -> LociSettings:
    """The settings of a config's loci section holding ``loci`` (the schema's defaults elsewhere)."""
    return LociSettings.from_config(stage_config({"loci": loci}, LociSettings.CONFIG_KEYS))


def _settings(**overrides) -> FumaSettings:
    return _loci_settings(**overrides).fuma


# --------------------------------------------------------------------------- r²


def test_dosage_r2_is_pairwise_complete_correlation() -> None:
    rng = np.random.default_rng(0)
    g = rng.binomial(2, 0.3, size=(300, 6)).astype(np.int8)
    g[:, 1] = _redraw(rng, g[:, 0], 0.3)
    g[rng.random(g.shape) < 0.05] = -1
    r2 = dosage_r2(genotype_tables(g, 1, np.arange(6)))
    for j in range(6):
        both = (g[:, 1] >= 0) & (g[:, j] >= 0)
        expected = np.corrcoef(g[both, 1], g[both, j])[0, 1] ** 2
        assert r2[j] == pytest.approx(expected, abs=1e-12)


def test_haplotype_r2_is_the_maximum_likelihood_estimate() -> None:
    """Against a brute-force search over the phase of the double heterozygotes."""
    rng = np.random.default_rng(1)
    g = rng.binomial(2, 0.35, size=(400, 5)).astype(np.int8)
    for j in range(1, 5):
        g[:, j] = _redraw(rng, g[:, 0], 0.2 * j)
    tables = genotype_tables(g, 0, np.arange(5))
    ours = haplotype_r2(tables)
    for t, r2 in zip(tables, ours):
        n2 = 2 * t.sum()
        ab_, ab = (2 * t[2, 2] + t[2, 1] + t[1, 2]) / n2, (2 * t[0, 0] + t[0, 1] + t[1, 0]) / n2
        a_b, a__b = (2 * t[2, 0] + t[2, 1] + t[1, 0]) / n2, (2 * t[0, 2] + t[1, 2] + t[0, 1]) / n2
        h = t[1, 1] / n2
        f = np.linspace(0, h, 200_001)
        p = [ab_ + f, ab + f, a_b + h - f, a__b + h - f]
        ll = (xlogy(ab_, p[0]) + xlogy(ab, p[1]) + xlogy(a_b, p[2]) + xlogy(a__b, p[3])
              + xlogy(h, p[0] * p[1] + p[2] * p[3]))
        best = np.argmax(ll)
        fa, fb = ab_ + a_b + h, ab_ + a__b + h
        d = p[0][best] - fa * fb
        assert r2 == pytest.approx(d**2 / (fa * (1 - fa) * fb * (1 - fb)), abs=1e-5)  # the grid's resolution
    assert ours[0] == pytest.approx(1.0)


def test_identical_and_independent_variants() -> None:
    rng = np.random.default_rng(2)
    x = rng.binomial(2, 0.3, 500).astype(np.int8)
    g = np.column_stack([x, x, 2 - x, rng.binomial(2, 0.3, 500), np.zeros(500)]).astype(np.int8)
    for method in ("haplotype", "dosage"):
        r2 = pair_r2(g, 0, np.arange(5), method)
        np.testing.assert_allclose(r2[:3], 1.0, atol=1e-9)
        assert r2[3] < 0.05
        assert r2[4] == 0.0  # monomorphic
    with pytest.raises(ValueError, match="LD method"):
        pair_r2(g, 0, np.arange(5), "phased")


@needs_plink1
def test_haplotype_r2_matches_plink_ld(tmp_path: Path) -> None:
    genotypes = simulate_genotypes(300, [1], 200_000, seed=4, progress=False)
    g = genotypes.dosages.copy()
    g[np.random.default_rng(0).random(g.shape) < 0.02] = -1  # plink drops a sample missing at either variant too
    prefix = tmp_path / "geno"
    write_bed(prefix, g, genotypes.variants, [f"s{i}" for i in range(g.shape[0])])
    ours = pair_r2(g, 0, np.arange(g.shape[1]))
    for j in (1, 2, 3, int(np.argsort(ours)[-2]), int(np.argmin(np.abs(ours - 0.5)))):
        a, b = genotypes.variants["id"].iloc[[0, j]]
        log = subprocess.run(["plink1.9", "--bfile", str(prefix), "--ld", a, b, "--out", str(tmp_path / "ld")],
                             capture_output=True, text=True).stdout
        plink_r2 = float(re.search(r"R-sq = ([0-9.eE+-]+)", log).group(1))
        assert ours[j] == pytest.approx(plink_r2, abs=2e-6), (a, b)


# --------------------------------------------------------------------------- LD from several filesets


def _split_by_chromosome(prefix: Path, chromosomes: list[int], folder: Path, make: str = "--make-pgen") -> list[Path]:
    """One fileset per chromosome of a PLINK 1 fileset, written by plink2 (``--make-pgen`` or ``--make-bed``)."""
    out = []
    for chromosome in chromosomes:
        target = folder / f"chr{chromosome}"
        subprocess.run(["plink2", "--bfile", str(prefix), "--chr", str(chromosome), make, "--out", str(target)],
                       check=True, capture_output=True)
        out.append(target)
    return out


def _write_dosage_pgen(prefix: Path, dosages: np.ndarray, ids: list[str]) -> None:
    """A .pgen of (samples x variants) dosages (-9 = missing) with pgenlib, with its .pvar and .psam."""
    pgenlib = pytest.importorskip("pgenlib")
    n, m = dosages.shape
    with pgenlib.PgenWriter(bytes(f"{prefix}.pgen", "utf-8"), n, m, False, dosage_present=True) as writer:
        writer.append_dosages_batch(np.ascontiguousarray(dosages.T, dtype=np.float32))
    variants = _variants([1] * m, [1000 * (k + 1) for k in range(m)])
    pd.DataFrame({"#CHROM": variants["chrom"], "POS": variants["pos"], "ID": variants["id"], "REF": variants["ref"],
                  "ALT": variants["alt"]}).to_csv(f"{prefix}.pvar", sep="\t", index=False)
    pd.DataFrame({"#FID": ids, "IID": ids}).to_csv(f"{prefix}.psam", sep="\t", index=False)


@pytest.fixture(scope="module")
def two_chromosomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], pd.DataFrame]:
    """A PLINK 1 fileset of two chromosomes (a few calls missing) and its per-chromosome PLINK 2 filesets."""
    folder = tmp_path_factory.mktemp("split")
    genotypes = simulate_genotypes(200, [1, 2], 300_000, seed=5, progress=False)
    g = genotypes.dosages.copy()
    g[np.random.default_rng(1).random(g.shape) < 0.03] = -1
    prefix = folder / "geno"
    write_bed(prefix, g, genotypes.variants, [f"s{i}" for i in range(g.shape[0])])
    return prefix, _split_by_chromosome(prefix, [1, 2], folder), genotypes.variants


def test_per_chromosome_pgen_filesets_read_as_the_bed(two_chromosomes, tmp_path: Path) -> None:
    prefix, pgens, variants = two_chromosomes
    query = pd.DataFrame({"chromosome": variants["chrom"].to_numpy(), "variant_id": variants["id"].to_numpy(),
                          "effect_allele": variants["ref"].to_numpy(), "other_allele": variants["alt"].to_numpy()})
    # a PLINK 2 and a PLINK 1 fileset mix too
    mixed = [pgens[0], *_split_by_chromosome(prefix, [2], tmp_path, "--make-bed")]
    with LDReference(prefix) as bed, LDReference(pgens) as pgen, LDReference(mixed) as both:
        rows = bed.locate(query)
        assert (rows >= 0).all() and pgen.n_samples == 200
        # the same rows, read in an order that goes back and forth between the filesets
        order = np.random.default_rng(0).permutation(rows)
        expected = bed.read(order)
        assert (expected == -1).any() and np.isin(variants["chrom"].to_numpy()[order[:10]], [1, 2]).all()
        for other in (pgen, both):
            np.testing.assert_array_equal(other.locate(query), rows)
            np.testing.assert_array_equal(other.read(order), expected)
            for method in ("haplotype", "dosage"):
                np.testing.assert_array_equal(pair_r2(other.read(rows), 3, slice(None), method),
                                              pair_r2(bed.read(rows), 3, slice(None), method))
        assert "chr1.pvar" in pgen.description and pgen.read(np.zeros(0, np.int64)).shape == (200, 0)
        with pytest.raises(IndexError, match="out of range"):
            pgen.read(np.array([len(variants)]))


def test_dosages_between_hard_calls_are_missing(tmp_path: Path) -> None:
    dosages = np.array([[0.0, 2.0], [0.5, 1.0], [1.05, 0.95], [1.3, -9.0], [1.95, 1.1], [0.08, 0.15]])
    _write_dosage_pgen(tmp_path / "dosages", dosages, [f"s{i}" for i in range(6)])
    with LDReference(tmp_path / "dosages") as reference:
        calls = reference.read(np.array([1, 0]))
    # within 0.1 of an integer: that call; further: missing (plink2's hard-call threshold), as a missing dosage
    np.testing.assert_array_equal(calls, [[2, 0], [1, -1], [1, 1], [-1, -1], [1, 2], [-1, 0]])
    assert calls.dtype == np.int8


def test_filesets_with_other_samples_are_refused(two_chromosomes, tmp_path: Path) -> None:
    _, pgens, _ = two_chromosomes
    cases = {
        "swapped": (lambda t: t.iloc[[1, 0, *range(2, len(t))]], "200 vs 200 samples; sample 1 is s1 s1 vs s0 s0"),
        "fewer": (lambda t: t.iloc[:-1], "199 vs 200 samples; sample 200 is none vs s199 s199"),
        "renamed": (lambda t: t.assign(IID=t["IID"] + "x"), "200 vs 200 samples; sample 1 is s0 s0x vs s0 s0"),
    }
    for name, (edit, detail) in cases.items():
        for ext in (".pgen", ".pvar"):
            shutil.copy(f"{pgens[1]}{ext}", tmp_path / f"{name}{ext}")
        edit(pd.read_csv(f"{pgens[1]}.psam", sep="\t")).to_csv(tmp_path / f"{name}.psam", sep="\t", index=False)
        with pytest.raises(ValueError, match=rf"{name}\.psam does not list the samples of .*chr1\.psam in the same "
                                             rf"order \({detail} as FID IID\)"):
            LDReference([pgens[0], tmp_path / name])
    (tmp_path / "imputed.bgen").touch()
    (tmp_path / "imputed.sample").touch()
    with pytest.raises(ValueError, match=r"imputed\.bgen: LD is read from PLINK 1 or PLINK 2 filesets, not BGEN"):
        LDReference([pgens[0], tmp_path / "imputed"])
    with pytest.raises(ValueError, match="no genotype fileset"):
        LDReference([])


# --------------------------------------------------------------------------- hand-built LD


@dataclass
class HandBuilt:
    folder: Path
    prefix: Path
    variants: pd.DataFrame
    dosages: np.ndarray


def _hand_built(folder: Path, gap_kb: float = 100.0) -> HandBuilt:
    """Genotypes with known LD and two dimensions' sumstats.

    chr1: block A = four copies of one SNP at 1,000,000 + 0/5/10/15 kb (r² = 1; the last has p 0.2, so A's
    LD block ends at 1,010,000); B at 1,002,500 independent; C at 1,007,500 with r² about 0.35 with A; F
    independent, ``gap_kb`` after A's block. chr2: D at 5,000,000 alone. chr6: M at 30,000,000 (in the MHC,
    p 2e-8: genome-wide but not study-wide). 40 independent noise SNPs.
    """
    rng = np.random.default_rng(7)
    n = 1000
    a = rng.binomial(2, 0.3, n)
    f_pos = 1_010_000 + int(round(gap_kb * 1000))
    columns = {
        (1, 1_000_000): a, (1, 1_005_000): a, (1, 1_010_000): a, (1, 1_015_000): a,
        (1, 1_002_500): rng.binomial(2, 0.3, n), (1, 1_007_500): _redraw(rng, a, 0.42),
        (1, f_pos): rng.binomial(2, 0.4, n), (2, 5_000_000): rng.binomial(2, 0.3, n),
        (6, 30_000_000): rng.binomial(2, 0.3, n),
    }
    for k in range(40):
        columns[(1 + k % 3, 2_000_000 + 37_000 * k)] = rng.binomial(2, 0.25, n)
    keys = sorted(columns)
    variants = _variants([c for c, _ in keys], [p for _, p in keys])
    dosages = np.column_stack([columns[k] for k in keys]).astype(np.int8)
    prefix = folder / "geno"
    write_bed(prefix, dosages, variants, [f"s{i}" for i in range(n)])
    by_pos = {k: i for i, k in enumerate(keys)}
    p0 = np.full(len(keys), 0.5)
    for key, value in {(1, 1_000_000): 1e-10, (1, 1_005_000): 1e-9, (1, 1_010_000): 1e-3, (1, 1_015_000): 0.2,
                       (1, 1_002_500): 1e-8, (1, 1_007_500): 1e-9, (1, f_pos): 1e-12, (2, 5_000_000): 1e-12,
                       (6, 30_000_000): 2e-8}.items():
        p0[by_pos[key]] = value
    p0[by_pos[(1, 2_000_000)]] = 0.01  # a candidate by p, but in LD with nothing
    p1 = np.full(len(keys), 0.5)
    p1[by_pos[(2, 5_000_000)]] = 1e-15  # the same chr2 locus, stronger, in a second dimension
    sumstats = folder / "sumstats"
    _write_sumstats(sumstats / "udip_000.tsv.gz", variants, p0)
    _write_sumstats(sumstats / "udip_001.tsv.gz", variants, p1)
    _write_sumstats(sumstats / "udip_002.tsv.gz", variants, np.full(len(keys), 0.9))
    return HandBuilt(folder, prefix, variants, dosages)


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> HandBuilt:
    return _hand_built(tmp_path_factory.mktemp("hand"))


@pytest.fixture(scope="module")
def hand_built_out(hand_built: HandBuilt) -> dict[str, pd.DataFrame]:
    known = hand_built.folder / "known.tsv"
    pd.DataFrame({"chromosome": ["chr2"], "start": [4_900_000], "end": [5_000_000], "trait": ["x"]}).to_csv(
        known, sep="\t", index=False)
    genes = hand_built.folder / "genes.tsv"
    pd.DataFrame({"chromosome": [1, 1, 2], "start": [990_000, 1_025_000, 5_100_000], "end": [1_001_000, 1_040_000,
                  5_200_000], "gene": ["GA", "GC", "GD"]}).to_csv(genes, sep="\t", index=False)
    outputs = find_loci(hand_built.folder / "sumstats", hand_built.prefix, hand_built.folder / "out",
                        _loci_settings(), known_loci=known, genes=genes, progress=False)
    return {name: pd.read_csv(path, sep="\t") for name, path in outputs.items() if path.suffix == ".tsv"}


def test_hand_built_r2_is_as_designed(hand_built: HandBuilt) -> None:
    r2 = pair_r2(hand_built.dosages, 0, np.arange(hand_built.dosages.shape[1]))
    c = int(np.flatnonzero(hand_built.variants["pos"].to_numpy() == 1_007_500)[0])
    assert 0.15 < r2[c] < 0.5  # C: independent of A at 0.6, but in LD at 0.1


def test_independent_candidate_and_lead_snps(hand_built_out: dict[str, pd.DataFrame]) -> None:
    ind = hand_built_out["ind_sig_snps"]
    dim0 = ind[ind["dimension"] == "udip_000"]
    # A's copy at 1,005,000 (r² 1 with A) is clumped; MHC SNP M is kept (exclude_mhc off)
    assert dim0["pos"].tolist() == [1_000_000, 1_002_500, 1_007_500, 1_110_000, 5_000_000, 30_000_000]
    assert dim0.set_index("pos")["nSNPs"].to_dict() == {1_000_000: 3, 1_002_500: 1, 1_007_500: 1, 1_110_000: 1,
                                                       5_000_000: 1, 30_000_000: 1}
    assert (dim0["nSNPs"] == dim0["nGWASSNPs"]).all()
    leads = hand_built_out["lead_snps"]
    lead0 = leads[leads["dimension"] == "udip_000"].set_index("pos")
    assert 1_007_500 not in lead0.index  # C joins A's lead SNP at r² >= 0.1
    assert lead0.loc[1_000_000, "IndSigSNPs"] == "1:1000000:A:G;1:1007500:A:G"
    assert list(ind.columns) == IND_SIG_COLUMNS and list(leads.columns) == LEAD_COLUMNS


def test_genomic_risk_loci(hand_built_out: dict[str, pd.DataFrame]) -> None:
    loci = hand_built_out["genomic_risk_loci"]
    dim0 = loci[loci["dimension"] == "udip_000"].set_index("GenomicLocus")
    # A's block runs to its last candidate (1,010,000; the copy at 1,015,000 has p 0.2); B, C and F (100 kb on) join
    first = dim0.loc[1]
    assert (first["chr"], first["start"], first["end"]) == (1, 1_000_000, 1_110_000)
    assert (first["rsID"], first["nIndSigSNPs"], first["nLeadSNPs"], first["nSNPs"]) == ("1:1110000:A:G", 4, 3, 6)
    assert dim0["chr"].tolist() == [1, 2, 6]
    assert list(loci.columns) == LOCUS_COLUMNS + ["passes_genome_wide", "passes_bonferroni", "passes_meff"]
    # no phenotype table: M_eff = 3 dimensions, study-wide 5e-8 / 3
    assert dim0[["passes_genome_wide", "passes_bonferroni", "passes_meff"]].values.tolist() == [
        [True, True, True], [True, True, True], [True, False, False]]
    assert set(loci["dimension"]) == {"udip_000", "udip_001"}


@pytest.mark.parametrize("gap_kb, n_loci", [(249.0, 1), (251.0, 2)])
def test_blocks_closer_than_merge_distance_merge(tmp_path: Path, gap_kb: float, n_loci: int) -> None:
    data = _hand_built(tmp_path, gap_kb)
    files = sumstats_files(data.folder / "sumstats")
    scan = scan_sumstats({"udip_000": files["udip_000"]}, 0.05, progress=False)
    found = independent_significant_snps(scan, LDReference(data.prefix), _settings(), progress=False)
    named = np.concatenate([found[0]["row"], *found[0]["candidates"]])
    _, _, loci = fuma_tables("udip_000", found[0], scan.details(named), _settings().merge_distance_bp)
    chr1 = loci[loci["chr"] == 1]
    assert len(chr1) == n_loci
    assert chr1["start"].min() == 1_000_000


def test_assign_loci_gap_rule_and_lead_bridging() -> None:
    start = np.array([0, 1_259_999, 100, 2_000_000])
    end = np.array([1_010_000, 1_260_000, 200, 2_000_001])
    chromosome = np.array([1, 1, 2, 1])
    own = np.arange(4)
    # gap 249,999 merges; another chromosome never does
    np.testing.assert_array_equal(assign_loci(chromosome, start, end, own, 250_000), [1, 1, 3, 2])
    np.testing.assert_array_equal(assign_loci(chromosome, start, end, own, 249_999), [1, 2, 4, 3])
    # a lead SNP and its independent significant SNP share a locus whatever the gap
    np.testing.assert_array_equal(assign_loci(chromosome, start, end, np.array([0, 1, 2, 0]), 249_999),
                                  [1, 1, 2, 1])


def test_locus_in_two_dimensions_is_merged_once(hand_built_out: dict[str, pd.DataFrame]) -> None:
    merged = hand_built_out["loci_merged"]
    assert list(merged.columns) == MERGED_COLUMNS
    chr2 = merged[merged["chromosome"] == 2]
    assert len(chr2) == 1
    row = chr2.iloc[0]
    assert (row["dimensions"], row["n_dimensions"], row["lead_dimension"]) == ("udip_000;udip_001", 2, "udip_001")
    assert row["lead_p"] == pytest.approx(1e-15)
    assert (bool(row["novel"]), row["known_loci"]) == (False, "2:4900000-5000000")  # touching at 5,000,000
    assert (row["nearest_gene"], isinstance(row["genes"], str)) == ("GD", False)  # nearest, not overlapping
    chr1 = merged[merged["chromosome"] == 1].iloc[0]
    assert bool(chr1["novel"]) and chr1["genes"] == "GA;GC" and chr1["nearest_gene"] == "GC"  # lead F at 1,110,000
    assert len(merged) == 3


def _loci(chromosome: int, start: int, end: int, dimension: str = "udip_000", p: float = 1e-9) -> dict:
    return {"dimension": dimension, "GenomicLocus": 1, "uniqID": f"{chromosome}:{start}:A:G",
            "rsID": f"rs{start}", "chr": chromosome, "pos": start, "p": p, "start": start, "end": end}


@pytest.mark.parametrize("known, novel", [
    ((1, 2000, 3000), False),   # touching at one base pair
    ((1, 2001, 3000), True),    # adjacent
    ((1, 0, 999), True),        # adjacent on the left
    ((1, 0, 1000), False),      # touching on the left
    ((1, 1500, 1600), False),   # inside
    ((2, 1000, 2000), True),    # same span, other chromosome
])
def test_novel_means_no_overlap(known: tuple[int, int, int], novel: bool) -> None:
    loci = pd.DataFrame([_loci(1, 1000, 2000)])
    table = pd.DataFrame([known], columns=["chromosome", "start", "end"])
    merged = merge_across_dimensions(loci, 250_000, Thresholds(5e-8, 1, 1.0), known=table)
    assert bool(merged.at[0, "novel"]) is novel


def test_merge_across_dimensions_distance_and_empty() -> None:
    loci = pd.DataFrame([_loci(1, 1000, 2000, "udip_000", 1e-9), _loci(1, 251_999, 260_000, "udip_001", 1e-12),
                         _loci(1, 600_000, 610_000, "udip_002", 3e-8)])
    merged = merge_across_dimensions(loci, 250_000, Thresholds(5e-8, 3, 2.0))
    assert merged["dimensions"].tolist() == ["udip_000;udip_001", "udip_002"]
    assert merged[["start", "end"]].values.tolist() == [[1000, 260_000], [600_000, 610_000]]
    assert merged["passes_meff"].tolist() == [True, False]  # 1e-12 and 3e-8 against 5e-8 / 2
    empty = merge_across_dimensions(pd.DataFrame(columns=loci.columns), 250_000, Thresholds(5e-8, 3, 2.0))
    assert list(empty.columns) == MERGED_COLUMNS and empty.empty


def test_mhc_exclusion(hand_built: HandBuilt, tmp_path: Path) -> None:
    assert in_mhc([6, 6, 6, 5], [28_500_000, 33_460_000, 30_000_000, 30_000_000], "GRCh37").tolist() == [
        True, False, True, False]
    assert in_mhc([6, 6], [28_500_000, 33_460_000], "GRCh38").tolist() == [False, True]
    files = sumstats_files(hand_built.folder / "sumstats")
    scan = scan_sumstats(files, 0.05, progress=False)
    found = independent_significant_snps(scan, LDReference(hand_built.prefix), _settings(exclude_mhc=True),
                                         progress=False)
    chromosomes = scan.variants["chromosome"].to_numpy()[found[0]["row"].to_numpy()]
    assert 6 not in chromosomes and 2 in chromosomes


def test_min_maf_uses_the_reference(hand_built: HandBuilt) -> None:
    scan = scan_sumstats(sumstats_files(hand_built.folder / "sumstats"), 0.05, progress=False)
    found = independent_significant_snps(scan, LDReference(hand_built.prefix), _settings(min_maf=0.45),
                                         progress=False)
    assert found == {}  # every designed SNP has a MAF near 0.3 or 0.4


# --------------------------------------------------------------------------- agreement with plink 1.9 --clump


@needs_plink1
def test_independent_snps_match_plink_clump(tmp_path: Path) -> None:
    n = 800
    genotypes = simulate_genotypes(n, [1, 2], 1_500_000, seed=21, progress=False)
    rng = np.random.default_rng(3)
    g = genotypes.dosages.copy()
    g[rng.random(g.shape) < 0.01] = -1
    prefix = tmp_path / "geno"
    write_bed(prefix, g, genotypes.variants, [f"s{i}" for i in range(n)])
    common = np.flatnonzero(genotypes.variants["maf"].to_numpy() > 0.1)
    x = np.where(g >= 0, g, np.nan).astype(float)
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    xs = (x - x.mean(0)) / x.std(0)
    for d in range(3):
        causal = rng.choice(common, 4, replace=False)
        y = xs[:, causal] @ rng.uniform(0.25, 0.4, 4) + rng.normal(size=n)
        r = (xs * ((y - y.mean()) / y.std())[:, None]).mean(0)
        t = r * np.sqrt((n - 2) / (1 - r**2))
        _write_sumstats(tmp_path / "sumstats" / f"udip_{d:03d}.tsv.gz", genotypes.variants,
                        2 * stats.t.sf(np.abs(t), n - 2))
    outputs = find_loci(tmp_path / "sumstats", prefix, tmp_path / "out", _loci_settings(), progress=False)
    ours = pd.read_csv(outputs["ind_sig_snps"], sep="\t")
    assert len(ours) > 10
    for d in range(3):
        path = tmp_path / "sumstats" / f"udip_{d:03d}.tsv.gz"
        subprocess.run(["plink1.9", "--bfile", str(prefix), "--clump", str(path), "--clump-snp-field", "genotype_id",
                        "--clump-field", "p_value", "--clump-p1", "5e-8", "--clump-p2", "0.05", "--clump-r2", "0.6",
                        "--clump-kb", "250", "--out", str(tmp_path / f"clump{d}")], check=True, capture_output=True)
        plink = pd.read_csv(tmp_path / f"clump{d}.clumped", sep=r"\s+")
        assert set(ours.loc[ours["dimension"] == f"udip_{d:03d}", "rsID"]) == set(plink["SNP"]), d


# --------------------------------------------------------------------------- thresholds


def test_meff_identity_and_perfect_correlation(tmp_path: Path) -> None:
    assert effective_number_of_tests(np.eye(6)) == pytest.approx(6.0)
    assert effective_number_of_tests(np.ones((6, 6))) == pytest.approx(1.0)
    block = np.kron(np.eye(3), np.ones((2, 2)))  # three pairs of identical dimensions
    assert effective_number_of_tests(block) == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    table = pd.DataFrame({"FID": range(200), "IID": range(200), "udip_000": base, "udip_001": 2 * base + 1,
                          "udip_002": -base})
    path = tmp_path / "pheno.tsv"
    table.to_csv(path, sep="\t", index=False)
    correlation = dimension_correlation(path, ["udip_000", "udip_001", "udip_002"])
    assert effective_number_of_tests(correlation) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"pheno.tsv lacks column\(s\) udip_003"):
        dimension_correlation(path, ["udip_000", "udip_003"])
    thresholds = Thresholds(5e-8, 128, 32.0)
    assert thresholds.values == {"genome_wide": 5e-8, "bonferroni": 5e-8 / 128, "meff": 5e-8 / 32}


# --------------------------------------------------------------------------- reading


def test_rows_in_another_order_are_matched_by_the_variant_key(hand_built: HandBuilt, tmp_path: Path) -> None:
    first = hand_built.folder / "sumstats" / "udip_000.tsv.gz"
    variants, first_p = read_variants(first)
    assert list(variants.columns) == ["chromosome", "base_pair_location", "key"]  # no text held per variant
    table = read_sumstats(first)
    shuffled = table.sample(frac=1.0, random_state=0).iloc[:-3]
    write_sumstats(shuffled, tmp_path / "udip_009.tsv.gz")
    p = aligned_p_values(tmp_path / "udip_009.tsv.gz", VariantIndex(variants))
    kept = table["variant_id"].isin(shuffled["variant_id"]).to_numpy()
    np.testing.assert_array_equal(p[kept], first_p[kept])
    assert np.isnan(p[~kept]).sum() == 3
    # the same position with the alleles swapped is another variant
    swapped = table.assign(effect_allele=table["other_allele"], other_allele=table["effect_allele"]).iloc[::-1]
    write_sumstats(swapped, tmp_path / "udip_010.tsv.gz")
    assert np.isnan(aligned_p_values(tmp_path / "udip_010.tsv.gz", VariantIndex(variants))).all()


def test_details_are_the_first_files_columns_at_the_rows_asked(hand_built: HandBuilt) -> None:
    files = sumstats_files(hand_built.folder / "sumstats")
    scan = scan_sumstats(files, 0.05, progress=False)
    table = read_sumstats(files["udip_000"])
    rows = np.array([len(table) - 1, 3, 0, 3])
    details = scan.details(rows)
    assert list(details.index) == [len(table) - 1, 3, 0]  # each once, in the order asked
    for column in ["variant_id", "effect_allele", "other_allele", "base_pair_location"]:
        np.testing.assert_array_equal(details[column].to_numpy(), table[column].to_numpy()[[len(table) - 1, 3, 0]])
    assert list(scan.details(np.array([3, 5])).index) == [3, 5]  # 3 kept from before, 5 read


def test_scan_min_p_and_hits(hand_built: HandBuilt) -> None:
    files = sumstats_files(hand_built.folder / "sumstats")
    serial = scan_sumstats(files, 0.05, threads=1, progress=False)
    parallel = scan_sumstats(files, 0.05, threads=2, progress=False)
    np.testing.assert_array_equal(serial.min_p, parallel.min_p)
    chr2 = int(np.flatnonzero(serial.variants["base_pair_location"].to_numpy() == 5_000_000)[0])
    assert (serial.min_p[chr2], serial.min_dimension[chr2]) == (pytest.approx(1e-15), 1)
    assert serial.hit_rows[2].size == 0
    np.testing.assert_array_equal(serial.p_values(0, np.array([chr2, chr2 + 1])), [1e-12, np.nan])


# --------------------------------------------------------------------------- empty results, truth, bad input


def test_no_significant_snp_gives_empty_tables(hand_built: HandBuilt, tmp_path: Path) -> None:
    truth = tmp_path / "truth.tsv"
    pd.DataFrame({"effect": ["e"], "variant_id": ["1:1000000:A:G"], "chromosome": [1],
                  "base_pair_location": [1_000_000]}).to_csv(truth, sep="\t", index=False)
    outputs = find_loci(hand_built.folder / "sumstats", hand_built.prefix, tmp_path / "out",
                        _loci_settings(p_threshold=1e-20), truth=truth, progress=False)
    assert set(outputs) == set(OUTPUT_FILES) | set(TRUTH_FILES)
    for name in ("ind_sig_snps", "lead_snps", "genomic_risk_loci", "loci_merged"):
        table = pd.read_csv(outputs[name], sep="\t")
        assert table.empty and len(table.columns) > 5, name
    assert outputs["manhattan"].stat().st_size > 0 and list(outputs["regional"].iterdir()) == []
    recovery = pd.read_csv(outputs["truth_recovery"], sep="\t")
    assert recovery["found"].tolist() == [False]
    assert pd.read_csv(outputs["truth_summary"], sep="\t").iloc[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_truth_recovery_and_false_loci() -> None:
    merged = merge_across_dimensions(
        pd.DataFrame([_loci(1, 1000, 2000, "udip_000", 1e-9), _loci(2, 5000, 9000, "udip_001", 1e-10)]),
        250_000, Thresholds(5e-8, 2, 2.0))
    truth = pd.DataFrame({"effect": ["hit", "miss"], "variant_id": ["a", "b"], "chromosome": [1, 1],
                          "base_pair_location": [1500, 2001]})
    recovery, summary = truth_recovery(truth, merged)
    assert recovery["found"].tolist() == [True, False]
    assert recovery.at[0, "lead_distance_bp"] == 500 and recovery.at[0, "dimensions"] == "udip_000"
    assert summary.iloc[0].to_dict() == {"planted": 2, "recovered": 1, "merged_loci": 2, "false_loci": 1,
                                         "recovered_single": 1, "recovered_joint": 0, "recovered_joint_only": 0,
                                         "false_loci_single": 1, "false_loci_joint": 0}
    assert merged["tests"].tolist() == ["single", "single"] and merged["joint_p"].isna().all()


def test_merged_loci_say_which_tests_reach_them_and_truth_scores_each() -> None:
    """Joint loci merge with the dimensions' loci; one the joint test alone reaches leads with the joint p."""
    loci = pd.DataFrame([
        _loci(1, 1000, 2000, "udip_000", 1e-9), _loci(1, 1500, 2100, "joint", 1e-12),  # both
        _loci(1, 900_000, 901_000, "joint", 1e-9),  # joint only, holds the spread effect
        _loci(2, 5000, 9000, "udip_001", 1e-10),  # single, false
        _loci(3, 5000, 9000, "joint", 1e-8),  # joint only, false
    ])
    joint = pd.DataFrame({"chromosome": [1, 1, 2, 3], "base_pair_location": [1000, 900_000, 5000, 5000],
                          "variant_id": ["rs1000", "rs900000", "rs5000", "rs5000"],
                          "p_value": [1e-12, 1e-9, 0.2, 1e-8], "min_p_dimension": ["udip_000", "udip_002", "udip_001",
                                                                                   "udip_003"]})
    merged = merge_across_dimensions(loci, 250_000, Thresholds(5e-8, 2, 2.0), joint=joint)
    assert merged["tests"].tolist() == ["both", "joint", "single", "joint"]
    assert merged["lead_dimension"].tolist() == ["udip_000", "udip_002", "udip_001", "udip_003"]
    assert merged["dimensions"].fillna("").tolist() == ["udip_000", "", "udip_001", ""]
    assert merged["n_dimensions"].tolist() == [1, 0, 1, 0]
    assert merged["lead_p"].tolist() == [1e-9, 1e-9, 1e-10, 1e-8]  # a dimension's lead where one reaches the locus
    np.testing.assert_allclose(merged["joint_p"], [1e-12, 1e-9, 0.2, 1e-8])
    assert (merged["start"].iloc[0], merged["end"].iloc[0]) == (1000, 2100)
    truth = pd.DataFrame({"effect": ["focal", "spread", "miss"], "variant_id": ["a", "b", "c"],
                          "chromosome": [1, 1, 4], "base_pair_location": [1500, 900_500, 100]})
    recovery, summary = truth_recovery(truth, merged)
    assert recovery["tests"].tolist() == ["both", "joint", ""]
    assert recovery["found_joint"].tolist() == [True, True, False]
    assert summary.iloc[0].to_dict() == {"planted": 3, "recovered": 2, "merged_loci": 4, "false_loci": 2,
                                         "recovered_single": 1, "recovered_joint": 2, "recovered_joint_only": 1,
                                         "false_loci_single": 1, "false_loci_joint": 1}


def test_sumstats_missing_a_column(hand_built: HandBuilt, tmp_path: Path) -> None:
    folder = tmp_path / "sumstats"
    folder.mkdir()
    for path in (hand_built.folder / "sumstats").iterdir():
        shutil.copy(path, folder / path.name)
    bad = read_sumstats(folder / "udip_001.tsv.gz").drop(columns="p_value")
    bad.to_csv(folder / "udip_001.tsv.gz", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"udip_001\.tsv\.gz lacks column\(s\) p_value"):
        find_loci(folder, hand_built.prefix, tmp_path / "out", _loci_settings(), progress=False)
    assert not (tmp_path / "out").exists()


def test_reference_lacking_a_significant_snp(hand_built: HandBuilt, tmp_path: Path) -> None:
    keep = hand_built.variants["pos"].to_numpy() != 5_000_000
    prefix = tmp_path / "partial"
    write_bed(prefix, read_bed(hand_built.prefix)[:, keep], hand_built.variants[keep],
              [f"s{i}" for i in range(hand_built.dosages.shape[0])])
    with pytest.raises(ValueError, match=r"not in the LD genotypes .*partial\.bim.* e\.g\. 2:5000000:A:G"):
        find_loci(hand_built.folder / "sumstats", prefix, tmp_path / "out", _loci_settings(), progress=False)
    outputs = find_loci(hand_built.folder / "sumstats", prefix, tmp_path / "out",
                        _loci_settings(skip_missing_ld=True), progress=False)
    assert 2 not in pd.read_csv(outputs["genomic_risk_loci"], sep="\t")["chr"].tolist()


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="lead_r2 <= r2"):
        _settings(lead_r2=0.7)
    with pytest.raises(ValueError, match="genome_build"):
        _settings(genome_build="hg19")


# --------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "loci.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli(hand_built: HandBuilt, tmp_path: Path) -> None:
    pheno = tmp_path / "pheno.tsv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"FID": range(50), "IID": range(50), **{f"udip_00{d}": rng.normal(size=50) for d in range(3)}}).to_csv(
        pheno, sep="\t", index=False)
    done = _cli("--sumstats", hand_built.folder / "sumstats", "--ld-genotypes", hand_built.prefix, "--pheno", pheno,
                "--out-dir", tmp_path / "out", "--settings", json.dumps({"loci": {"exclude_mhc": True}}),
                "--threads", "2")
    assert done.returncode == 0, done.stderr
    loci = pd.read_csv(tmp_path / "out" / "GenomicRiskLoci.tsv", sep="\t")
    assert 6 not in loci["chr"].tolist()
    assert len(list((tmp_path / "out" / "regional").glob("locus_*.png"))) == 2
    # LD from the per-chromosome PLINK 2 filesets of the same genotypes: the same loci
    per_chromosome = _split_by_chromosome(hand_built.prefix, [1, 2, 6], tmp_path)
    done = _cli("--sumstats", hand_built.folder / "sumstats", "--ld-genotypes", *per_chromosome, "--pheno", pheno,
                "--out-dir", tmp_path / "split", "--settings", json.dumps({"loci": {"exclude_mhc": True}}))
    assert done.returncode == 0, done.stderr
    for name in ("IndSigSNPs.tsv", "leadSNPs.tsv", "GenomicRiskLoci.tsv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "split" / name, sep="\t"),
                                      pd.read_csv(tmp_path / "out" / name, sep="\t"))
    failed = _cli("--sumstats", tmp_path / "nowhere", "--ld-genotypes", hand_built.prefix, "--out-dir", tmp_path / "x",
                  "--settings", '{"loci": {}}')
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last == f"error: summary statistics folder not found: {tmp_path / 'nowhere'}"
    failed = _cli("--sumstats", hand_built.folder / "sumstats", "--ld-genotypes", hand_built.prefix,
                  tmp_path / "missing", "--out-dir", tmp_path / "x", "--settings", '{"loci": {}}')
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1].startswith(f"error: no genotype files for prefix {tmp_path / 'missing'}: ")
    assert "Traceback" not in failed.stderr
