"""One GWAS shard: a set of chromosomes x a batch of dimensions, run by any engine.

A cluster runs the shards as parallel jobs; :mod:`vitudip.genetics.gather`
puts them back together into one file per dimension.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitudip.genetics.plink2 import plink2_gwas
from vitudip.genetics.regenie import regenie_step2
from vitudip.genetics.settings import ShardSettings
from vitudip.io.stage_tables import phenotype_names


def phenotype_batch(pheno_path: str | os.PathLike, batch: int, n_batches: int) -> list[str]:
    """The phenotype columns of batch ``batch`` of ``n_batches`` contiguous, near-equal batches.

    Args:
        pheno_path: the phenotype table (FID, IID, phenotypes).
        batch: 0-based batch number.
        n_batches: number of batches.

    Raises:
        ValueError: ``batch`` is out of range, or there are fewer phenotypes than batches.
    """
    if not 0 <= batch < n_batches:
        raise ValueError(f"dimension batch {batch} is not in 0..{n_batches - 1}")
    names = phenotype_names(pheno_path)
    if len(names) < n_batches:
        raise ValueError(f"{pheno_path} has {len(names)} phenotype columns, fewer than gwas.dimension_batches "
                         f"({n_batches})")
    return [str(name) for name in np.array_split(np.array(names, dtype=object), n_batches)[batch]]



def gwas_shard(
    settings: ShardSettings,
    genotype_prefix: str | os.PathLike,
    pheno_path: str | os.PathLike,
    covar_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    chromosomes: Sequence[str | int] | None = None,
    batch: int = 0,
    threads: int = 1,
    pred_list: str | os.PathLike | None = None,
    memory_mb: int | None = None,
    extract: str | os.PathLike | None = None,
) -> list[Path]:
    """GWAS of one batch of phenotypes on some chromosomes: one GWAS-SSF file per phenotype.

    Args:
        settings: the engine and its options (:meth:`ShardSettings.from_config`).
        genotype_prefix: genotype fileset (PLINK 1, PLINK 2 or BGEN 1.2; every engine reads each directly).
        pheno_path: phenotype table.
        covar_path: covariate table.
        out_dir: folder for ``<phenotype>.tsv.gz``.
        chromosomes: chromosomes of the shard (None = all).
        batch: this shard's dimension batch (0-based, of ``settings.n_batches``).
        threads: CPU threads for the engine.
        pred_list: regenie step 1's prediction list (``regenie``).
        memory_mb: the memory the job may use; plink2 gets 80 % of it as its workspace, the rest
            is for plink2's own overhead (``plink2``). None: plink2's default, half the machine.
        extract: the variant IDs to test, one per line (``genotypes/variants_pass.txt``); None = all.

    Returns:
        The written files.
    """
    engine, n_batches = settings.engine, settings.n_batches
    phenotypes = phenotype_batch(pheno_path, batch, n_batches) if n_batches > 1 else None
    if engine == "torch":
        # only this engine needs PyTorch: a plink2 or REGENIE job runs without it
        import torch

        from vitudip.genetics.linear import linear_gwas

        # a Slurm job gets its cores through threads; torch would otherwise take the whole node
        torch.set_num_threads(threads)
        return linear_gwas(genotype_prefix, pheno_path, covar_path, out_dir, block_size=settings.block_size,
                           device=settings.device, chromosomes=chromosomes, phenotypes=phenotypes,
                           extract=extract)
    if engine == "plink2":
        return plink2_gwas(genotype_prefix, pheno_path, covar_path, out_dir, threads=threads,
                           chromosomes=chromosomes, phenotypes=phenotypes,
                           memory_mb=int(0.8 * memory_mb) if memory_mb else None, extract=extract)
    if pred_list is None:
        raise ValueError("the regenie engine needs step 1's prediction list (--pred)")
    return regenie_step2(genotype_prefix, pheno_path, covar_path, pred_list, out_dir, threads=threads,
                         chromosomes=chromosomes, phenotypes=phenotypes, bsize=settings.regenie_bsize,
                         min_mac=settings.min_mac, extract=extract,
                         par_region=settings.par_region)
