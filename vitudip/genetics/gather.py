"""Gather per-shard GWAS results into one file per dimension, with λGC and a QQ figure."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.sumstats import genomic_inflation, read_sumstats, write_sumstats
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.plots.gwas import plot_qq

log = logging.getLogger("vitudip.gwas")

GENOME_WIDE = 5e-8
SUFFIX = ".tsv.gz"


def _dimensions(shard: Path) -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in shard.glob(f"*{SUFFIX}"))


def gather_sumstats(shards: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                    lambda_path: str | os.PathLike, qq_path: str | os.PathLike) -> pd.DataFrame:
    """Concatenate every dimension's shards (sorted by chromosome and position) and summarise them.

    Args:
        shards: folders of one shard each, holding ``<dimension>.tsv.gz``.
        out_dir: folder for the gathered ``<dimension>.tsv.gz``.
        lambda_path: TSV ``dimension, n_variants, lambda_gc, min_p, n_genome_wide``.
        qq_path: QQ figure (PNG).

    Returns:
        The λGC table.

    Raises:
        ValueError: shards hold different sets of dimensions (names the shard).
    """
    shards = [Path(s) for s in shards]
    if not shards:
        raise ValueError("no GWAS shards to gather")
    names = _dimensions(shards[0])
    for shard in shards[1:]:
        if _dimensions(shard) != names:
            raise ValueError(f"shard {shard} holds other dimensions than {shards[0]}: a shard is incomplete")
    rows, p_values, lambdas = [], {}, {}
    with staged_outputs({"sumstats": out_dir, "lambda": lambda_path, "qq": qq_path}) as out:
        out["sumstats"].mkdir()
        for name in names:
            table = pd.concat([read_sumstats(shard / f"{name}{SUFFIX}") for shard in shards], ignore_index=True)
            table = table.sort_values(["chromosome", "base_pair_location"], kind="stable").reset_index(drop=True)
            write_sumstats(table, out["sumstats"] / f"{name}{SUFFIX}")
            p = table["p_value"].to_numpy(float)
            lambdas[name] = genomic_inflation(p)
            p_values[name] = p
            rows.append({"dimension": name, "n_variants": int(np.isfinite(p).sum()), "lambda_gc": lambdas[name],
                         "min_p": float(np.nanmin(p)) if np.isfinite(p).any() else np.nan,
                         "n_genome_wide": int((p < GENOME_WIDE).sum())})
        summary = pd.DataFrame(rows, columns=["dimension", "n_variants", "lambda_gc", "min_p", "n_genome_wide"])
        write_tsv(summary, out["lambda"])
        plot_qq(p_values, lambdas, out["qq"])
    if len(summary):
        log.info("%d dimensions gathered from %d shards: λGC median %.3f (range %.3f–%.3f), %d dimensions with a "
                 "genome-wide hit", len(summary), len(shards), summary["lambda_gc"].median(),
                 summary["lambda_gc"].min(), summary["lambda_gc"].max(), int((summary["n_genome_wide"] > 0).sum()))
    return summary
