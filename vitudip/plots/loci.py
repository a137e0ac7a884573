"""Loci figures: the study Manhattan plot and one regional plot per merged locus."""

from __future__ import annotations

import os
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: r² bins of the regional plot and their colours (LocusZoom's convention).
R2_BINS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
R2_COLOURS = ["#2b2c7c", "#7bc8f6", "#2ca02c", "#ff9f1c", "#d62728"]
_NO_LD = "#bbbbbb"
_THRESHOLD_STYLES = {
    "genome_wide": ("#d62728", "--", "genome-wide"),
    "bonferroni": ("#6a3d9a", ":", "study-wide (Bonferroni)"),
    "meff": ("#1f7a1f", "-.", "study-wide (M_eff)"),
}


def _neg_log10(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log10(np.asarray(p, dtype=np.float64))


def _thin(neg_log_p: np.ndarray, keep_above: float, max_background: int) -> np.ndarray:
    """Indices to draw: every point above ``keep_above``, an even subsample of the rest.

    The weak bulk of millions of SNPs looks the same thinned, and drawing it whole takes minutes.
    """
    finite = np.isfinite(neg_log_p)
    strong = np.flatnonzero(finite & (neg_log_p > keep_above))
    weak = np.flatnonzero(finite & (neg_log_p <= keep_above))
    step = max(1, int(np.ceil(weak.size / max(max_background, 1))))
    return np.union1d(strong, weak[::step])


@dataclass(frozen=True)
class _GenomeAxis:
    """Where each SNP lies on the Manhattan plot's x axis: chromosomes side by side, in number order.

    Args:
        chromosomes: the chromosomes present, ascending.
        spans: each chromosome's last drawn position (bp).
        offsets: x of each chromosome's position 0.
        chromosome_index: each SNP's row in ``chromosomes``.
        x: each SNP's x.
    """

    chromosomes: np.ndarray
    spans: np.ndarray
    offsets: np.ndarray
    chromosome_index: np.ndarray
    x: np.ndarray

    def at(self, chromosome: int, position: int) -> float:
        """The x of one base pair.

        Args:
            chromosome: its chromosome, one of ``chromosomes``.
            position: its position (bp).
        """
        return self.offsets[np.searchsorted(self.chromosomes, chromosome)] + position


def _genome_axis(chromosome: np.ndarray, position: np.ndarray) -> _GenomeAxis:
    """Lay the chromosomes side by side, each as long as its last SNP, with a small gap between them.

    Args:
        chromosome, position: one entry per SNP (int64).
    """
    chromosomes = np.unique(chromosome)
    index = np.searchsorted(chromosomes, chromosome)
    spans = np.zeros(chromosomes.size)
    np.maximum.at(spans, index, position)
    offsets = np.concatenate([[0.0], np.cumsum(spans * 1.02 + 1.0)[:-1]])
    return _GenomeAxis(chromosomes, spans, offsets, index, position + offsets[index])


class _SnpLocator:
    """Finds the SNPs inside loci by binary search on (chromosome, position) keys rather than a pass per locus.

    Args:
        chromosome, position: one entry per SNP (int64).
    """

    def __init__(self, chromosome: np.ndarray, position: np.ndarray) -> None:
        key = chromosome * 2**40 + position
        self.order = np.argsort(key, kind="stable")
        self.sorted_key = key[self.order]

    def inside(self, loci: pd.DataFrame) -> np.ndarray:
        """Indices of the SNPs inside any of ``loci``, ends included.

        Args:
            loci: rows with chromosome, start and end.
        """
        base = loci["chromosome"].to_numpy(np.int64) * 2**40
        lo = np.searchsorted(self.sorted_key, base + loci["start"].to_numpy(np.int64))
        hi = np.searchsorted(self.sorted_key, base + loci["end"].to_numpy(np.int64), side="right")
        return self.order[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)] or [np.zeros(0, np.int64)])]


def plot_manhattan(
    chromosome: np.ndarray,
    position: np.ndarray,
    p: np.ndarray,
    merged: pd.DataFrame,
    thresholds: dict[str, float],
    path: str | os.PathLike,
    max_background: int = 200_000,
    joint_p: np.ndarray | None = None,
) -> None:
    """Manhattan plot of the smallest p over dimensions per SNP, loci labelled, novel loci in red.

    Args:
        chromosome, position, p: one entry per SNP (p = minimum over dimensions).
        merged: merged loci (loci_merged.tsv columns); each labelled with its nearest gene (or lead SNP)
            and lead dimension; SNPs inside novel loci are red, inside known ones orange. Loci only the joint
            test reaches (``tests`` joint) are drawn with their SNPs' joint p as purple diamonds, labelled
            "joint only".
        thresholds: name -> p threshold (genome_wide, bonferroni, meff) drawn as lines.
        path: PNG to write.
        max_background: SNPs with p >= 1e-5 are thinned to about this many.
        joint_p: one joint test p per SNP (None: no joint test).
    """
    chromosome = np.asarray(chromosome, dtype=np.int64)
    position = np.asarray(position, dtype=np.int64)
    neg_log_p = _neg_log10(p)
    axis = _genome_axis(chromosome, position)
    joint_only = (merged["tests"] == "joint").to_numpy() if "tests" in merged else np.zeros(len(merged), bool)
    shown = _thin(neg_log_p, 5.0, max_background)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.scatter(axis.x[shown], neg_log_p[shown], s=3, linewidths=0, rasterized=True,
               c=np.where(axis.chromosome_index[shown] % 2 == 0, "#3b5b92", "#9db0cf"))
    joint_neg_log_p = _neg_log10(joint_p) if joint_p is not None else np.full_like(neg_log_p, np.nan)
    _draw_locus_snps(ax, axis.x, neg_log_p, joint_neg_log_p, merged, joint_only, _SnpLocator(chromosome, position))
    _label_loci(ax, merged, joint_only, axis)
    for name, value in thresholds.items():
        colour, style, label = _THRESHOLD_STYLES[name]
        ax.axhline(-np.log10(value), color=colour, ls=style, lw=0.8, label=f"{label} {value:.2g}")
    top = max([np.nanmax(neg_log_p[shown]) if shown.size else 0.0] + [-np.log10(v) for v in thresholds.values()]
              + [_neg_log10(p_lead) for p_lead in merged["lead_p"].to_numpy(float)[joint_only]])
    _finish_manhattan_axes(ax, axis, top)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_locus_snps(ax: plt.Axes, x: np.ndarray, neg_log_p: np.ndarray, joint_neg_log_p: np.ndarray,
                     merged: pd.DataFrame, joint_only: np.ndarray, locator: _SnpLocator) -> None:
    """Redraw the SNPs inside loci over the background: known loci orange, novel red, joint-only purple.

    Args:
        ax: the Manhattan plot.
        x: each SNP's x.
        neg_log_p: each SNP's -log10 p (minimum over dimensions).
        joint_neg_log_p: each SNP's -log10 joint p (NaN without a joint test).
        merged: merged loci.
        joint_only: per locus, whether only the joint test reaches it (drawn at its SNPs' joint p).
        locator: finds the SNPs inside loci.
    """
    for novel, colour, label in ((False, "#ff7f0e", "known locus"), (True, "#d62728", "novel locus")):
        inside = locator.inside(merged[(merged["novel"].astype(bool) == novel).to_numpy() & ~joint_only])
        inside = inside[np.isfinite(neg_log_p[inside])]
        if inside.size:
            ax.scatter(x[inside], neg_log_p[inside], c=colour, s=8, linewidths=0, label=label, zorder=3)
    inside = locator.inside(merged[joint_only])
    inside = inside[np.isfinite(joint_neg_log_p[inside])]
    if inside.size:
        ax.scatter(x[inside], joint_neg_log_p[inside], c="#7b2cbf", marker="D", s=10, linewidths=0,
                   label="locus found only by the joint test (joint p)", zorder=4)


def _label_loci(ax: plt.Axes, merged: pd.DataFrame, joint_only: np.ndarray, axis: _GenomeAxis) -> None:
    """Name each locus above its lead SNP; joint-only labels purple, novel red, known black.

    A label is the nearest gene (or the lead SNP), then the lead dimension and how many more dimensions
    reach the locus, or "joint only".

    Args:
        ax: the Manhattan plot.
        merged: merged loci.
        joint_only: per locus, whether only the joint test reaches it.
        axis: the plot's x axis.
    """
    for locus, only in zip(merged.itertuples(index=False), joint_only):
        name = locus.nearest_gene if isinstance(locus.nearest_gene, str) and locus.nearest_gene else locus.lead_snp
        more = f" +{locus.n_dimensions - 1}" if locus.n_dimensions > 1 else ""
        label = f"{name}\njoint only" if only else f"{name}\n{locus.lead_dimension}{more}"
        lead_xy = (axis.at(locus.chromosome, locus.lead_position), _neg_log10(locus.lead_p))
        ax.annotate(label, lead_xy, xytext=(0, 6), textcoords="offset points", ha="center", fontsize=7,
                    color="#7b2cbf" if only else "#d62728" if locus.novel else "black")


def _finish_manhattan_axes(ax: plt.Axes, axis: _GenomeAxis, top: float) -> None:
    """Chromosome ticks, axis labels, the y range, legend and frame.

    Args:
        ax: the Manhattan plot.
        axis: its x axis.
        top: the highest -log10 p drawn (points, thresholds, joint-only leads).
    """
    ax.set_xticks(axis.offsets + axis.spans / 2)
    ax.set_xticklabels([str(c) for c in axis.chromosomes], fontsize=8)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p (min over dimensions)")
    ax.set_ylim(0, top * 1.15 + 0.5)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def plot_regional(
    position: np.ndarray,
    p: np.ndarray,
    r2: np.ndarray,
    lead_position: int,
    title: str,
    path: str | os.PathLike,
    span: tuple[int, int] | None = None,
    genome_wide: float = 5e-8,
    genes: pd.DataFrame | None = None,
) -> None:
    """Regional plot of one locus: -log10 p by position, coloured by r² with the lead SNP.

    Args:
        position, p: the SNPs of the region (p of the lead SNP's dimension).
        r2: their r² with the lead SNP; NaN where the LD reference lacks them (grey).
        lead_position: where the lead SNP is (drawn as a purple diamond).
        title: figure title.
        path: PNG to write.
        span: first and last base pair shown (default: the SNPs' range).
        genome_wide: threshold line.
        genes: optional genes (chromosome already selected; columns start, end, gene) drawn below.
    """
    position_mb = np.asarray(position, dtype=np.float64) / 1e6
    with_genes = genes is not None and not genes.empty
    fig, ax, track = _regional_figure(with_genes)
    _draw_snps_by_ld(ax, position_mb, _neg_log10(p), np.asarray(r2, dtype=np.float64), lead_position / 1e6)
    ax.axhline(-np.log10(genome_wide), color="#d62728", ls="--", lw=0.8)
    if span is not None:
        ax.set_xlim(span[0] / 1e6, span[1] / 1e6)
    ax.set_ylabel("-log10 p")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    if track is not None:
        _draw_gene_track(track, genes, span)
    else:
        ax.set_xlabel("position (Mb)")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _regional_figure(with_genes: bool) -> tuple[plt.Figure, plt.Axes, plt.Axes | None]:
    """The regional plot's figure: the association panel, and below it a gene track when there are genes.

    Args:
        with_genes: whether to add the gene track.

    Returns:
        The figure, the association panel and the gene track (None without genes).
    """
    rows = 2 if with_genes else 1
    # fixed margins: tight_layout measures every text and costs more than drawing (one figure per locus)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 4.8 if rows == 2 else 4), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [4, 1][:rows], "left": 0.09, "right": 0.98,
                                          "bottom": 0.1, "top": 0.93, "hspace": 0.08})
    return fig, axes[0, 0], (axes[1, 0] if with_genes else None)


def _draw_snps_by_ld(ax: plt.Axes, position_mb: np.ndarray, neg_log_p: np.ndarray, r2: np.ndarray,
                     lead_position_mb: float) -> None:
    """The region's SNPs: grey where r² is unknown, else one scatter per r² bin; the lead SNP a purple diamond.

    Args:
        ax: the association panel.
        position_mb: each SNP's position (Mb).
        neg_log_p: each SNP's -log10 p.
        r2: each SNP's r² with the lead SNP (NaN: not in the LD reference).
        lead_position_mb: the lead SNP's position (Mb).
    """
    unknown = ~np.isfinite(r2)
    ax.scatter(position_mb[unknown], neg_log_p[unknown], c=_NO_LD, s=10, linewidths=0, label="not in LD reference")
    bins = np.clip(np.digitize(r2, R2_BINS[1:-1]), 0, len(R2_COLOURS) - 1)
    for b, colour in enumerate(R2_COLOURS):
        chosen = ~unknown & (bins == b)
        ax.scatter(position_mb[chosen], neg_log_p[chosen], c=colour, s=14, linewidths=0,
                   label=f"r² {R2_BINS[b]:.1f}-{R2_BINS[b + 1]:.1f}")
    lead = np.isclose(position_mb, lead_position_mb)
    ax.scatter(position_mb[lead], neg_log_p[lead], marker="D", c="#7b2cbf", s=50, edgecolors="black", zorder=4,
               label="lead SNP")


def _draw_gene_track(track: plt.Axes, genes: pd.DataFrame, span: tuple[int, int] | None) -> None:
    """Genes as bars on three staggered levels, each named above its bar.

    Args:
        track: the gene track below the association panel.
        genes: columns start, end, gene.
        span: first and last base pair shown (None: the SNPs' range).
    """
    for level, gene in enumerate(genes.sort_values("start").itertuples(index=False)):
        track.plot([gene.start / 1e6, gene.end / 1e6], [level % 3] * 2, color="#333333", lw=3)
        # label the visible part of the gene, so a gene running off the plot keeps its name in view
        lo, hi = (max(gene.start, span[0]), min(gene.end, span[1])) if span is not None else (gene.start, gene.end)
        track.text((lo + hi) / 2e6, level % 3 + 0.35, str(gene.gene), ha="center", fontsize=7)
    track.set_ylim(-0.6, 3)
    track.set_yticks([])
    track.set_xlabel("position (Mb)")
