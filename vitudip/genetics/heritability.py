"""SNP heritability and genetic correlation of every dimension at once: randomized Haseman–Elston regression.

The model is GCTA's (Yang et al., AJHG 2011): a phenotype y = g + e with Cov(g) = σg² K, K = Z Z'/M the genetic
relationship of the M standardised variants Z (n x M), and e independent noise of variance σe². With P the
projection off the covariates (intercept included, k columns), Haseman–Elston regression is the method of moments

    [tr(K_P²)  tr(K_P)] [σg²]   [y'K_P y]
    [tr(K_P)   n - k  ] [σe²] = [y'P y  ],      K_P = P K P,

and h² = σg² / (σg² + σe²). Every term but tr(K_P²) is exact and costs one product per genotype block:
y'K_P y = |Z'y|² / M for the residualised y, and tr(K_P) = |P Z|²_F / M. tr(K_P²) is estimated as RHE-reg does
(Wu & Sankararaman, AJHG 2018): the mean over B random ±1 vectors v of |K_P v|² (Hutchinson's estimator), with
K_P V accumulated block by block as P Σ_j Z_j (Z_j' P V). One pass over the genotypes thus serves every
phenotype and every pair of them: the genetic covariance of phenotypes a and b solves the same system with the
cross-trait products y_a'K_P y_b and y_a'P y_b, and r_g = σg_ab / (σg_a σg_b). Nothing of size subjects x
variants is held: a block of genotypes, the phenotypes, and n x B numbers per jackknife block.

Standard errors add two independent parts: a delete-one block jackknife over contiguous variant blocks (the
sampling of the genome, with the random vectors fixed) and the random vectors' own share (the spread of the B
trace estimates, carried to each statistic by the delta method). A jackknife is honest only when LD seldom
crosses a block boundary, so blocks are at least :data:`MIN_BLOCK_SPAN_BP` wide, and fewer than asked on a short
genome; the summary table says how many there were, how wide, and when the SE itself is uncertain.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vitudip.genetics.dosages import GenotypeReader, open_genotypes
from vitudip.genetics.gwas_inputs import covariate_basis, load_gwas_inputs
from vitudip.genetics.linear import _ieee_float32_matmul, compute_dtype
from vitudip.genetics.pheno import phenotype_table
from vitudip.genetics.settings import HeritabilitySettings
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import SAMPLE_QC, read_udips
from vitudip.model.device import pick_device
from vitudip.plots.heritability import plot_heritability

logger = logging.getLogger("vitudip.heritability")

#: The narrowest jackknife block, base pairs. Europeans' LD falls into roughly independent blocks of 1.6 Mb on
#: average (Berisa & Pickrell, Bioinformatics 2016); blocks narrower than LD make neighbouring pseudo-values
#: correlated and the jackknife SE too small.
MIN_BLOCK_SPAN_BP = 1_000_000
#: Below this many jackknife blocks the SE is itself noisy: its relative SE is about 1 / sqrt(2 (J - 1)), 16 % at 20.
FEW_BLOCKS = 20
#: A genotype column whose SD over the analysed samples is below this is monomorphic there and left out.
MONOMORPHIC_SD = 1e-6

HERITABILITY_COLUMNS = ["embedding", "dimension", "h2", "se", "se_jackknife", "se_random_vectors", "z", "n",
                        "variants"]
CORRELATION_COLUMNS = ["embedding_a", "dimension_a", "embedding_b", "dimension_b", "rg", "se", "phenotypic_r"]
SUMMARY_COLUMNS = ["embedding", "dimensions", "mean_h2", "mean_h2_se", "median_h2", "max_h2", "max_dimension",
                   "above_2se", "n", "variants", "jackknife_blocks", "min_block_mb", "median_block_mb",
                   "random_vectors", "se_note"]


# --------------------------------------------------------------------------- phenotypes


@dataclass
class Phenotypes:
    """The phenotypes of the estimate, residualised on the covariates.

    Attributes:
        embeddings: each column's embedding (``vit``, ``pca``).
        names: each column's dimension.
        residuals: (n, p) residuals on the covariates, each scaled to a sum of squares of n - k.
        basis: (n, k) orthonormal basis of the intercept and covariates.
        sample_rows: positions of the n samples in the genotype files.
    """

    embeddings: list[str]
    names: list[str]
    residuals: np.ndarray
    basis: np.ndarray
    sample_rows: np.ndarray

    @property
    def dof(self) -> int:
        """n - k, the trace of the projection off the covariates."""
        return self.residuals.shape[0] - self.basis.shape[1]


def _complete(values: pd.DataFrame, path: str | os.PathLike) -> np.ndarray:
    """The values as floats, refusing a missing one (HE regression here needs every phenotype on every sample)."""
    array = values.to_numpy(dtype=np.float64)
    missing = np.isnan(array)
    if missing.any():
        column = values.columns[int(np.flatnonzero(missing.any(axis=0))[0])]
        raise ValueError(f"phenotype '{column}' in {path} is missing for {int(missing.any(axis=1).sum())} analysed "
                         "sample(s); the heritability estimate needs complete phenotypes")
    return array


def _baseline_values(path: str | os.PathLike, iids: pd.Series, inverse_normal: bool) -> pd.DataFrame:
    """The PCA baseline's dimensions of the analysed samples, transformed as the pheno stage transforms the UDIPs."""
    table = read_udips(path).set_index("IID")
    lacking = iids[~iids.isin(table.index)]
    if len(lacking):
        raise ValueError(f"UDIP table {path} lacks {len(lacking)} analysed sample(s), e.g. '{lacking.iloc[0]}'")
    return phenotype_table(table.loc[iids], inverse_normal)


def _unrelated(iids: pd.Series, sample_qc: str | os.PathLike) -> np.ndarray:
    """Which samples the genotype QC does not mark related: relatives share environment as well as genotypes,
    and HE regression would count that as heritability (the pheno stage keeps them for REGENIE only)."""
    table = SAMPLE_QC.read(sample_qc)
    related = set(table.loc[table["status"] == "related", "IID"])
    return ~iids.isin(related).to_numpy()


def load_phenotypes(genotype_prefix: str | os.PathLike, pheno: str | os.PathLike, covar: str | os.PathLike,
                    method: str, baseline: str | os.PathLike | None = None,
                    sample_qc: str | os.PathLike | None = None, inverse_normal: bool = False) -> Phenotypes:
    """The GWAS's phenotypes (and the PCA baseline's dimensions) of its samples, residualised on its covariates.

    Args:
        genotype_prefix: genotype fileset of the analysed samples.
        pheno: ``pheno/pheno.tsv``, the GWAS's phenotypes.
        covar: ``pheno/covar.tsv``, the GWAS's covariates.
        method: the embedding of ``pheno`` (``vit`` or ``pca``), the ``embedding`` of its rows.
        baseline: ``embed/pca/udips.tsv`` to estimate beside it; None: none.
        sample_qc: ``genotypes/sample_qc.tsv``: samples it marks related are left out; None: keep all.
        inverse_normal: transform the baseline's dimensions as the pheno stage did the UDIPs.

    Raises:
        ValueError: a missing phenotype value, a baseline lacking an analysed sample, or what
            :func:`~vitudip.genetics.gwas_inputs.load_gwas_inputs` refuses.
    """
    inputs = load_gwas_inputs(genotype_prefix, pheno, covar)
    keep = np.ones(len(inputs.samples), dtype=bool) if sample_qc is None else _unrelated(inputs.samples["IID"],
                                                                                          sample_qc)
    if not keep.all():
        logger.info("%d samples marked related by %s left out", int((~keep).sum()), sample_qc)
    iids = inputs.samples["IID"][keep].reset_index(drop=True)
    values = [_complete(inputs.phenotypes[keep], pheno)]
    embeddings = [method] * inputs.phenotypes.shape[1]
    names = list(inputs.phenotypes.columns)
    if baseline is not None:
        extra = _baseline_values(baseline, iids, inverse_normal)
        values.append(_complete(extra, baseline))
        embeddings += ["pca"] * extra.shape[1]
        names += list(extra.columns)
    y = np.column_stack(values)
    q = covariate_basis(inputs.covariates.to_numpy()[keep], list(inputs.covariates.columns),
                        f"{covar}, {int(keep.sum())} unrelated analysed samples")
    residuals = y - q @ (q.T @ y)
    scale = np.sqrt(np.einsum("ij,ij->j", residuals, residuals) / (len(y) - q.shape[1]))
    # relative to the values' size: a constant's residuals are rounding error, not exactly zero
    constant = np.flatnonzero(scale <= 1e-10 * np.maximum(np.abs(y).max(axis=0), 1.0))
    if constant.size:
        raise ValueError(f"phenotype '{names[constant[0]]}' has no variation left after the covariates of {covar}")
    logger.info("%d samples, %d phenotypes (%s), %d covariate columns with the intercept", len(y), y.shape[1],
                ", ".join(f"{e}: {embeddings.count(e)}" for e in dict.fromkeys(embeddings)), q.shape[1])
    return Phenotypes(embeddings, names, residuals / scale, q, inputs.fam_rows[keep])


# --------------------------------------------------------------------------- jackknife blocks


def genome_span(chromosomes: pd.Series, positions: pd.Series) -> int:
    """Base pairs the variants span: per chromosome from the first to the last, summed."""
    frame = pd.DataFrame({"chrom": chromosomes.to_numpy(), "pos": positions.to_numpy()})
    ends = frame.groupby("chrom")["pos"].agg(["min", "max"])
    return int((ends["max"] - ends["min"]).sum())


def jackknife_blocks(chromosomes: pd.Series, positions: pd.Series, wanted: int) -> list[np.ndarray]:
    """Contiguous blocks of the variants, of equal count, for the delete-one jackknife.

    As many as ``wanted`` where each then spans :data:`MIN_BLOCK_SPAN_BP` on average, fewer on a short genome,
    never fewer than two.

    Args:
        chromosomes: each variant's chromosome, in file order.
        positions: each variant's position.
        wanted: ``heritability.jackknife_blocks``.

    Returns:
        Positions (into the given variants) of each block.
    """
    if len(chromosomes) < 2:
        raise ValueError(f"the heritability estimate needs at least 2 variants, got {len(chromosomes)}")
    count = max(2, min(wanted, genome_span(chromosomes, positions) // MIN_BLOCK_SPAN_BP, len(chromosomes)))
    return np.array_split(np.arange(len(chromosomes)), count)


def block_spans(chromosomes: pd.Series, positions: pd.Series, blocks: list[np.ndarray]) -> np.ndarray:
    """Base pairs each block spans (its chromosomes' stretches, summed)."""
    return np.array([genome_span(chromosomes.iloc[block], positions.iloc[block]) for block in blocks])


# --------------------------------------------------------------------------- the pass over the genotypes


@dataclass
class Products:
    """What the pass over the genotypes leaves, per jackknife block j (so any block can be left out).

    Attributes:
        cross: (J, p, p) Σ over the block's variants of (z'y_a)(z'y_b).
        trace: (J,) |P Z_j|²_F, the block's share of M tr(K_P).
        variants: (J,) variants polymorphic among the samples.
        gram: (J, J, B) <P Z_j Z_j' P v_b, P Z_k Z_k' P v_b>: the blocks' shares of M² |K_P v_b|².
    """

    cross: np.ndarray
    trace: np.ndarray
    variants: np.ndarray
    gram: np.ndarray


def standardised(block: torch.Tensor) -> torch.Tensor:
    """A block of dosages (n, m; NaN = missing) as mean 0, variance 1 columns, missing dosages at the mean;
    columns monomorphic among the samples are dropped. Works in place: the block is the job's largest array,
    and each temporary copy of it would add as much again to the peak."""
    missing = torch.isnan(block)
    block.nan_to_num_(0.0)
    observed = block.shape[0] - missing.sum(0)
    block.sub_(block.sum(0) / observed.clamp(min=1)).masked_fill_(missing, 0.0)
    sd = torch.linalg.vector_norm(block, dim=0) / block.shape[0] ** 0.5
    kept = sd > MONOMORPHIC_SD
    if not bool(kept.all()):
        block, sd = block[:, kept], sd[kept]
    return block.div_(sd)


def random_vectors(n: int, count: int, basis: np.ndarray, seed: int) -> np.ndarray:
    """``count`` random ±1 vectors of length ``n`` projected off the covariates: the P v of Hutchinson's trace."""
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n, count))
    return signs - basis @ (basis.T @ signs)


def _read_blocks(genotypes: GenotypeReader, index: np.ndarray, rows: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """The dosages of ``index`` in reads of ``size`` variants."""
    for start in range(0, index.size, size):
        yield genotypes.read_block(index[start:start + size], rows)


def genotype_products(genotypes: GenotypeReader, index: np.ndarray, blocks: list[np.ndarray],
                      phenotypes: Phenotypes, projected_vectors: np.ndarray, read_size: int,
                      device: torch.device, progress: bool = True) -> Products:
    """One pass over the variants: every product the estimates need, per jackknife block.

    Args:
        genotypes: the open genotype files.
        index: positions of the variants in the files, in order.
        blocks: positions into ``index`` of each jackknife block (:func:`jackknife_blocks`).
        phenotypes: the residualised phenotypes and covariate basis.
        projected_vectors: (n, B) random vectors projected off the covariates (:func:`random_vectors`).
        read_size: variants read at a time.
        device: where the products run.
        progress: show a progress bar over the reads.
    """
    dtype = compute_dtype(device)
    p, n_vectors = phenotypes.residuals.shape[1], projected_vectors.shape[1]
    targets = torch.from_numpy(np.column_stack([phenotypes.residuals, projected_vectors])).to(device, dtype)
    basis = torch.from_numpy(phenotypes.basis).to(device, dtype)
    cross = np.zeros((len(blocks), p, p))
    trace, variants = np.zeros(len(blocks)), np.zeros(len(blocks), dtype=np.int64)
    # the blocks' P Z_j Z_j' P V, kept in float32 (n x B x J numbers, no variants) to form their Gram matrix
    shares = torch.zeros((len(blocks), targets.shape[0], n_vectors), dtype=torch.float32, device=device)
    reads = sum(-(-block.size // read_size) for block in blocks)
    with tqdm(total=reads, desc="heritability blocks", unit="block", disable=not progress) as bar:
        for j, block in enumerate(blocks):
            product = torch.zeros((targets.shape[0], n_vectors), dtype=dtype, device=device)
            for dosages in _read_blocks(genotypes, index[block], phenotypes.sample_rows, read_size):
                z = standardised(torch.from_numpy(dosages).to(device, dtype))
                u = z.T @ targets
                cross[j] += (u[:, :p].T @ u[:, :p]).double().cpu().numpy()
                product += z @ u[:, p:]
                # every standardised column has a sum of squares of n: |P Z|² = n m - |Q'Z|²
                trace[j] += z.shape[0] * z.shape[1] - float((basis.T @ z).square().sum())
                variants[j] += z.shape[1]
                bar.update()
            shares[j] = (product - basis @ (basis.T @ product)).float()
    gram = torch.einsum("jnb,knb->jkb", shares, shares).double().cpu().numpy()
    return Products(cross=cross, trace=trace, variants=variants, gram=gram)


# --------------------------------------------------------------------------- estimates


@dataclass
class Estimates:
    """Point estimates of every phenotype and pair.

    Attributes:
        h2: (p,) SNP heritability.
        rg: (p, p) genetic correlation (NaN where either genetic variance is not positive).
        mean_h2: (E,) mean h2 over each embedding's dimensions.
    """

    h2: np.ndarray
    rg: np.ndarray
    mean_h2: np.ndarray

    def flat(self) -> np.ndarray:
        """Every statistic in one vector (for the jackknife and the delta method)."""
        return np.concatenate([self.h2, self.rg.reshape(-1), self.mean_h2])


def moment_estimates(cross: np.ndarray, trace: float, variants: int, trace_square: float, yty: np.ndarray,
                     dof: int, groups: list[np.ndarray]) -> Estimates:
    """Solve the HE moment equations of every phenotype and pair (module docstring).

    Args:
        cross: (p, p) Σ over variants of (z'y_a)(z'y_b), i.e. M y_a'K_P y_b.
        trace: M tr(K_P).
        variants: M.
        trace_square: M² tr(K_P²) (estimated).
        yty: (p, p) y_a'P y_b of the residualised phenotypes.
        dof: n - k.
        groups: the columns of each embedding.
    """
    s, tau, t = cross / variants, trace / variants, trace_square / variants**2
    det = t * dof - tau**2
    sigma_g = (dof * s - tau * yty) / det
    sigma_e = (t * yty - tau * s) / det
    genetic, noise = np.diag(sigma_g), np.diag(sigma_e)
    h2 = genetic / (genetic + noise)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.sqrt(np.where(genetic > 0, genetic, np.nan))
        rg = sigma_g / np.outer(scale, scale)
    return Estimates(h2=h2, rg=rg, mean_h2=np.array([h2[g].mean() for g in groups]))


@dataclass
class Result:
    """Estimates with standard errors.

    Attributes:
        estimates: the point estimates.
        se_jackknife: standard errors of the block jackknife, shaped like ``estimates.flat()``.
        se_random: the random vectors' share, likewise.
        phenotypic_r: (p, p) correlation of the covariate-adjusted phenotypes.
    """

    estimates: Estimates
    se_jackknife: np.ndarray
    se_random: np.ndarray
    phenotypic_r: np.ndarray

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.se_jackknife**2 + self.se_random**2)


def estimate(products: Products, phenotypes: Phenotypes, groups: list[np.ndarray]) -> Result:
    """Point estimates, the jackknife over blocks and the random vectors' share of the error.

    Args:
        products: the pass's products.
        phenotypes: the residualised phenotypes.
        groups: the columns of each embedding.
    """
    y = phenotypes.residuals
    yty, dof = y.T @ y, phenotypes.dof
    per_vector = products.gram.sum(axis=(0, 1))  # (B,) M² |K_P v_b|²
    total = products.cross.sum(0), products.trace.sum(), int(products.variants.sum())

    def at(trace_square: float, left_out: int | None = None) -> np.ndarray:
        cross, trace, variants = total
        if left_out is not None:
            cross = cross - products.cross[left_out]
            trace = trace - products.trace[left_out]
            variants = variants - int(products.variants[left_out])
        return moment_estimates(cross, trace, variants, trace_square, yty, dof, groups).flat()

    point = moment_estimates(*total, per_vector.mean(), yty, dof, groups)
    # leaving block j out removes its share from every |K_P v_b|²: |a - b|² = |a|² - 2 a·b + |b|²
    left = per_vector - 2 * products.gram.sum(axis=1) + np.einsum("jjb->jb", products.gram)  # (J, B)
    left_out = np.array([at(left[j].mean(), j) for j in range(len(left))])
    count = len(left_out)
    with np.errstate(invalid="ignore"):
        se_jackknife = np.sqrt((count - 1) / count * ((left_out - left_out.mean(0)) ** 2).sum(0))
    # delta method over the trace estimate: one SD either side of it
    trace_sd = per_vector.std(ddof=1) / np.sqrt(per_vector.size)
    se_random = np.abs(at(per_vector.mean() + trace_sd) - at(per_vector.mean() - trace_sd)) / 2
    # the residuals are scaled to y'y = n - k, so this is their correlation
    return Result(point, se_jackknife, se_random, yty / dof)


# --------------------------------------------------------------------------- tables


def heritability_table(result: Result, phenotypes: Phenotypes, variants: int) -> pd.DataFrame:
    """One row per dimension: h2, its SE and parts, z = h2 / SE, n and M."""
    p = len(phenotypes.names)
    h2 = result.estimates.h2
    se, se_j, se_r = (values[:p] for values in (result.se, result.se_jackknife, result.se_random))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = h2 / se
    return pd.DataFrame({"embedding": phenotypes.embeddings, "dimension": phenotypes.names, "h2": h2, "se": se,
                         "se_jackknife": se_j, "se_random_vectors": se_r, "z": z,
                         "n": phenotypes.residuals.shape[0], "variants": variants}, columns=HERITABILITY_COLUMNS)


def correlation_table(result: Result, phenotypes: Phenotypes) -> pd.DataFrame:
    """One row per pair of dimensions (a before b): r_g, its SE and the phenotypic correlation."""
    p = len(phenotypes.names)
    a, b = np.triu_indices(p, k=1)
    se = result.se[p:p + p * p].reshape(p, p)
    embeddings, names = np.array(phenotypes.embeddings), np.array(phenotypes.names)
    return pd.DataFrame({"embedding_a": embeddings[a], "dimension_a": names[a], "embedding_b": embeddings[b],
                         "dimension_b": names[b], "rg": result.estimates.rg[a, b], "se": se[a, b],
                         "phenotypic_r": result.phenotypic_r[a, b]}, columns=CORRELATION_COLUMNS)


def se_note(blocks: int, spans_bp: np.ndarray, n: int) -> str:
    """What the user should know before trusting the SE ("ok" when nothing)."""
    notes = []
    if blocks < FEW_BLOCKS:
        notes.append(f"only {blocks} jackknife blocks (the genotypes span {spans_bp.sum() / 1e6:.1f} Mb, blocks "
                     f"of >= {MIN_BLOCK_SPAN_BP / 1e6:g} Mb): the SE is itself uncertain by about "
                     f"{100 / np.sqrt(2 * (blocks - 1)):.0f}%")
    if np.median(spans_bp) < MIN_BLOCK_SPAN_BP:
        notes.append(f"the median jackknife block spans {np.median(spans_bp) / 1e6:.2f} Mb, less than LD may reach: "
                     "the SE may be too small")
    if n < 1000:
        notes.append(f"{n} samples: an HE estimate's SE is about sqrt(2 M_e)/n, wide below a few thousand samples")
    return "; ".join(notes) or "ok"


def summary_table(result: Result, phenotypes: Phenotypes, groups: list[np.ndarray], variants: int,
                  spans_bp: np.ndarray, n_vectors: int) -> pd.DataFrame:
    """One row per embedding: mean (with its SE), median and largest h2, dimensions above 2 SE, and what the SE
    rests on (n, M, jackknife blocks and their spans, random vectors)."""
    p = len(phenotypes.names)
    h2, se = result.estimates.h2, result.se[:p]
    mean_se = result.se[-len(groups):]
    embeddings = list(dict.fromkeys(phenotypes.embeddings))
    note = se_note(len(spans_bp), spans_bp, phenotypes.residuals.shape[0])
    rows = []
    for e, (embedding, columns) in enumerate(zip(embeddings, groups)):
        best = columns[int(np.argmax(h2[columns]))]
        rows.append({"embedding": embedding, "dimensions": columns.size, "mean_h2": result.estimates.mean_h2[e],
                     "mean_h2_se": mean_se[e], "median_h2": float(np.median(h2[columns])),
                     "max_h2": h2[best], "max_dimension": phenotypes.names[best],
                     "above_2se": int((h2[columns] > 2 * se[columns]).sum()), "n": phenotypes.residuals.shape[0],
                     "variants": variants, "jackknife_blocks": len(spans_bp),
                     "min_block_mb": spans_bp.min() / 1e6, "median_block_mb": float(np.median(spans_bp)) / 1e6,
                     "random_vectors": n_vectors, "se_note": note})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- the stage


def _groups(embeddings: list[str]) -> list[np.ndarray]:
    """The columns of each embedding, in order of first appearance."""
    labels = np.array(embeddings)
    return [np.flatnonzero(labels == e) for e in dict.fromkeys(embeddings)]


def heritability(genotype_prefix: str | os.PathLike, phenotypes: Phenotypes, settings: HeritabilitySettings,
                 progress: bool = True) -> tuple[Result, int, np.ndarray]:
    """RHE-reg of every phenotype and pair over all variants of a fileset.

    Args:
        genotype_prefix: the variants to estimate from (the pipeline passes the pruned common ones).
        phenotypes: from :func:`load_phenotypes`.
        settings: random vectors, jackknife blocks, read size, device and seed.
        progress: show a progress bar.

    Returns:
        (the estimates with their SEs, polymorphic variants used, each jackknife block's span in bp).
    """
    device = pick_device(settings.device, "gwas.device")
    vectors = random_vectors(len(phenotypes.residuals), settings.random_vectors, phenotypes.basis, settings.seed)
    with open_genotypes(genotype_prefix) as genotypes, _ieee_float32_matmul(device):
        chromosomes, positions = genotypes.variants["chrom"], genotypes.variants["pos"]
        blocks = jackknife_blocks(chromosomes, positions, settings.jackknife_blocks)
        spans = block_spans(chromosomes, positions, blocks)
        logger.info("%d variants in %d jackknife blocks (%.2f-%.2f Mb), %d random vectors, on %s",
                    len(chromosomes), len(blocks), spans.min() / 1e6, spans.max() / 1e6, settings.random_vectors,
                    device)
        products = genotype_products(genotypes, np.arange(len(chromosomes)), blocks, phenotypes, vectors,
                                     settings.block_size, device, progress)
    variants = int(products.variants.sum())
    if variants < len(chromosomes):
        logger.info("%d variants monomorphic among the samples left out", len(chromosomes) - variants)
    return estimate(products, phenotypes, _groups(phenotypes.embeddings)), variants, spans


def heritability_stage(settings: HeritabilitySettings, genotype_prefix: str | os.PathLike,
                       pheno: str | os.PathLike, covar: str | os.PathLike, method: str,
                       outputs: dict[str, str | os.PathLike], baseline: str | os.PathLike | None = None,
                       sample_qc: str | os.PathLike | None = None, threads: int = 1,
                       progress: bool = True) -> dict[str, Path]:
    """Write ``heritability.tsv``, ``genetic_correlation.tsv``, ``heritability_summary.tsv`` and the figure.

    Args:
        settings: the stage's settings.
        genotype_prefix: the variants to estimate from.
        pheno: ``pheno/pheno.tsv``.
        covar: ``pheno/covar.tsv``.
        method: the embedding of ``pheno`` (``vit`` or ``pca``).
        outputs: paths for ``heritability``, ``correlation``, ``summary`` and ``figure``.
        baseline: ``embed/pca/udips.tsv`` to estimate beside it; None: none.
        sample_qc: ``genotypes/sample_qc.tsv`` (its related samples are left out); None: keep all.
        threads: CPU threads of the products.
        progress: show a progress bar.

    Returns:
        Output name -> path.
    """
    started = time.perf_counter()
    torch.set_num_threads(threads)
    phenotypes = load_phenotypes(genotype_prefix, pheno, covar, method, baseline, sample_qc, settings.inverse_normal)
    result, variants, spans = heritability(genotype_prefix, phenotypes, settings, progress)
    groups = _groups(phenotypes.embeddings)
    table = heritability_table(result, phenotypes, variants)
    summary = summary_table(result, phenotypes, groups, variants, spans, settings.random_vectors)
    targets = {name: Path(outputs[name]) for name in ("heritability", "correlation", "summary", "figure")}
    with staged_outputs(targets) as staged:
        write_tsv(table, staged["heritability"])
        write_tsv(correlation_table(result, phenotypes), staged["correlation"])
        write_tsv(summary, staged["summary"])
        primary = groups[0]
        plot_heritability(table, result.estimates.rg[np.ix_(primary, primary)],
                          result.phenotypic_r[np.ix_(primary, primary)], staged["figure"])
    for row in summary.itertuples(index=False):
        logger.info("%s: mean h2 %.3f (SE %.3f), median %.3f, largest %.3f (%s), %d of %d dimensions above 2 SE; "
                    "SE: %s", row.embedding, row.mean_h2, row.mean_h2_se, row.median_h2, row.max_h2,
                    row.max_dimension, row.above_2se, row.dimensions, row.se_note)
    logger.info("heritability of %d phenotypes done in %.1f s", len(phenotypes.names), time.perf_counter() - started)
    return targets
