"""How alike two training runs are: linear CKA of their embeddings, and the share of loci both find.

Linear CKA (Kornblith et al., ICML 2019) of two embeddings X (n x p) and Y (n x q) of the same n
subjects, each column centred, is ||X'Y||_F^2 / (||X'X||_F ||Y'Y||_F): 1 when one embedding is an
orthogonal transform and scaling of the other, whatever the order or sign of the dimensions (which
differ between runs), and near 0 for unrelated embeddings when n >> p, q. With few subjects it is
biased upwards (n < p gives high values to unrelated embeddings), hence the permutation null:
the same CKA with the subjects of Y shuffled, which keeps both embeddings' spectra and breaks only
the pairing of subjects.

Loci: each run's genomic risk loci of the single dimensions, merged across dimensions as
loci/loci_merged.tsv merges them (the joint test is left out: the second run has none). Dimensions
are not aligned across runs, so merged loci are compared by position: two loci are shared when
their closed intervals on the same chromosome overlap. Overlapping loci of both runs form regions;
``overlap`` is the share of regions that both runs reach (a Jaccard index over regions), and
``overlap_run1``/``overlap_run2`` the share of each run's loci overlapping one of the other's.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from vitudip.io.atomic import write_tsv
from vitudip.io.stage_tables import SPLITS, read_udips, udip_matrix
from vitudip.loci.annotate import JOINT_TEST, merge_across_dimensions
from vitudip.loci.thresholds import Thresholds
from vitudip.stability.settings import StabilitySettings

log = logging.getLogger("vitudip.stability")

STABILITY_COLUMNS = [
    "subjects", "subject_set", "seed_run1", "seed_run2", "dimensions",
    "cka", "cka_null_mean", "cka_null_q95", "cka_p", "cka_untrained", "cka_untrained_null_mean", "cka_untrained_p",
    "loci_run1", "loci_run2", "shared_run1", "shared_run2", "overlap_run1", "overlap_run2",
    "regions", "loci_shared", "overlap",
]


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two embeddings of the same subjects (rows).

    Args:
        x: (n, p) embedding.
        y: (n, q) embedding, its rows the same subjects as ``x``'s.

    Raises:
        ValueError: different numbers of rows, fewer than 2, or an embedding constant over the subjects.
    """
    x, y = _centred(x), _centred(y)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"CKA needs two embeddings of the same 2 or more subjects, got {len(x)} and {len(y)} rows")
    norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        raise ValueError("CKA of an embedding constant over the subjects is undefined")
    return float(np.linalg.norm(x.T @ y) ** 2 / (norm_x * norm_y))


def cka_null(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> np.ndarray:
    """Linear CKA of ``x`` against ``y`` with its subjects shuffled, once per permutation.

    Args:
        x, y: see :func:`linear_cka`.
        permutations: how many shuffles.
        seed: seeds the shuffles.

    Returns:
        (permutations,) CKA values.
    """
    x, y = _centred(x), _centred(y)
    # centring commutes with a shuffle of the rows, and the denominators do not change
    denominator = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    rng = np.random.default_rng(seed)
    return np.array([np.linalg.norm(x.T @ y[rng.permutation(len(y))]) ** 2 / denominator
                     for _ in range(permutations)])


def cka_with_null(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> dict[str, float]:
    """The CKA, its permutation null's mean and 95th percentile, and its permutation p (NaN without permutations).

    The p is (1 + shuffles at or above the CKA) / (1 + permutations), never 0.
    """
    observed = linear_cka(x, y)
    if permutations == 0:
        return {"cka": observed, "null_mean": np.nan, "null_q95": np.nan, "p": np.nan}
    null = cka_null(x, y, permutations, seed)
    return {"cka": observed, "null_mean": float(null.mean()), "null_q95": float(np.quantile(null, 0.95)),
            "p": float((1 + np.sum(null >= observed)) / (1 + permutations))}


def compared_subjects(tables: list[pd.DataFrame], splits: pd.DataFrame, subject_set: str) -> list[str]:
    """The subjects every table embeds, outside the training split with ``held_out``, in the first table's order.

    Raises:
        ValueError: fewer than 3 such subjects (a CKA of 2 is 1 whatever the embeddings).
    """
    common = set(tables[0]["IID"])
    for table in tables[1:]:
        common &= set(table["IID"])
    if subject_set == "held_out":
        common &= set(splits.loc[splits["split"] != "train", "subject_id"])
    chosen = [iid for iid in tables[0]["IID"] if iid in common]
    if len(chosen) < 3:
        where = "outside the training split " if subject_set == "held_out" else ""
        raise ValueError(f"only {len(chosen)} subjects {where}are embedded by every run (CKA needs 3 or more): "
                         "embed the val and test splits (embed.splits), or set stability.subjects: all")
    return chosen


def _rows(table: pd.DataFrame, subjects: list[str]) -> np.ndarray:
    return udip_matrix(table.set_index("IID").loc[subjects])


def single_dimension_loci(loci: pd.DataFrame, thresholds: pd.DataFrame, merge_distance_bp: int) -> pd.DataFrame:
    """A run's loci of the single dimensions, merged across dimensions as loci_merged.tsv merges them.

    Args:
        loci: the run's GenomicRiskLoci.tsv (the joint test's rows, if any, are left out).
        thresholds: the run's thresholds.tsv (threshold, p_value, divisor), which mark the merged loci.
        merge_distance_bp: loci closer than this merge.

    Returns:
        the merged loci (loci_merged.tsv's columns).
    """
    divisor = dict(zip(thresholds["threshold"], thresholds["divisor"]))
    genome_wide = float(thresholds.loc[thresholds["threshold"] == "genome_wide", "p_value"].iloc[0])
    marks = Thresholds(genome_wide, int(divisor["bonferroni"]), float(divisor["meff"]))
    return merge_across_dimensions(loci[loci["dimension"] != JOINT_TEST], merge_distance_bp, marks)


def _overlaps(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Whether each locus of ``a`` overlaps one of ``b`` (chromosome, start, end; closed intervals)."""
    hit = np.zeros(len(a), dtype=bool)
    for i, (chromosome, start, end) in enumerate(zip(a["chromosome"], a["start"], a["end"])):
        hit[i] = bool(((b["chromosome"] == chromosome) & (b["start"] <= end) & (b["end"] >= start)).any())
    return hit


def _regions(run1: pd.DataFrame, run2: pd.DataFrame) -> tuple[int, int]:
    """Regions of overlapping loci of either run, and how many hold loci of both runs."""
    both = pd.concat([run1.assign(run=1), run2.assign(run=2)])[["chromosome", "start", "end", "run"]]
    both = both.sort_values(["chromosome", "start", "end"]).reset_index(drop=True)
    regions, shared, runs, reach, chromosome = 0, 0, set(), -np.inf, None
    for row in both.itertuples():
        if row.chromosome != chromosome or row.start > reach:
            shared += len(runs) == 2
            regions, runs, reach, chromosome = regions + 1, set(), row.end, row.chromosome
        runs.add(row.run)
        reach = max(reach, row.end)
    shared += len(runs) == 2
    return regions, shared


def loci_overlap(run1: pd.DataFrame, run2: pd.DataFrame) -> dict[str, float]:
    """How the merged loci of two runs overlap (see the module's docstring); shares are NaN over no loci.

    Args:
        run1, run2: merged loci (chromosome, start, end).

    Returns:
        loci_run1, loci_run2, shared_run1, shared_run2, overlap_run1, overlap_run2, regions, loci_shared, overlap.
    """
    shared1, shared2 = int(_overlaps(run1, run2).sum()), int(_overlaps(run2, run1).sum())
    regions, shared = _regions(run1, run2)

    def share(part: int, whole: int) -> float:
        return part / whole if whole else np.nan

    return {"loci_run1": len(run1), "loci_run2": len(run2), "shared_run1": shared1, "shared_run2": shared2,
            "overlap_run1": share(shared1, len(run1)), "overlap_run2": share(shared2, len(run2)),
            "regions": regions, "loci_shared": shared, "overlap": share(shared, regions)}


def compare_runs(
    udips: tuple[str | os.PathLike, str | os.PathLike],
    loci: tuple[str | os.PathLike, str | os.PathLike],
    thresholds: tuple[str | os.PathLike, str | os.PathLike],
    splits_path: str | os.PathLike,
    settings: StabilitySettings,
    out: str | os.PathLike,
    untrained: tuple[str | os.PathLike, str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """Compare two training runs and write the one-row stability table (STABILITY_COLUMNS).

    Args:
        udips: each run's udips.tsv.
        loci: each run's GenomicRiskLoci.tsv.
        thresholds: each run's loci thresholds.tsv.
        splits_path: preprocess/splits.tsv (which subjects are held out).
        settings: the stability settings (the seeds, which subjects, permutations, the loci's merge distance).
        out: stability.tsv to write.
        untrained: each run's untrained network's udips.tsv (None: no untrained reference).

    Returns:
        the table written.
    """
    tables = [read_udips(path) for path in (*udips, *(untrained or ()))]
    subjects = compared_subjects(tables, SPLITS.read(splits_path), settings.subjects)
    matrices = [_rows(table, subjects) for table in tables]
    trained = cka_with_null(matrices[0], matrices[1], settings.permutations, settings.seed_run2)
    log.info("linear CKA of the two trained runs over %d %s subjects: %.3f (permuted subjects: mean %.3f, p %.3g)",
             len(subjects), settings.subjects, trained["cka"], trained["null_mean"], trained["p"])
    row: dict[str, object] = {
        "subjects": len(subjects), "subject_set": settings.subjects, "seed_run1": settings.seed_run1,
        "seed_run2": settings.seed_run2, "dimensions": matrices[0].shape[1], "cka": trained["cka"],
        "cka_null_mean": trained["null_mean"], "cka_null_q95": trained["null_q95"], "cka_p": trained["p"],
        "cka_untrained": np.nan, "cka_untrained_null_mean": np.nan, "cka_untrained_p": np.nan,
    }
    if untrained is not None:
        reference = cka_with_null(matrices[2], matrices[3], settings.permutations, settings.seed_run2)
        row.update(cka_untrained=reference["cka"], cka_untrained_null_mean=reference["null_mean"],
                   cka_untrained_p=reference["p"])
        log.info("linear CKA of the two untrained networks: %.3f (permuted subjects: mean %.3f)", reference["cka"],
                 reference["null_mean"])
    merged = [single_dimension_loci(pd.read_csv(path, sep="\t", dtype={"chr": "int64"}),
                                    pd.read_csv(cut, sep="\t"), settings.merge_distance_bp)
              for path, cut in zip(loci, thresholds)]
    shares = loci_overlap(*merged)
    row.update(shares)
    log.info("merged loci: %d in run 1, %d in run 2; %d of %d regions reached by both (overlap %.3g)",
             shares["loci_run1"], shares["loci_run2"], shares["loci_shared"], shares["regions"], shares["overlap"])
    table = pd.DataFrame([row], columns=STABILITY_COLUMNS)
    write_tsv(table, out)
    return table
