"""Realistic diploid genotypes from the coalescent with recombination (msprime).

Each chromosome is an independent msprime simulation of one panmictic
population, so linkage disequilibrium decays with distance as in real data.
REF is the ancestral allele and ALT the derived one; ALT may be the major allele.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msprime
import numpy as np
import pandas as pd
import tskit
from tqdm.auto import tqdm

logger = logging.getLogger("vitudip.simulate")

#: Sites decoded into one buffer before dosages are summed (bounds memory).
_SITES_PER_CHUNK = 4096


@dataclass
class Genotypes:
    """Simulated genotypes.

    Attributes:
        dosages: (n_individuals, n_variants) int8 ALT allele counts 0/1/2.
        variants: one row per variant: chrom (int), pos (int, 1-based, strictly
            increasing within a chromosome), id ("chrom:pos:ref:alt"), ref, alt
            (single nucleotides), alt_freq and maf.
    """

    dosages: np.ndarray
    variants: pd.DataFrame


def _derive_seeds(seed: int, *keys: int, n: int = 1) -> list[int]:
    """Deterministic seeds in msprime's range 1..2**32-1 derived from ``seed`` and ``keys``."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(n, dtype=np.uint32)
    return [int(s) % (2**32 - 1) + 1 for s in state]


def _validate(
    n_individuals: int,
    length_bp: int,
    ne: float,
    recombination_rate: float,
    mutation_rate: float,
    min_maf: float,
) -> None:
    """Raise ValueError naming the first invalid simulation parameter."""
    checks = [
        (n_individuals >= 2, "n_individuals", n_individuals, ">= 2"),
        (length_bp > 0, "length_bp", length_bp, "> 0"),
        (ne > 0, "ne", ne, "> 0"),
        (recombination_rate >= 0, "recombination_rate", recombination_rate, ">= 0"),
        (mutation_rate > 0, "mutation_rate", mutation_rate, "> 0"),
        (0 <= min_maf < 0.5, "min_maf", min_maf, "in [0, 0.5)"),
    ]
    for ok, name, value, rule in checks:
        if not ok:
            raise ValueError(f"{name} must be {rule}, got {value}")


def _validate_chromosomes(chromosomes: Sequence[int]) -> None:
    """Chromosomes must be a non-empty list of unique autosome numbers 1..22."""
    if len(chromosomes) == 0:
        raise ValueError("chromosomes must list at least one chromosome")
    if any(int(c) != c or not 1 <= c <= 22 for c in chromosomes):
        raise ValueError(f"chromosomes must be numbers 1..22, got {list(chromosomes)}")
    if len(set(chromosomes)) != len(chromosomes):
        raise ValueError(f"chromosomes must be unique, got {list(chromosomes)}")


def _dosages_of_chunk(haplotypes: np.ndarray, individual_samples: np.ndarray) -> np.ndarray:
    """Sum each individual's two haplotypes.

    Args:
        haplotypes: (n_sites, n_haplotype_samples) 0/1 allele indices.
        individual_samples: (n_individuals, 2) sample columns of each individual.

    Returns:
        (n_individuals, n_sites) int8 ALT counts.
    """
    return (haplotypes[:, individual_samples[:, 0]] + haplotypes[:, individual_samples[:, 1]]).T


def _biallelic_sites(
    ts: tskit.TreeSequence, individual_samples: np.ndarray
) -> Iterator[tuple[np.ndarray, list[int], list[str], list[str]]]:
    """Walk the sites of ``ts`` that have exactly two alleles, in chunks.

    Args:
        ts: tree sequence with mutations.
        individual_samples: (n_individuals, 2) sample columns of each individual.

    Returns:
        Iterator of (dosages, 0-based positions, ref, alt) per chunk of sites;
        dosages are (n_individuals, n_chunk) int8 counts of the derived allele.
    """
    n_haps = ts.num_samples
    buffer = np.empty((_SITES_PER_CHUNK, n_haps), dtype=np.int8)
    positions: list[int] = []
    ref: list[str] = []
    alt: list[str] = []
    # copy=False reuses one genotype array; it is copied into the buffer at once.
    for variant in ts.variants(copy=False):
        if len(variant.alleles) != 2:
            continue
        buffer[len(positions)] = variant.genotypes
        positions.append(int(variant.site.position))
        ref.append(variant.alleles[0])
        alt.append(variant.alleles[1])
        if len(positions) == _SITES_PER_CHUNK:
            yield _dosages_of_chunk(buffer, individual_samples), positions, ref, alt
            positions, ref, alt = [], [], []
    if positions:
        yield _dosages_of_chunk(buffer[: len(positions)], individual_samples), positions, ref, alt


def _common(dosages: np.ndarray, min_maf: float) -> np.ndarray:
    """Mask of polymorphic columns whose minor allele frequency is at least ``min_maf``."""
    freq = dosages.mean(axis=0, dtype=np.float64) / 2.0
    maf = np.minimum(freq, 1.0 - freq)
    return (maf > 0) & (maf >= min_maf)


def simulate_chromosome(
    n_individuals: int,
    length_bp: int,
    seed: int,
    ne: float = 1e4,
    recombination_rate: float = 1e-8,
    mutation_rate: float = 1e-8,
    min_maf: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Simulate one chromosome of diploid genotypes.

    Ancestry and mutations get separate seeds derived from ``seed``. Mutations
    use msprime's default nucleotide model on a discrete genome; only sites
    with exactly two alleles and MAF >= ``min_maf`` (and polymorphic) are kept.

    Args:
        n_individuals: diploid individuals.
        length_bp: chromosome length in base pairs.
        seed: random seed.
        ne: effective population size.
        recombination_rate: per base pair per generation.
        mutation_rate: per base pair per generation.
        min_maf: minor allele frequency filter.

    Returns:
        (dosages, positions, ref, alt): (n_individuals, n_variants) int8 ALT
        counts, int64 1-based positions (increasing), and the REF (ancestral)
        and ALT (derived) nucleotides as string arrays.
    """
    _validate(n_individuals, length_bp, ne, recombination_rate, mutation_rate, min_maf)
    ancestry_seed, mutation_seed = _derive_seeds(seed, n=2)
    ts = msprime.sim_ancestry(
        samples=n_individuals,
        ploidy=2,
        population_size=ne,
        sequence_length=length_bp,
        recombination_rate=recombination_rate,
        random_seed=ancestry_seed,
    )
    ts = msprime.sim_mutations(ts, rate=mutation_rate, random_seed=mutation_seed)
    # Genotype columns follow ts.samples(); map each individual's nodes to them.
    individual_samples = np.searchsorted(ts.samples(), ts.individuals_nodes)
    parts = []
    for dosages, positions, ref, alt in _biallelic_sites(ts, individual_samples):
        keep = _common(dosages, min_maf)
        parts.append(
            (dosages[:, keep], np.asarray(positions)[keep], np.asarray(ref)[keep], np.asarray(alt)[keep])
        )
    if not parts:
        empty = np.array([], dtype=str)
        return np.empty((n_individuals, 0), np.int8), np.array([], np.int64), empty, empty
    dosages = np.concatenate([p[0] for p in parts], axis=1)
    positions = np.concatenate([p[1] for p in parts]).astype(np.int64) + 1  # msprime is 0-based
    ref = np.concatenate([p[2] for p in parts])
    alt = np.concatenate([p[3] for p in parts])
    return dosages, positions, ref, alt


def _variant_table(
    chrom: int, dosages: np.ndarray, positions: np.ndarray, ref: np.ndarray, alt: np.ndarray
) -> pd.DataFrame:
    """Variant table of one simulated chromosome."""
    alt_freq = dosages.mean(axis=0, dtype=np.float64) / 2.0
    ids = [f"{chrom}:{p}:{r}:{a}" for p, r, a in zip(positions, ref, alt)]
    return pd.DataFrame(
        {
            "chrom": np.full(positions.size, chrom, dtype=np.int64),
            "pos": positions,
            "id": ids,
            "ref": ref.astype(str),
            "alt": alt.astype(str),
            "alt_freq": alt_freq,
            "maf": np.minimum(alt_freq, 1.0 - alt_freq),
        }
    )


def simulate_genotypes(
    n_individuals: int,
    chromosomes: Sequence[int],
    length_bp: int,
    seed: int,
    ne: float = 1e4,
    recombination_rate: float = 1e-8,
    mutation_rate: float = 1e-8,
    min_maf: float = 0.01,
    progress: bool = True,
) -> Genotypes:
    """Simulate independent chromosomes for the same individuals and concatenate them.

    Each chromosome's seed is derived from ``seed`` and the chromosome number,
    so a chromosome's genotypes do not depend on which others are simulated.

    Args:
        n_individuals: diploid individuals (>= 2).
        chromosomes: unique chromosome numbers 1..22, simulated in this order.
        length_bp: length of every chromosome in base pairs.
        seed: random seed.
        ne: effective population size.
        recombination_rate: per base pair per generation.
        mutation_rate: per base pair per generation.
        min_maf: keep variants with minor allele frequency >= this (0 <= min_maf < 0.5).
        progress: show a tqdm progress bar over chromosomes.

    Returns:
        Genotypes with variants ordered by chromosome (in the given order) then position.
    """
    _validate(n_individuals, length_bp, ne, recombination_rate, mutation_rate, min_maf)
    _validate_chromosomes(chromosomes)
    blocks, tables = [], []
    for chrom in tqdm(chromosomes, desc="simulating chromosomes", unit="chr", disable=not progress):
        (chrom_seed,) = _derive_seeds(seed, int(chrom))
        dosages, positions, ref, alt = simulate_chromosome(
            n_individuals, length_bp, chrom_seed, ne, recombination_rate, mutation_rate, min_maf
        )
        logger.info("chromosome %d: %d variants with MAF >= %g", chrom, positions.size, min_maf)
        blocks.append(dosages)
        tables.append(_variant_table(int(chrom), dosages, positions, ref, alt))
    variants = pd.concat(tables, ignore_index=True)
    logger.info("simulated %d individuals x %d variants", n_individuals, len(variants))
    return Genotypes(dosages=np.concatenate(blocks, axis=1), variants=variants)


def _as_columns(x: np.ndarray) -> np.ndarray:
    """View a 1-D vector as one column; keep 2-D arrays; always float64."""
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def ld_r2(dosages_a: np.ndarray, dosages_b: np.ndarray) -> np.ndarray:
    """Squared Pearson correlation between every column of ``a`` and every column of ``b``.

    Constant columns have no defined correlation; their r² is reported as 0.
    Missing values are not handled: pass complete dosages.

    Args:
        dosages_a: (n_samples, k) or (n_samples,) dosages.
        dosages_b: (n_samples, m) or (n_samples,) dosages of the same samples.

    Returns:
        (k, m) float64 r² in [0, 1].
    """
    a, b = _as_columns(dosages_a), _as_columns(dosages_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"dosages_a has {a.shape[0]} samples but dosages_b has {b.shape[0]}")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    norm_a = np.sqrt((a * a).sum(axis=0))
    norm_b = np.sqrt((b * b).sum(axis=0))
    # Dividing by 1 where a column is constant leaves its (zero) covariances at 0.
    a = a / np.where(norm_a > 0, norm_a, 1.0)
    b = b / np.where(norm_b > 0, norm_b, 1.0)
    r = a.T @ b
    return np.clip(r * r, 0.0, 1.0)
