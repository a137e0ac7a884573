"""The msprime genotype simulator and the LD helper."""

from __future__ import annotations

import numpy as np
import pytest

from vitudip.simulate.genotypes import Genotypes, ld_r2, simulate_chromosome, simulate_genotypes

SMALL = dict(n_individuals=60, chromosomes=[2, 5], length_bp=300_000, min_maf=0.05, progress=False)


@pytest.fixture(scope="module")
def ld_panel() -> Genotypes:
    """500 individuals x 2 Mb: enough pairs to see LD decay with distance."""
    return simulate_genotypes(500, [1], 2_000_000, seed=11, min_maf=0.05, progress=False)


def test_same_seed_same_genotypes() -> None:
    a = simulate_genotypes(seed=5, **SMALL)
    b = simulate_genotypes(seed=5, **SMALL)
    np.testing.assert_array_equal(a.dosages, b.dosages)
    assert a.variants.equals(b.variants)


def test_other_seed_other_genotypes() -> None:
    a = simulate_genotypes(seed=5, **SMALL)
    b = simulate_genotypes(seed=6, **SMALL)
    assert a.dosages.shape != b.dosages.shape or not np.array_equal(a.dosages, b.dosages)
    assert not a.variants["pos"].equals(b.variants["pos"])


def test_chromosome_does_not_depend_on_the_others() -> None:
    both = simulate_genotypes(seed=5, **SMALL)
    alone = simulate_genotypes(seed=5, **{**SMALL, "chromosomes": [5]})
    on5 = (both.variants["chrom"] == 5).to_numpy()
    np.testing.assert_array_equal(both.dosages[:, on5], alone.dosages)


def test_variant_table_and_dosages(ld_panel: Genotypes) -> None:
    g = ld_panel
    v = g.variants
    assert g.dosages.dtype == np.int8 and g.dosages.shape == (500, len(v))
    assert set(np.unique(g.dosages)) <= {0, 1, 2}
    assert list(v.columns) == ["chrom", "pos", "id", "ref", "alt", "alt_freq", "maf"]
    assert (v["ref"] != v["alt"]).all()
    assert set(v["ref"]) | set(v["alt"]) <= set("ACGT")
    rows = zip(v["chrom"], v["pos"], v["ref"], v["alt"])
    assert v["id"].tolist() == [f"{c}:{p}:{r}:{a}" for c, p, r, a in rows]
    np.testing.assert_allclose(v["alt_freq"], g.dosages.mean(axis=0) / 2)
    assert (v["maf"] >= 0.05).all() and (v["maf"] <= 0.5).all()
    assert v["pos"].between(1, 2_000_000).all()


def test_positions_sorted_unique_per_chromosome() -> None:
    g = simulate_genotypes(seed=9, **SMALL)
    assert g.variants["chrom"].tolist() == sorted(g.variants["chrom"])
    for _, pos in g.variants.groupby("chrom")["pos"]:
        assert (np.diff(pos.to_numpy()) > 0).all()


def test_min_maf_filter() -> None:
    dosages, positions, ref, alt = simulate_chromosome(80, 400_000, seed=3, min_maf=0.2)
    freq = dosages.mean(axis=0) / 2
    assert dosages.shape[1] == positions.size == ref.size == alt.size > 0
    assert (np.minimum(freq, 1 - freq) >= 0.2).all()


def test_ld_decays_with_distance(ld_panel: Genotypes) -> None:
    pos = ld_panel.variants["pos"].to_numpy()
    r2 = ld_r2(ld_panel.dosages, ld_panel.dosages)
    distance = np.abs(pos[:, None] - pos[None, :])
    upper = np.triu(np.ones_like(r2, dtype=bool), k=1)
    near = r2[upper & (distance < 5_000)]
    far = r2[upper & (distance >= 100_000) & (distance <= 250_000)]
    assert near.size > 100 and far.size > 100
    assert near.mean() > 5 * far.mean()


def test_allele_frequencies_spread(ld_panel: Genotypes) -> None:
    maf = ld_panel.variants["maf"].to_numpy()
    # The neutral site frequency spectrum is dominated by rare variants.
    assert np.mean(maf < 0.1) > 0.15
    assert np.mean(maf > 0.3) > 0.05
    assert np.median(maf) < 0.3


def test_ld_r2_values() -> None:
    x = np.array([0, 1, 2, 0, 1, 2], dtype=np.int8)
    constant = np.ones(6, dtype=np.int8)
    r2 = ld_r2(np.column_stack([x, 2 - x, constant]), np.column_stack([x, constant]))
    np.testing.assert_allclose(r2, [[1, 0], [1, 0], [0, 0]], atol=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    expected = np.corrcoef(a.T, b.T)[:3, 3:] ** 2
    np.testing.assert_allclose(ld_r2(a, b), expected)
    assert ld_r2(x, x).shape == (1, 1)


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"n_individuals": 1}, "n_individuals"),
        ({"length_bp": 0}, "length_bp"),
        ({"min_maf": 0.5}, "min_maf"),
        ({"min_maf": -0.1}, "min_maf"),
        ({"ne": 0}, "ne"),
        ({"mutation_rate": 0}, "mutation_rate"),
        ({"recombination_rate": -1e-8}, "recombination_rate"),
        ({"chromosomes": [0]}, "chromosomes"),
        ({"chromosomes": [23]}, "chromosomes"),
        ({"chromosomes": [1, 1]}, "chromosomes"),
        ({"chromosomes": []}, "chromosomes"),
    ],
)
def test_invalid_parameters(override: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        simulate_genotypes(seed=1, **{**SMALL, **override})
