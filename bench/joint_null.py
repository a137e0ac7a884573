#!/usr/bin/env python
"""The joint tests' permuted-null λGC at a small study's size: its spread, and what inflates min-P.

Null data in process (no genotype signal): n subjects, 128 correlated dimensions, M independent variants
with an allele-frequency spectrum like msprime's (most variants rare, MAF >= 0.01), 8 covariates; each
dimension's residual noise normal or t with 4 df (heavy tails). Per-dimension t tests as the engines run
them, the joint tests as the pipeline builds them (R from the covariate-adjusted phenotypes), and λGC of
both over ``--runs`` independent null data sets. Printed beside the spread: the sampling SD that
``vitudip.genetics.joint_null.lambda_standard_error`` predicts, and the limit the check then applies.

    python bench/joint_null.py                       # n 780 and 1,200, M 2,112 (the demo's pruned variants)
    python bench/joint_null.py --n 780 --runs 20
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from scipy import stats

from vitudip.genetics.joint_null import effective_lambda_limit, lambda_standard_error
from vitudip.genetics.joint_stats import JointTest, z_scores
from vitudip.genetics.sumstats import genomic_inflation


def null_run(n: int, variants: int, noise: str, seed: int, dimensions: int = 128) -> tuple[float, float]:
    """λGC of the joint statistic and of min-P on one null data set."""
    rng = np.random.default_rng(seed)
    design = np.column_stack([np.ones(n), rng.normal(size=(n, 8))])
    residual = rng.standard_t(4, size=(n, dimensions)) if noise == "t4" else rng.normal(size=(n, dimensions))
    phenotypes = 0.5 * rng.normal(size=(n, 10)) @ rng.normal(size=(10, dimensions)) + residual
    basis, _ = np.linalg.qr(design)
    y = phenotypes - basis @ (basis.T @ phenotypes)
    test = JointTest.from_correlation(np.corrcoef(y, rowvar=False), seed=seed, quiet=True)
    maf = np.clip(0.01 / rng.uniform(0.02, 1.0, variants), 0.01, 0.5)  # density ~ 1/f, as a neutral spectrum
    g = rng.binomial(2, maf, size=(n, variants)).astype(float)
    g -= basis @ (basis.T @ g)
    df = n - design.shape[1] - 1
    gg = (g**2).sum(axis=0)[:, None]
    beta = (g.T @ y) / gg
    se = np.sqrt(((y**2).sum(axis=0)[None, :] - beta**2 * gg) / df / gg)
    p = 2 * stats.t.sf(np.abs(beta / se), df)
    result = test.test(z_scores(beta, se, p), p)
    return genomic_inflation(result.p_value), genomic_inflation(result.min_p_familywise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[780, 1200])
    parser.add_argument("--variants", type=int, default=2112)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    se = lambda_standard_error(args.variants)
    print(f"M {args.variants}: predicted SD of λGC {se:.3f}; check's limit max(1.1, 1 + 3.09 SD) = "
          f"{effective_lambda_limit(1.1, args.variants):.3f}")
    print("| n | noise | λ statistic mean (SD) | λ min-P mean (SD) | min-P max |")
    print("|---|---|---|---|---|")
    for n in args.n:
        for noise in ("normal", "t4"):
            runs = np.array([null_run(n, args.variants, noise, seed) for seed in range(args.runs)])
            print(f"| {n} | {noise} | {runs[:, 0].mean():.3f} ({runs[:, 0].std():.3f}) | "
                  f"{runs[:, 1].mean():.3f} ({runs[:, 1].std():.3f}) | {runs[:, 1].max():.3f} |", flush=True)


if __name__ == "__main__":
    main()
