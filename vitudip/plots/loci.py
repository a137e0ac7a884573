"""Loci figures: the study Manhattan plot and one regional plot per merged locus."""

from __future__ import annotations

import os

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
    y = _neg_log10(p)
    chromosomes = np.unique(chromosome)
    index = np.searchsorted(chromosomes, chromosome)
    spans = np.zeros(chromosomes.size)
    np.maximum.at(spans, index, position)
    offsets = np.concatenate([[0.0], np.cumsum(spans * 1.02 + 1.0)[:-1]])
    x = position + offsets[index]
    shown = _thin(y, 5.0, max_background)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.scatter(x[shown], y[shown], c=np.where(index[shown] % 2 == 0, "#3b5b92", "#9db0cf"), s=3, linewidths=0,
               rasterized=True)
    # SNPs inside loci, found by binary search on (chromosome, position) keys rather than a pass per locus
    key = chromosome * 2**40 + position
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]

    def snps_in(loci: pd.DataFrame) -> np.ndarray:
        base = loci["chromosome"].to_numpy(np.int64) * 2**40
        lo = np.searchsorted(sorted_key, base + loci["start"].to_numpy(np.int64))
        hi = np.searchsorted(sorted_key, base + loci["end"].to_numpy(np.int64), side="right")
        return order[np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)] or [np.zeros(0, np.int64)])]

    joint_only = (merged["tests"] == "joint").to_numpy() if "tests" in merged else np.zeros(len(merged), bool)
    for novel, colour, label in ((False, "#ff7f0e", "known locus"), (True, "#d62728", "novel locus")):
        inside = snps_in(merged[(merged["novel"].astype(bool) == novel).to_numpy() & ~joint_only])
        inside = inside[np.isfinite(y[inside])]
        if inside.size:
            ax.scatter(x[inside], y[inside], c=colour, s=8, linewidths=0, label=label, zorder=3)
    joint_y = _neg_log10(joint_p) if joint_p is not None else np.full_like(y, np.nan)
    inside = snps_in(merged[joint_only])
    inside = inside[np.isfinite(joint_y[inside])]
    if inside.size:
        ax.scatter(x[inside], joint_y[inside], c="#7b2cbf", marker="D", s=10, linewidths=0,
                   label="locus found only by the joint test (joint p)", zorder=4)
    for locus, only in zip(merged.itertuples(index=False), joint_only):
        name = locus.nearest_gene if isinstance(locus.nearest_gene, str) and locus.nearest_gene else locus.lead_snp
        more = f" +{locus.n_dimensions - 1}" if locus.n_dimensions > 1 else ""
        lead_x = offsets[np.searchsorted(chromosomes, locus.chromosome)] + locus.lead_position
        label = f"{name}\njoint only" if only else f"{name}\n{locus.lead_dimension}{more}"
        ax.annotate(label, (lead_x, _neg_log10(locus.lead_p)), xytext=(0, 6), textcoords="offset points",
                    ha="center", fontsize=7, color="#7b2cbf" if only else "#d62728" if locus.novel else "black")
    for name, value in thresholds.items():
        colour, style, label = _THRESHOLD_STYLES[name]
        ax.axhline(-np.log10(value), color=colour, ls=style, lw=0.8, label=f"{label} {value:.2g}")
    ax.set_xticks(offsets + spans / 2)
    ax.set_xticklabels([str(c) for c in chromosomes], fontsize=8)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10 p (min over dimensions)")
    top = max([np.nanmax(y[shown]) if shown.size else 0.0] + [-np.log10(v) for v in thresholds.values()]
              + [_neg_log10(p_lead) for p_lead in merged["lead_p"].to_numpy(float)[joint_only]])
    ax.set_ylim(0, top * 1.15 + 0.5)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    position = np.asarray(position, dtype=np.float64) / 1e6
    y = _neg_log10(p)
    r2 = np.asarray(r2, dtype=np.float64)
    rows = 2 if genes is not None and not genes.empty else 1
    # fixed margins: tight_layout measures every text and costs more than drawing (one figure per locus)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 4.8 if rows == 2 else 4), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [4, 1][:rows], "left": 0.09, "right": 0.98,
                                          "bottom": 0.1, "top": 0.93, "hspace": 0.08})
    ax = axes[0, 0]
    unknown = ~np.isfinite(r2)
    ax.scatter(position[unknown], y[unknown], c=_NO_LD, s=10, linewidths=0, label="not in LD reference")
    bins = np.clip(np.digitize(r2, R2_BINS[1:-1]), 0, len(R2_COLOURS) - 1)
    for b, colour in enumerate(R2_COLOURS):
        chosen = ~unknown & (bins == b)
        ax.scatter(position[chosen], y[chosen], c=colour, s=14, linewidths=0,
                   label=f"r² {R2_BINS[b]:.1f}-{R2_BINS[b + 1]:.1f}")
    lead = np.isclose(position, lead_position / 1e6)
    ax.scatter(position[lead], y[lead], marker="D", c="#7b2cbf", s=50, edgecolors="black", zorder=4,
               label="lead SNP")
    ax.axhline(-np.log10(genome_wide), color="#d62728", ls="--", lw=0.8)
    if span is not None:
        ax.set_xlim(span[0] / 1e6, span[1] / 1e6)
    ax.set_ylabel("-log10 p")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    if rows == 2:
        track = axes[1, 0]
        for level, gene in enumerate(genes.sort_values("start").itertuples(index=False)):
            track.plot([gene.start / 1e6, gene.end / 1e6], [level % 3] * 2, color="#333333", lw=3)
            # label the visible part of the gene, so a gene running off the plot keeps its name in view
            lo, hi = (max(gene.start, span[0]), min(gene.end, span[1])) if span is not None else (gene.start, gene.end)
            track.text((lo + hi) / 2e6, level % 3 + 0.35, str(gene.gene), ha="center", fontsize=7)
        track.set_ylim(-0.6, 3)
        track.set_yticks([])
        track.set_xlabel("position (Mb)")
    else:
        ax.set_xlabel("position (Mb)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
