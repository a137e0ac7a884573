"""What each workflow job asks of a cluster: memory (``mem_mb``, MB) and time (``runtime``, minutes) from its data.

One function per stage turns the sizes of a job's inputs (subjects, voxels, variants, dimensions, epochs) into a
:class:`Request`; ``workflow/rules/common.smk`` reads the sizes from the job's inputs when Snakemake is about to
run it (a resource function that takes ``input`` is evaluated once the inputs exist) and wires the result to
each rule's ``resources:``. A retry after an out-of-memory kill or a time-out asks ``attempt`` times as much.

Every cost is a fixed part plus a term per unit of data. The fixed parts are peaks measured on the tiny study
(``tests/test_resources.py`` holds every job of it below its request); the per-unit terms are the bytes each
stage holds per unit (read from its code, cited at each constant) and the per-unit times measured by the
benchmarks in ``docs/BENCHMARKS.md`` (each cited). ``bench/scale.py`` measures how each job grows and prints
these requests at full size beside its extrapolation.

Sizes are read cheaply: rows of a table by counting newlines, a brain mask's voxels from its ``.npy``, a
BGEN's variants from its header; each read is cached by path, size and modification time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from vitudip.config import section_defaults
from vitudip.io.bgen import read_bgen_header

if TYPE_CHECKING:
    from vitudip.model.config import ModelConfig

#: Bytes in a Snakemake "MB" (mem_mb is decimal megabytes).
MB = 1e6
#: Each request is at least this: twice the largest peak of a job that imports no torch on the tiny study
#: (find_loci, 437 MB; 2026-12-06), and the smallest slice a cluster usually hands out.
FLOOR_MB = 1000
#: The shortest time limit asked, minutes: below it the scheduling overhead dominates.
FLOOR_MIN = 10
#: Sanity caps, so that a misread size cannot ask a scheduler for the absurd: 1 TB, 7 days. A job that needs
#: more is beyond any node's memory or any partition's time limit; Slurm then refuses it at submission.
CAP_MB = 1_000_000
CAP_MIN = 7 * 24 * 60
#: Every modelled time is multiplied by this: this project's two CPU types differ 1.4-3.1x on the same job
#: (docs/BENCHMARKS.md: the torch GWAS engine 1.4x, plink2 2.1x, training 3.1x between the Xeon and the EPYC).
TIME_HEADROOM = 3.0
#: Every modelled memory is multiplied by this (allocator fragmentation, pandas' temporary copies).
MEM_HEADROOM = 1.25

#: A stage script that imports numpy/pandas and reads its tables (tiny study 2026-12-06: 60-440 MB).
PYTHON_BASE_MB = 500
#: A stage script that imports torch and holds a model (tiny study 2026-12-06: train_model 1,418 MB,
#: embed_udips 1,174 MB, perdi_maps 1,701 MB on the CPU).
TORCH_BASE_MB = 1800
#: simulate_cohort's fixed part: the 1 mm MNI template, atlas and their float64 warps (tiny study: 1,124 MB).
SIMULATE_BASE_MB = 1500

#: Preprocessing, padded-grid voxels per second per core: 5.16 volumes/s/core of 182 x 224 x 182 (7.42 M voxels)
#: measured by bench/preprocess.py (docs/BENCHMARKS.md, 2026-11-26), taken at 4 volumes/s.
PREPROCESS_VOXELS_PER_S_CORE = 4 * 182 * 224 * 182
#: Preprocessing, bytes held per worker per padded voxel: the float32 input, a float64 z-scored copy, the
#: float32 resampled volume and float16 row (vitudip/imaging: 4 + 8 + 4 + 2, rounded up to 24).
PREPROCESS_BYTES_PER_VOXEL_WORKER = 24

#: Training voxels per second on the CPU: the demo preset (2 mm, 96 x 112 x 96 = 1.03 M voxels) trains at
#: 5.3 subjects/s on the AMD EPYC (840 subjects in 160 s an epoch, docs/BENCHMARKS.md "The demo workflow").
TRAIN_VOXELS_PER_S_CPU = 5.3 * 96 * 112 * 96
#: ... and on one GPU: the published setup at 1 mm on one H200, 53.9 subjects/s with the data on the GPU
#: (docs/BENCHMARKS.md "Training throughput", measured outside this repository); the fast path is faster.
TRAIN_VOXELS_PER_S_GPU = 53.9 * 182 * 224 * 182
#: Embedding is a forward pass only: about a third of a training step's work.
EMBED_SPEEDUP = 3.0
#: Subjects the principal modes and the closed-form pool are fitted on at most (vitudip.train.trainer's
#: MODE_FIT_SUBJECTS; tests/test_resources.py keeps them equal).
MODE_FIT_SUBJECTS = 2000
#: Extra directions the randomised mode fit carries (vitudip.model.mode_loss.fit_principal_modes' oversample).
MODE_OVERSAMPLE = 16
#: Power iterations plus the last pass of the mode fit (fit_principal_modes' iterations 3, + 1).
MODE_PASSES = 4
#: Subjects the PCA baseline is fitted on at most (vitudip.embed.pca.embed_pca's max_fit_subjects).
PCA_FIT_SUBJECTS = 5000
#: Subjects the PCA baseline reads from the cache at a time (vitudip.embed.pca.BATCH_SUBJECTS).
PCA_BATCH_SUBJECTS = 32
#: Dense float32 products per second of this CPU class (BLAS, 2 cores), for the PCA baseline's fit.
FLOPS_CPU = 2e10

#: BGEN decoding in prepare_genotypes, seconds per variant x sample of the file: 0.291 ms a variant at 15,000
#: samples and 0.511 ms at 30,000 (bench/bgen_subset.py, docs/BENCHMARKS.md, 2026-12-06), taken at 20 ns.
PREPARE_S_PER_VARIANT_SAMPLE = 20e-9
#: Variants decoded per step of prepare_genotypes (vitudip.genetics.prepare.PREPARE_BLOCK).
PREPARE_BLOCK = 1024

#: The in-process (torch) GWAS engine, seconds per variant x sample x dimension on 2 threads: 1.16 ms a
#: variant at N 20,000 x 128 phenotypes, files written (bench/gwas.py, AMD EPYC, docs/BENCHMARKS.md 2026-12-03).
TORCH_GWAS_S_PER_UNIT = 1.16e-3 / (20_000 * 128)
#: plink2 --glm on dosages, the same unit: 6.4 ms a variant (the same bench and machine); REGENIE step 2 is
#: given plink2's rate (not measured here).
PLINK2_GWAS_S_PER_UNIT = 6.4e-3 / (20_000 * 128)
#: Genotype bytes a GWAS block holds per variant x subject: the float64 block, its residualised copy and the
#: engine's float64 products (vitudip/genetics/linear.py: 3 x 8).
GWAS_BLOCK_BYTES = 24
#: Phenotype bytes per subject x dimension: the phenotypes, their residuals and two products (4 x 8).
GWAS_PHENO_BYTES = 32
#: Bytes per variant of a per-chromosome variant table held in pandas (ID, alleles, position; plink2's
#: reports read back one at a time).
VARIANT_ROW_BYTES = 200

#: Reading, parsing and writing one GWAS-SSF row (a variant x dimension): gather 27 s for 89,321 x 128 rows
#: with BGZF and tabix on the EPYC (docs/BENCHMARKS.md, 2026-12-05), 2.4 µs.
GATHER_S_PER_ROW = 2.4e-6
#: Chunk-bounded memory per dimension of the streamed gather, joint test and loci (issue 29 item 1: each reads
#: its dimensions' files in chunks): a chunk of 100,000 rows of ~100 bytes parsed and formatted (2 copies).
STREAM_MB_PER_DIMENSION = 20
#: The joint test, bytes per chunk variant x dimension: each dimension's buffered rows (variant text, z, p, n)
#: and the block's arrays. bench/scale.py's variants sweep measured 156 (345 to 798 MB over 8,349 to 31,009
#: variants x 128 dimensions, all within one chunk; docs/BENCHMARKS.md, 2026-12-06).
JOINT_BYTES = 160
#: The joint step, seconds per variant x dimension besides reading: 17.8 s per 1 M variants x 128
#: (bench/joint.py, docs/BENCHMARKS.md 2026-12-03).
JOINT_S_PER_UNIT = 17.8 / (1e6 * 128)
#: Reading the loci stage's columns, seconds per row: 0.83 s per million (bench/tables.py, 2026-12-03).
LOCI_S_PER_ROW = 0.83e-6
#: find_loci's bytes per variant besides the LD reference's variant table: the scan's chromosome, position and
#: hashed key (17), the smallest p and its dimension over the dimensions and again with the joint test (20), the
#: joint p and its min-P dimension (10), the reference row of each variant (8) and the sorted copies of the
#: region lookup (25) (vitudip/loci/scan.py, stage.py); bench/sumstats_memory.py measured 51 bytes a variant for
#: the scan alone (its table, minimum p and two files' p-values while reading; docs/BENCHMARKS.md, 2026-12-06).
LOCI_VARIANT_BYTES = 80
#: Each of find_loci's workers: its copy of the scan's variant table (17), one dimension's p-values (8) and the
#: lookup by hashed key (16), per variant.
LOCI_WORKER_BYTES = 41
#: A row find_loci keeps per dimension below ``loci.candidate_p``: its row (int32) and p (float64).
LOCI_HIT_BYTES = 12
#: Variants in one LD window of find_loci (250 kb each side at UK Biobank's imputed density, ~3,300 per Mb
#: after QC: 10 M over 3,000 Mb), read as float64 for every subject by each worker.
LD_WINDOW_VARIANTS = 2000

#: KING's pairwise pass in genotype_qc, seconds per sample pair x pruned variant (plink2's bit-packed counts,
#: ~16 genotype pairs per ns per thread); the pruned set is ~3 % of the passing variants at the default r².
KING_S_PER_PAIR_VARIANT = 6e-11
PRUNED_SHARE = 0.03
#: plink2's QC passes (missingness, frequencies, HWE, the pruned set), seconds per variant x sample.
QC_S_PER_VARIANT_SAMPLE = 4e-9

#: PerDI on the CPU, seconds per dimension x subject at 1 mm with the reference model: 3.0 s per dimension of
#: 4 subjects (bench/perdi.py --size full, docs/BENCHMARKS.md); a GPU is taken as 20x faster (not measured).
PERDI_S_PER_DIM_SUBJECT_CPU = 0.75 * 1.0 / (182 * 224 * 182)
PERDI_GPU_SPEEDUP = 20.0


@dataclass(frozen=True)
class Request:
    """A job's request: memory in MB (Snakemake's ``mem_mb``) and time in minutes (``runtime``)."""

    mem_mb: int
    runtime: int

    def retried(self, attempt: int) -> Request:
        """The request of the ``attempt``-th try (1 the first): each retry asks for ``attempt`` times as much,
        within :data:`FLOOR_MB`/:data:`CAP_MB` and :data:`FLOOR_MIN`/:data:`CAP_MIN`.

        Args:
            attempt: Snakemake's attempt, from 1.
        """
        return Request(mem_mb=_clamp(self.mem_mb * attempt, FLOOR_MB, CAP_MB),
                       runtime=_clamp(self.runtime * attempt, FLOOR_MIN, CAP_MIN))


def _clamp(value: float, low: int, high: int) -> int:
    return int(min(max(math.ceil(value), low), high))


def _request(fixed_mb: float, data_bytes: float, seconds: float) -> Request:
    """A fixed part and the data held (with :data:`MEM_HEADROOM`), and a modelled time (with
    :data:`TIME_HEADROOM`), rounded up to 100 MB and a minute, at least the floors."""
    mem = math.ceil((fixed_mb + MEM_HEADROOM * data_bytes / MB) / 100) * 100
    return Request(mem_mb=max(mem, FLOOR_MB), runtime=max(math.ceil(TIME_HEADROOM * seconds / 60), FLOOR_MIN))


# --------------------------------------------------------------------------- stage cost models


def simulate_cohort(subjects: int, voxels: int, variants: int) -> Request:
    """The simulated cohort: one warped template per subject, and the genotypes (subjects x variants int8).

    Args:
        subjects: simulated subjects.
        voxels: voxels of a simulated image (the 1 mm template's grid at ``simulate.voxel_mm``).
        variants: simulated variants (about 2,200 per Mb of genome here).
    """
    held = 8 * voxels * 16 + subjects * variants
    return _request(SIMULATE_BASE_MB, held, 10 + subjects * voxels * 2.5e-7)


def preprocess_images(subjects: int, voxels: int, threads: int) -> Request:
    """Checks, z-scoring and padding, one volume per worker; the cache is written through a memory map
    (file pages the kernel reclaims, not the job's own memory).

    Args:
        subjects: rows of the samples table.
        voxels: voxels of the padded grid (``preprocess.pad_to``).
        threads: the job's worker processes.
    """
    held = threads * voxels * PREPROCESS_BYTES_PER_VOXEL_WORKER + 8 * voxels
    return _request(PYTHON_BASE_MB * threads ** 0.5, held,
                    subjects * voxels / (PREPROCESS_VOXELS_PER_S_CORE * threads))


@dataclass(frozen=True)
class ModelSize:
    """What of the model sets training's and embedding's costs.

    Args:
        voxels: voxels of the padded grid the model reads.
        tokens: patches of the grid (the model's tokens).
        dimensions: the encoder's width, the number of UDIPs.
        heads: attention heads of the encoder.
        depth: encoder plus decoder blocks.
        modes: principal modes fitted before training (0 without the mode options).
        pool_from_modes: the per-patch pool is started in closed form from the modes.
    """

    voxels: int
    tokens: int
    dimensions: int
    heads: int
    depth: int
    modes: int
    pool_from_modes: bool

    @classmethod
    def of(cls, model: ModelConfig) -> ModelSize:
        """The sizes of a configured model."""
        return cls(voxels=math.prod(model.image_size), tokens=model.n_tokens, dimensions=model.encoder_dim,
                   heads=model.encoder_heads, depth=model.encoder_depth + model.decoder_depth,
                   modes=model.mode_loss_modes if model.uses_modes else 0, pool_from_modes=model.pool_from_modes)


def _activations(model: ModelSize, batch: int) -> float:
    """Bytes of one batch's forward and backward pass held on the host (the CPU device): per block the
    attention matrices and about 16 token-width float32 intermediates."""
    per_block = model.heads * model.tokens ** 2 * 4 + 16 * model.tokens * model.dimensions * 4
    return batch * (model.depth * per_block + model.voxels * 4 * 3)


def train_model(subjects: int, epochs: int, batch: int, model: ModelSize, gpu: bool, processes: int = 1) -> Request:
    """Training: the mode fit and closed-form pool start (on the host), then ``epochs`` passes.

    Args:
        subjects: rows of the QC table (an upper bound of the training split).
        epochs: ``train.epochs``.
        batch: ``train.batch_size``.
        model: the model's sizes.
        gpu: whether training runs on a GPU (then the passes' activations are device memory).
        processes: ``train.processes``: each holds what one holds (every one fits the modes), and the passes
            are shared out among them.
    """
    fitted = min(subjects, MODE_FIT_SUBJECTS)
    held = 0.0
    if model.modes:
        # the random basis and its product, float32, over every voxel of the brain tokens
        held += 2 * model.voxels * (model.modes + MODE_OVERSAMPLE) * 4
    if model.pool_from_modes:
        # the fitted subjects' tokens as a list and concatenated (float32), then the ridge's per-patch maps
        held += 2 * fitted * model.tokens * model.dimensions * 4 + model.tokens * model.dimensions * model.modes * 8
    if not gpu:
        held += _activations(model, batch)
    rate = TRAIN_VOXELS_PER_S_GPU if gpu else TRAIN_VOXELS_PER_S_CPU
    passes = epochs * subjects / processes + (MODE_PASSES + 1) * fitted * bool(model.modes)
    return _request(processes * TORCH_BASE_MB, processes * held, passes * model.voxels / rate)


def embed_vit(subjects: int, batch: int, model: ModelSize, gpu: bool) -> Request:
    """The encoder over every subject, one batch at a time.

    Args:
        subjects: rows of the QC table.
        batch: ``embed.batch_size``.
        model: the model's sizes.
        gpu: whether the encoder runs on a GPU.
    """
    held = 0.0 if gpu else _activations(model, batch) / 2
    rate = (TRAIN_VOXELS_PER_S_GPU if gpu else TRAIN_VOXELS_PER_S_CPU) * EMBED_SPEEDUP
    return _request(TORCH_BASE_MB, held + subjects * model.dimensions * 8, subjects * model.voxels / rate)


def embed_pca(subjects: int, brain_voxels: int, components: int) -> Request:
    """The PCA baseline (``vitudip/embed/pca.py``): a streamed randomised fit over at most :data:`PCA_FIT_SUBJECTS`
    training subjects, then every subject projected; memory is the basis, not the subjects.

    Args:
        subjects: rows of the QC table (an upper bound of the training split).
        brain_voxels: voxels of the brain mask.
        components: ``embed.pca_components``.
    """
    fitted = min(subjects, PCA_FIT_SUBJECTS)
    width = components + MODE_OVERSAMPLE
    # the basis, its product and QR's workspace (float32), a batch and its centred copy, the mean, the scores
    held = (3 * brain_voxels * width * 4 + 2 * PCA_BATCH_SUBJECTS * brain_voxels * 4 + brain_voxels * 8
            + subjects * components * 8)
    # MODE_PASSES passes of two products each, the projection, and the cache read once per pass plus the mean's
    flops = 4 * MODE_PASSES * fitted * brain_voxels * width + 4 * subjects * brain_voxels * components
    seconds = flops / FLOPS_CPU + ((MODE_PASSES + 1) * fitted + subjects) * brain_voxels * 2 / 1e9
    return _request(PYTHON_BASE_MB, held, seconds)


def small_tables(rows: int, columns: int) -> Request:
    """A job joining or plotting a few tables of ``rows`` x ``columns`` numbers (embedding_vs_truth,
    plot_embedding_spectrum, summarise_study, select_samples)."""
    return _request(PYTHON_BASE_MB, rows * columns * 8 * 4, 60 + rows * columns * 1e-6)


def validate_inputs(table_rows: int, fileset_variants: Sequence[int]) -> Request:
    """The input checks: the input tables, then each genotype fileset's variant table in turn with the IDs
    prepare_genotypes would make of it, and an 8-byte hash of every variant's ID kept across filesets.

    Args:
        table_rows: rows of the largest input table (samples, covariates, a genotype sample file).
        fileset_variants: variants of each genotype fileset.
    """
    largest = max(fileset_variants, default=0)
    # a variant table and its made IDs: twice a row; the tables' cells as small_tables counts them. A 1 M-variant
    # .pvar read, its IDs made and hashed: 15 µs and 400 B a variant (2026-12-06, 2-core test machine)
    held = max(table_rows * 8 * 8 * 4, 2 * largest * VARIANT_ROW_BYTES) + 8 * sum(fileset_variants)
    return _request(PYTHON_BASE_MB, held, 60 + (table_rows * 8 + sum(fileset_variants) * 16) * 1e-6)


def untrained_model(model_bytes: int) -> Request:
    """A model file read, its weights drawn again, and written (the stability check's untrained reference).

    Args:
        model_bytes: the trained model file's size (weights, mean image, token set).
    """
    # the payload read, the new weights and the copy torch.save serialises
    return _request(TORCH_BASE_MB, 3 * model_bytes, 30)


def compare_runs(subjects: int, dimensions: int, tables: int, permutations: int) -> Request:
    """Linear CKA of UDIP tables with its permutation null (the stability check), and two runs' loci.

    Args:
        subjects: rows of a UDIP table.
        dimensions: columns of each.
        tables: UDIP tables read (2, or 4 with the untrained reference).
        permutations: shuffles per CKA, each an n x p x q product.
    """
    held = tables * subjects * dimensions * 8 * 3
    seconds = 60 + (tables // 2) * (permutations + 1) * 2 * subjects * dimensions**2 / FLOPS_CPU
    return _request(PYTHON_BASE_MB, held, seconds)


def prepare_genotypes(file_samples: int, analysed: int, variants: int, threads: int) -> Request:
    """One chromosome's analysed samples decoded into a PGEN, :data:`PREPARE_BLOCK` variants at a time.

    Args:
        file_samples: samples of the genotype file (rows of the sample selection).
        analysed: samples kept.
        variants: variants of the chromosome's file (before QC).
        threads: decoding threads, taken at half efficiency (the rate was measured on one; two threads on
            two shared cores gained nothing there).
    """
    # a block's 8-bit probabilities of every file sample (2 per sample, twice: compressed and not), and the
    # analysed samples' float32 dosages with the writer's copy
    held = PREPARE_BLOCK * (file_samples * 2 * 2 + analysed * 4 * 3) + variants * VARIANT_ROW_BYTES
    seconds = variants * file_samples * PREPARE_S_PER_VARIANT_SAMPLE / max(threads / 2, 1)
    return _request(PYTHON_BASE_MB, held, seconds)


def genotype_qc(samples: int, variants: int, threads: int) -> Request:
    """plink2's sample and variant QC over every chromosome, then KING over the pruned variants.

    Args:
        samples: analysed samples.
        variants: variants of every chromosome.
        threads: the job's threads (KING's pairs are split among them).
    """
    pruned = PRUNED_SHARE * variants
    # the variant table, the pruned genotypes bit-packed, and a bit per sample pair for the cutoff's graph
    held = variants * VARIANT_ROW_BYTES + samples * pruned / 4 + samples ** 2 / 8
    seconds = (variants * samples * QC_S_PER_VARIANT_SAMPLE
               + samples ** 2 / 2 * pruned * KING_S_PER_PAIR_VARIANT / max(threads, 1))
    return _request(PYTHON_BASE_MB, held, seconds)


def prepare_phenotypes(subjects: int, dimensions: int, passing_variants: int) -> Request:
    """The phenotype and covariate tables, and the passing variants' IDs it reads.

    Args:
        subjects: rows of the UDIP table.
        dimensions: UDIP dimensions.
        passing_variants: rows of the passing variants list.
    """
    held = subjects * dimensions * 8 * 4 + passing_variants * 100
    return _request(PYTHON_BASE_MB, held, 60 + passing_variants * 1e-6)


def gwas(engine: str, subjects: int, variants: int, dimensions: int, block: int, threads: int) -> Request:
    """One shard of the GWAS (a chromosome x a dimension batch), or the in-process permuted GWAS of
    calibrate_joint: one block of genotypes and the phenotypes at a time.

    Args:
        engine: ``torch``, ``plink2`` or ``regenie``.
        subjects: rows of the phenotype table.
        variants: variants of the chromosome (or of the pruned set).
        dimensions: dimensions of the shard.
        block: variants per block (``gwas.block_size``; REGENIE's and plink2's own blocks are smaller).
        threads: the job's threads (the rates were measured on 2).
    """
    held = block * subjects * GWAS_BLOCK_BYTES + subjects * dimensions * GWAS_PHENO_BYTES
    held += variants * VARIANT_ROW_BYTES
    rate = TORCH_GWAS_S_PER_UNIT if engine == "torch" else PLINK2_GWAS_S_PER_UNIT
    seconds = variants * subjects * dimensions * rate * 2 / max(threads, 1)
    return _request(PYTHON_BASE_MB, held, seconds)


def heritability(subjects: int, variants: int, dimensions: int, vectors: int, blocks: int, block: int,
                 threads: int) -> Request:
    """Randomized HE regression (vitudip/genetics/heritability.py): one pass over the variants, a block at a time.

    Held: a genotype block (as the GWAS's, :data:`GWAS_BLOCK_BYTES`), the phenotypes and random vectors with their
    products (:data:`GWAS_PHENO_BYTES` per column), each jackknife block's n x B float32 share and its Gram's copy
    (2 x 4 bytes), and each jackknife block's cross products (p x p float64) with the jackknife's estimates.
    Time: the GWAS engine's rate per variant x subject x column, for the phenotypes and twice the vectors
    (Z'[Y PV], then Z u), which bench/heritability.py measures (docs/BENCHMARKS.md).

    Args:
        subjects: rows of the phenotype table.
        variants: variants estimated from (the pruned set).
        dimensions: phenotypes (the UDIPs, and the PCA baseline's beside them).
        vectors: ``heritability.random_vectors``.
        blocks: ``heritability.jackknife_blocks``.
        block: variants per read (``gwas.block_size``).
        threads: the job's threads.
    """
    held = block * subjects * GWAS_BLOCK_BYTES + subjects * (dimensions + vectors) * GWAS_PHENO_BYTES
    held += blocks * subjects * vectors * 8 + 3 * blocks * dimensions * dimensions * 8
    held += variants * VARIANT_ROW_BYTES
    seconds = variants * subjects * (dimensions + 2 * vectors) * TORCH_GWAS_S_PER_UNIT * 2 / max(threads, 1)
    return _request(TORCH_BASE_MB, held, seconds)


def regenie_step1(subjects: int, variants: int, dimensions: int) -> Request:
    """REGENIE's whole-genome ridge regression on the pruned variants (not measured here: a block of
    1,000 variants and every phenotype's level-0 predictions for 5 ridge values x 5 folds).

    Args:
        subjects: rows of the phenotype table.
        variants: pruned variants.
        dimensions: UDIP dimensions.
    """
    held = subjects * 1000 * 8 + subjects * dimensions * 8 * 25
    return _request(PYTHON_BASE_MB, held, variants * subjects * dimensions * PLINK2_GWAS_S_PER_UNIT / 8)


def gwas_gather(variants: int, dimensions: int) -> Request:
    """Each dimension's shards joined into one GWAS-SSF file, and its λGC: memory bounded by a chunk per
    dimension (streamed, issue 29 item 1), time by the rows written.

    Args:
        variants: variants tested (every chromosome).
        dimensions: UDIP dimensions.
    """
    return _request(PYTHON_BASE_MB, dimensions * STREAM_MB_PER_DIMENSION * MB,
                    variants * dimensions * GATHER_S_PER_ROW)


def joint_test(variants: int, dimensions: int, chunk: int) -> Request:
    """The joint tests over the gathered files, a chunk of variants of every dimension at a time.

    Args:
        variants: variants tested.
        dimensions: UDIP dimensions.
        chunk: ``joint.chunk_size``.
    """
    # the buffered rows are the streams' chunks: no separate term per dimension
    return _request(PYTHON_BASE_MB, chunk * dimensions * JOINT_BYTES,
                    variants * dimensions * (JOINT_S_PER_UNIT + LOCI_S_PER_ROW))


def find_loci(subjects: int, variants: int, dimensions: int, threads: int, candidate_p: float) -> Request:
    """Clumping of every dimension's (and the joint test's) significant variants: the files read in chunks, one
    per worker at a time; held per variant its position, key and smallest p, per dimension its rows below
    ``candidate_p``, the LD reference's variant table, and per worker an LD window of every subject.

    Args:
        subjects: rows of the phenotype table (the LD samples).
        variants: variants tested.
        dimensions: UDIP dimensions.
        threads: the job's workers.
        candidate_p: ``loci.candidate_p`` (the share of each test's rows kept under the null).
    """
    per_variant = (LOCI_VARIANT_BYTES + VARIANT_ROW_BYTES + threads * LOCI_WORKER_BYTES
                   + (dimensions + 1) * candidate_p * LOCI_HIT_BYTES)
    per_worker = LD_WINDOW_VARIANTS * subjects * 8 + STREAM_MB_PER_DIMENSION * MB
    return _request(PYTHON_BASE_MB, variants * per_variant + threads * per_worker,
                    variants * (dimensions + 1) * LOCI_S_PER_ROW + 120)


def perdi_maps(subjects: int, dimensions: int, voxels: int, brain_voxels: int, batch: int, gpu: bool) -> Request:
    """PerDI: each dimension's perturbation decoded for ``subjects``, running sums of four maps over the brain.

    Args:
        subjects: ``perdi.n_subjects`` (at most the QC table's rows).
        dimensions: dimensions mapped (every one at most), plus the loci's directions.
        voxels: voxels of the padded grid.
        brain_voxels: voxels of the brain mask.
        batch: ``perdi.batch_size``.
        gpu: whether the decoder runs on a GPU.
    """
    held = brain_voxels * 8 * 8 + batch * voxels * 4 * 4 + voxels * 8 * 2
    seconds = dimensions * subjects * voxels * PERDI_S_PER_DIM_SUBJECT_CPU / (PERDI_GPU_SPEEDUP if gpu else 1)
    return _request(TORCH_BASE_MB, held, seconds)


# --------------------------------------------------------------------------- size readers


def _stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    stat = os.stat(path)
    return os.fspath(path), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=512)
def _lines(path: str, size: int, mtime: int, comment: bytes) -> int:
    """Lines of a file, less the leading ones starting with ``comment`` (a ``.pvar``'s header)."""
    del size, mtime  # the cache key: a rewritten file is counted again
    count, first, last = 0, True, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            count += chunk.count(b"\n")
            if first and comment:
                for line in chunk.split(b"\n"):
                    if not line.startswith(comment):
                        break
                    count -= 1
            first, last = False, chunk[-1:]
    return count + (last != b"\n")


def table_rows(path: str | os.PathLike) -> int:
    """Data rows of a tab-separated table with one header line."""
    return max(_lines(*_stamp(path), b"") - 1, 0)


def variant_rows(path: str | os.PathLike) -> int:
    """Variants of a ``.pvar`` (lines not starting with ``#``), a ``.bim`` or a variant list (every line)."""
    return _lines(*_stamp(path), b"#")


def genotype_file_variants(files: Sequence[str]) -> int:
    """Variants of an input genotype fileset: the BGEN header's count, or the rows of its ``.pvar``/``.bim``."""
    for path in files:
        if path.endswith(".bgen"):
            return read_bgen_header(path).n_variants
        if path.endswith((".pvar", ".bim")):
            return variant_rows(path)
    raise ValueError(f"no .bgen, .pvar or .bim among the genotype files {list(files)}")


@lru_cache(maxsize=16)
def _mask_voxels(path: str, size: int, mtime: int) -> int:
    del size, mtime
    return int(np.count_nonzero(np.load(path, mmap_mode="r")))


def brain_voxels(path: str | os.PathLike) -> int:
    """Voxels of the preprocess stage's brain mask (``brain_mask.npy``)."""
    return _mask_voxels(*_stamp(path))


# --------------------------------------------------------------------------- the full study


@dataclass(frozen=True)
class StudySize:
    """The sizes of a study, for the requests at full size (README "Resources", bench/scale.py).

    Args:
        subjects: imaged subjects with genotypes.
        file_samples: samples of the genotype files.
        variants: variants after QC, over every chromosome.
        source_variants: variants of the genotype files before QC (UK Biobank's imputed BGENs: 93 M).
        chromosomes: chromosomes (per-chromosome jobs get ``variants / chromosomes``).
        dimensions: UDIP dimensions.
        voxels: padded-grid voxels.
        brain_voxels: brain-mask voxels.
        epochs: training epochs.
    """

    subjects: int = 45_000
    file_samples: int = 487_409
    variants: int = 10_000_000
    source_variants: int = 93_000_000
    chromosomes: int = 22
    dimensions: int = 128
    voxels: int = 182 * 224 * 182
    brain_voxels: int = 2_300_000
    epochs: int = 4

    def __str__(self) -> str:
        return (f"{self.subjects:,} subjects ({self.file_samples:,} genotyped), {self.variants:,} variants over "
                f"{self.chromosomes} chromosomes, {self.dimensions} dimensions, {self.voxels:,} voxels at 1 mm "
                f"({self.brain_voxels:,} brain), {self.epochs} epochs")


FULL_STUDY = StudySize()


def full_study_requests(study: StudySize = FULL_STUDY, threads: dict[str, int] | None = None) -> dict[str, Request]:
    """Each rule's first-attempt request at ``study``'s size with the default config's settings (the
    ``informative`` preset on a GPU, 1 mm, the torch GWAS engine in one dimension batch).

    Args:
        study: the sizes.
        threads: each rule's threads where it is not the rule's default.
    """
    threads = {"preprocess_images": 16, "gwas_shard": 2, "find_loci": 2, **(threads or {})}
    model = ModelSize(voxels=study.voxels, tokens=13 * 14 * 13, dimensions=study.dimensions, heads=8, depth=12,
                      modes=128, pool_from_modes=True)
    per_chromosome = study.variants // study.chromosomes
    pruned = int(PRUNED_SHARE * study.variants)
    return {
        "validate_inputs": validate_inputs(study.file_samples,
                                           [study.source_variants // study.chromosomes] * study.chromosomes),
        "preprocess_images": preprocess_images(study.subjects, study.voxels, threads["preprocess_images"]),
        "train_model": train_model(study.subjects, study.epochs, 8, model, gpu=True),
        "embed_udips": embed_vit(study.subjects, 16, model, gpu=True),
        "embed_pca_baseline": embed_pca(study.subjects, study.brain_voxels, study.dimensions),
        "prepare_genotypes": prepare_genotypes(study.file_samples, study.subjects,
                                               study.source_variants // study.chromosomes, 4),
        "genotype_qc": genotype_qc(study.subjects, study.variants, 4),
        "prepare_phenotypes": prepare_phenotypes(study.subjects, study.dimensions, study.variants),
        "gwas_shard": gwas("torch", study.subjects, per_chromosome, study.dimensions, 4096, threads["gwas_shard"]),
        "regenie_step1": regenie_step1(study.subjects, pruned, study.dimensions),
        "gwas_gather": gwas_gather(study.variants, study.dimensions),
        "joint_test": joint_test(study.variants, study.dimensions, section_defaults("joint")["chunk_size"]),
        "calibrate_joint": gwas("torch", study.subjects, pruned, study.dimensions, 4096, 2),
        "estimate_heritability": heritability(study.subjects, pruned, 2 * study.dimensions, 20, 100, 4096, 2),
        "find_loci": find_loci(study.subjects, study.variants, study.dimensions, threads["find_loci"],
                               section_defaults("loci")["candidate_p"]),
        "perdi_maps": perdi_maps(500, study.dimensions, study.voxels, study.brain_voxels, 64, gpu=True),
    }



#: The rules after training that wait for one another, in order (calibrate_joint runs beside the GWAS; the
#: GWAS shards, one per chromosome and dimension batch, run side by side: 22 jobs in one batch).
POST_TRAINING_CHAIN = ("embed_udips", "prepare_phenotypes", "gwas_shard", "gwas_gather", "joint_test", "find_loci",
                       "perdi_maps")


def post_training_hours(requests: dict[str, Request]) -> tuple[float, float]:
    """Wall hours of the post-training chain with every GWAS shard in parallel: (at the requests' time limits,
    at the measured rates they are :data:`TIME_HEADROOM` times).

    Args:
        requests: each rule's request (:func:`full_study_requests`).
    """
    limits = sum(requests[rule].runtime for rule in POST_TRAINING_CHAIN) / 60
    return limits, limits / TIME_HEADROOM


# --------------------------------------------------------------------------- declared against measured


@dataclass(frozen=True)
class JobMemory:
    """One finished job's declared memory and the peak its Snakemake benchmark file recorded.

    Args:
        rule: the rule's name.
        benchmark: the benchmark file.
        mem_mb: the ``mem_mb`` Snakemake gave the job.
        max_rss: the peak resident memory of the job's processes, MB (the benchmark's ``max_rss``).
    """

    rule: str
    benchmark: str
    mem_mb: int
    max_rss: float


def declared_memory(log: str) -> dict[str, tuple[str, int]]:
    """Benchmark file -> (rule, mem_mb) of each job Snakemake's output describes (its ``rule``/``localrule``
    blocks with their ``benchmark:`` and ``resources:`` lines); a retried job's last block wins.

    Args:
        log: Snakemake's standard output and error of a run.
    """
    declared: dict[str, tuple[str, int]] = {}
    rule, fields = "", {}
    for line in log.splitlines() + [""]:
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule, fields = line.split()[1].rstrip(":"), {}
        elif rule and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            fields[key] = value
        elif rule:
            memory = [item for item in fields.get("resources", "").split(", ") if item.startswith("mem_mb=")]
            if "benchmark" in fields and memory:
                declared[fields["benchmark"]] = (rule, int(memory[0].split("=", 1)[1]))
            rule = ""
    return declared


def read_max_rss(path: str | os.PathLike) -> float:
    """The ``max_rss`` (MB) of a Snakemake benchmark file (its last row: the last repeat).

    Raises:
        ValueError: no max_rss column or value, naming the file.
    """
    lines = [line for line in open(path).read().splitlines() if line]
    header = lines[0].split("\t")
    if "max_rss" not in header or len(lines) < 2:
        raise ValueError(f"{path}: not a Snakemake benchmark file with a max_rss row")
    value = lines[-1].split("\t")[header.index("max_rss")]
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}, line {len(lines)}: max_rss {value!r} is not a number") from None


def job_memory(log: str, workdir: str | os.PathLike) -> list[JobMemory]:
    """Every job of a run that has a benchmark file, with its declared and measured memory.

    Args:
        log: Snakemake's output of the run.
        workdir: the run's working directory (the benchmark paths are relative to it).
    """
    return [JobMemory(rule, benchmark, mem_mb, read_max_rss(os.path.join(workdir, benchmark)))
            for benchmark, (rule, mem_mb) in sorted(declared_memory(log).items())]
