"""Smoke tests of every plot function: small synthetic inputs, a PNG of the right size, the expected artists.

Each plot function closes its figure after saving it; the ``figures`` fixture keeps every figure
closed during a test so that its axes, lines and texts can be checked, not only the file.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import struct
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import vitudip.plots
from vitudip.genetics.pvalue_sketch import PValueSketch
from vitudip.plots.embedding import plot_scree
from vitudip.plots.gwas import plot_qq
from vitudip.plots.heritability import plot_heritability
from vitudip.plots.loci import R2_COLOURS, plot_manhattan, plot_regional
from vitudip.plots.perdi import canonical, peak_slices, plot_perdi_overview, plot_perdi_panel
from vitudip.plots.training import plot_loss, plot_reconstruction

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def figures(monkeypatch) -> list[plt.Figure]:
    """The figures the plot functions close, in order."""
    closed = []
    close = plt.close

    def keep(fig=None):
        closed.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    return closed


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header; fails on anything that is not a PNG with content."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert len(data) > 2000, f"{path} holds only {len(data)} bytes"
    return struct.unpack(">II", data[16:24])


def assert_png(path: Path, inches: tuple[float, float], dpi: int) -> None:
    width, height = png_size(path)
    # matplotlib rounds the canvas to whole pixels
    assert abs(width - inches[0] * dpi) <= 1 and abs(height - inches[1] * dpi) <= 1, (width, height)


def data_axes(fig: plt.Figure) -> list[plt.Axes]:
    """The figure's axes without colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


# --- embedding ---------------------------------------------------------------------------------------------------

def _spectrum(eigenvalues: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"component": np.arange(1, eigenvalues.size + 1), "eigenvalue": eigenvalues,
                         "cumulative_fraction": np.cumsum(eigenvalues) / eigenvalues.sum()})


def test_plot_heritability(tmp_path, figures):
    table = pd.DataFrame({"embedding": ["vit"] * 3 + ["pca"] * 2, "dimension": ["udip_000", "udip_001", "udip_002",
                                                                              "udip_000", "udip_001"],
                          "h2": [0.1, 0.3, -0.05, 0.2, 0.0], "se": [0.05, 0.04, 0.05, 0.03, 0.03]})
    # the third dimension has no positive genetic variance: its r_g is missing
    rg = np.array([[1.0, 0.6, np.nan], [0.6, 1.0, np.nan], [np.nan, np.nan, np.nan]])
    path = tmp_path / "heritability.png"
    plot_heritability(table, rg, np.eye(3), path)
    assert_png(path, (12, 10), 100)
    (fig,) = figures
    bars, genetic, _, phenotypic, _ = fig.axes  # each heatmap has its colour bar
    # one series per embedding, each point with its SE bar
    assert [text.get_text().split(":")[0] for text in bars.get_legend().get_texts()] == ["vit", "pca"]
    assert np.ma.getmaskarray(genetic.get_images()[0].get_array())[2].all()
    assert phenotypic.get_images()[0].get_array().shape == (3, 3)


def test_plot_scree(tmp_path, figures):
    healthy = np.linspace(2.0, 0.5, 16)
    collapsed = np.r_[12.0, 3.0, np.full(13, 0.05), 0.0]
    spectra = {
        "vit": (_spectrum(collapsed), {"participation_ratio": 1.6, "dimensions": 16, "dims_90pct": 2,
                                       "status": "collapsed; 2 components hold 90 %"}),
        "pca": (_spectrum(healthy), {"participation_ratio": 14.1, "dimensions": 16, "dims_90pct": 13,
                                     "status": "ok"}),
    }
    path = tmp_path / "scree.png"
    plot_scree(spectra, path)
    assert_png(path, (11, 4.5), 100)
    (fig,) = figures
    eigen, cumulative = fig.axes
    # the zero eigenvalue cannot be drawn on a log scale and is left out
    assert [len(line.get_xdata()) for line in eigen.get_lines()] == [15, 16]
    assert eigen.get_yscale() == "log"
    # one curve per embedding plus the 90 % line
    assert len(cumulative.get_lines()) == 3
    assert "WARNING: vit collapsed" in fig.get_suptitle()
    assert "pca" not in fig.get_suptitle()


def test_plot_scree_without_warning(tmp_path, figures):
    plot_scree({"pca": (_spectrum(np.linspace(2.0, 0.5, 8)), {"participation_ratio": 7.5, "dimensions": 8,
                                                              "dims_90pct": 7, "status": "ok"})},
               tmp_path / "scree.png")
    assert figures[0].get_suptitle() == "Embedding spectrum"


# --- GWAS --------------------------------------------------------------------------------------------------------

def test_plot_qq(tmp_path, figures):
    rng = np.random.default_rng(0)
    p_values = {"udip_000": rng.uniform(size=3000), "udip_001": rng.uniform(size=3000) ** 1.5,
                "udip_002": np.array([np.nan, 0.0])}
    path = tmp_path / "qq.png"
    plot_qq({name: PValueSketch.of(p) for name, p in p_values.items()}, {"udip_000": 1.01, "udip_001": 1.42}, path,
            max_points=500)
    assert_png(path, (5.5, 5.5), 100)
    (fig,) = figures
    (ax,) = fig.axes
    points = ax.get_lines()
    # udip_002 has no usable p and draws nothing; the last line is the diagonal
    assert len(points) == 3
    # thinning keeps the 1,000 smallest p-values and an even sample of the rest
    assert 1000 <= len(points[0].get_xdata()) <= 1500
    assert "max 1.420 (udip_001)" in ax.get_title()


# --- loci --------------------------------------------------------------------------------------------------------

def _genome(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chromosome = np.repeat([1, 2], 2500)
    position = np.tile(np.arange(1, 2501) * 1000, 2)
    p = rng.uniform(size=5000)
    p[1000:1010] = 1e-12  # a locus on chromosome 1
    p[3000:3005] = 1e-9  # a locus on chromosome 2
    return chromosome, position, p


def test_plot_manhattan(tmp_path, figures):
    rng = np.random.default_rng(1)
    chromosome, position, p = _genome(rng)
    joint_p = np.where(np.arange(5000) // 10 == 420, 1e-10, 0.5)  # chromosome 2 at 1.701-1.710 Mb
    merged = pd.DataFrame({
        "chromosome": [1, 2, 2], "start": [1_000_000, 501_000, 1_700_000], "end": [1_010_000, 506_000, 1_710_000],
        "lead_snp": ["rs1", "rs2", "rs3"], "lead_position": [1_005_000, 503_000, 1_705_000],
        "lead_p": [1e-12, 1e-9, 1e-10], "lead_dimension": ["udip_003", "udip_007", "udip_010"],
        "n_dimensions": [3, 1, 1], "nearest_gene": ["GENE1", "", "GENE3"], "novel": [False, True, True],
        "tests": ["both", "single", "joint"],
    })
    thresholds = {"genome_wide": 5e-8, "bonferroni": 5e-8 / 16, "meff": 5e-8 / 9}
    path = tmp_path / "manhattan.png"
    plot_manhattan(chromosome, position, p, merged, thresholds, path, max_background=400, joint_p=joint_p)
    assert_png(path, (12, 4.5), 110)
    (fig,) = figures
    (ax,) = fig.axes
    background, known, novel, joint = ax.collections
    # the 15 strong SNPs always drawn, the 4,985 weak ones thinned to about (at most) 400
    assert 15 + 300 <= len(background.get_offsets()) <= 15 + 400
    # the SNPs inside each locus, ends included (one every kb)
    assert [len(c.get_offsets()) for c in (known, novel, joint)] == [11, 6, 11]
    labels = sorted(text.get_text() for text in ax.texts)
    assert labels == ["GENE1\nudip_003 +2", "GENE3\njoint only", "rs2\nudip_007"]
    assert len(ax.get_lines()) == len(thresholds)
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["1", "2"]


def test_plot_regional(tmp_path, figures):
    rng = np.random.default_rng(2)
    position = np.arange(200) * 500 + 1_000_000
    p = rng.uniform(size=200)
    p[100] = 1e-10
    r2 = rng.uniform(size=200)
    r2[:20] = np.nan  # not in the LD reference
    genes = pd.DataFrame({"start": [990_000, 1_040_000], "end": [1_020_000, 1_200_000], "gene": ["GENE1", "GENE2"]})
    path = tmp_path / "regional.png"
    plot_regional(position, p, r2, int(position[100]), "udip_003 locus 1", path,
                  span=(995_000, 1_105_000), genes=genes)
    assert_png(path, (8, 4.8), 100)
    (fig,) = figures
    ax, track = fig.axes
    # the SNPs the LD reference lacks, one scatter per r² bin, the lead SNP
    assert len(ax.collections) == 1 + len(R2_COLOURS) + 1
    assert len(ax.collections[-1].get_offsets()) == 1
    assert sum(len(c.get_offsets()) for c in ax.collections[:-1]) == 200
    assert ax.get_title() == "udip_003 locus 1"
    assert ax.get_xlim() == pytest.approx((0.995, 1.105))
    assert len(track.get_lines()) == 2
    assert sorted(text.get_text() for text in track.texts) == ["GENE1", "GENE2"]


def test_plot_regional_without_genes(tmp_path, figures):
    path = tmp_path / "regional.png"
    plot_regional(np.arange(10) * 1000, np.full(10, 0.5), np.full(10, 0.3), 5000, "no genes", path)
    assert_png(path, (8, 4), 100)
    assert len(figures[0].axes) == 1


# --- training ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("validation, lines", [(True, 3), (False, 2)])
def test_plot_loss(tmp_path, figures, validation, lines):
    metrics = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.9, 0.6, 0.5],
                            "val_loss": [0.95, 0.7, 0.6] if validation else [np.nan] * 3})
    path = tmp_path / "loss.png"
    plot_loss(metrics, 1.0, path)
    assert_png(path, (6, 4), 100)
    (ax,) = figures[0].axes
    # train, validation when there is one, and the mean-image baseline
    assert len(ax.get_lines()) == lines
    assert ax.get_lines()[-1].get_ydata()[0] == 1.0


@pytest.mark.parametrize("with_mean, rows", [(False, 2), (True, 4)])
def test_plot_reconstruction(tmp_path, figures, with_mean, rows):
    rng = np.random.default_rng(3)
    volume = np.zeros((12, 14, 10))
    volume[3:9, 4:10, 2:8] = rng.normal(size=(6, 6, 6))
    reconstruction = np.where(volume != 0, volume + rng.normal(scale=0.1, size=volume.shape), 0.0)
    path = tmp_path / "reconstruction.png"
    plot_reconstruction(volume, reconstruction, path, title="subject 1",
                        mean_image=np.where(volume != 0, 0.1, 0.0) if with_mean else None)
    assert_png(path, (9, 3 * rows), 100)
    (fig,) = figures
    assert len(fig.axes) == 3 * rows
    # three orthogonal slices through the brain's centre (6, 7, 5)
    assert [ax.images[0].get_array().shape for ax in fig.axes[:3]] == [(10, 14), (10, 12), (14, 12)]
    assert [fig.axes[3 * row].get_ylabel() for row in range(rows)][:2] == ["input", "reconstruction"]
    assert fig.get_suptitle() == "subject 1"


# --- PerDI -------------------------------------------------------------------------------------------------------

#: MNI-like affine: x runs right to left in the stored array (LAS), as FSL's templates do.
LAS = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])


def _perdi_slices(peak: tuple[int, int, int], sign: float = 1.0):
    background = np.zeros((20, 24, 18))
    background[3:17, 3:21, 3:15] = 100.0
    stat = np.zeros_like(background)
    stat[peak] = 5.0 * sign
    stat[peak[0], peak[1] + 1, peak[2]] = 2.0 * sign
    stat_ras, affine = canonical(stat, LAS)
    background_ras, _ = canonical(background, LAS)
    return peak_slices(stat_ras, background_ras, affine)


def test_canonical_and_peak_slices():
    stat = np.zeros((20, 24, 18))
    stat[4, 10, 9] = -7.0
    ras, affine = canonical(stat, LAS)
    assert np.all(np.diag(affine)[:3] > 0)
    # the flipped x axis: voxel 4 of 20 is voxel 15 in RAS
    assert ras[15, 10, 9] == -7.0
    slices = peak_slices(ras, np.ones_like(ras), affine)
    assert slices.limit == 7.0
    assert slices.peak_mm == pytest.approx(tuple((LAS @ [4, 10, 9, 1])[:3]))
    assert [m.shape for m in slices.maps] == [(24, 18), (20, 18), (20, 24)]
    # an all-zero map is cut through the background's centre
    empty = peak_slices(np.zeros((20, 24, 18)), np.pad(np.ones((10, 12, 8)), ((5, 5), (6, 6), (5, 5))), affine)
    assert empty.limit == 0.0
    assert empty.peak_mm == pytest.approx(tuple((affine @ [9.5, 11.5, 8.5, 1])[:3]), abs=1.0)


def test_plot_perdi_panel(tmp_path, figures):
    path = tmp_path / "panel.png"
    plot_perdi_panel(_perdi_slices((8, 12, 9)), path, "udip_005", lines=["1. Thalamus 0.41", "2. Putamen 0.22"])
    assert_png(path, (10, 4.2), 100)
    (fig,) = figures
    views = data_axes(fig)
    assert len(views) == 3 and len(fig.axes) == 4  # three views and a colour bar
    # a background and an overlay in each view
    assert all(len(ax.images) == 2 for ax in views)
    assert [ax.get_title().split()[0] for ax in views] == ["sagittal", "coronal", "axial"]
    assert "1. Thalamus 0.41\n2. Putamen 0.22" in [text.get_text() for text in fig.texts]


def test_plot_perdi_overview(tmp_path, figures):
    rows = [("udip_000", _perdi_slices((8, 12, 9))), ("udip_001", _perdi_slices((12, 6, 5), sign=-1.0))]
    path = tmp_path / "overview.png"
    plot_perdi_overview(rows, path, "PerDI")
    assert_png(path, (9, 2.6 * len(rows)), 80)
    (fig,) = figures
    assert len(data_axes(fig)) == 3 * len(rows) and len(fig.axes) == 4 * len(rows)
    assert [ax.get_ylabel() for ax in data_axes(fig)[::3]] == ["udip_000", "udip_001"]


def test_plot_perdi_overview_empty(tmp_path, figures):
    path = tmp_path / "overview.png"
    plot_perdi_overview([], path, "PerDI")
    assert_png(path, (6, 2), 100)
    (ax,) = figures[0].axes
    assert [text.get_text() for text in ax.texts] == ["no dimension to show"]


# --- coverage ----------------------------------------------------------------------------------------------------

def _public_plot_functions() -> set[str]:
    """Public functions of the vitudip.plots modules, and any ``plot_*`` function elsewhere in vitudip."""
    names = set()
    for module in pkgutil.iter_modules(vitudip.plots.__path__, "vitudip.plots."):
        loaded = importlib.import_module(module.name)
        names |= {name for name, value in inspect.getmembers(loaded, inspect.isfunction)
                  if value.__module__ == module.name and not name.startswith("_")}
    for path in (REPO / "vitudip").rglob("*.py"):
        names |= {node.name for node in ast.walk(ast.parse(path.read_text(), str(path)))
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_")}
    return names


def test_every_plot_function_is_exercised():
    called = {node.func.id for node in ast.walk(ast.parse(Path(__file__).read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    functions = _public_plot_functions()
    assert {"plot_manhattan", "plot_perdi_overview", "peak_slices"} <= functions
    missing = sorted(functions - called)
    assert not missing, f"plot functions no test in tests/test_plots.py calls: {missing}"
