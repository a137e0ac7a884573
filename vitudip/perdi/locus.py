"""Locus-level PerDI: the latent direction of a genomic risk locus, from its lead variant's effects.

A locus's direction is its lead variant's vector of GWAS betas over every
dimension, each read from that dimension's gathered GWAS-SSF file through its
tabix index (:func:`~vitudip.genetics.sumstats.read_sumstats_region`: one region
fetch per locus and file, not the whole file). The lead is found by the one
variant key (chromosome, position and its two alleles, from the merged table's
``lead_uniqID``), its ``lead_snp`` ID is its label. Every
engine writes the ALT allele as the effect allele; a file with the two alleles
the other way round has its beta negated, and a file without the lead's two
alleles at its position is an error.

Units. A beta is the change of the GWAS phenotype per effect allele. Without
``pheno.inverse_normal`` the phenotype is the UDIP itself, so the beta is in
latent units. With it the phenotype is the rank-based inverse-normal transform
of the UDIP, about ``(u - mean) / SD`` for a roughly normal latent, so the beta
is multiplied by the dimension's SD (over the UDIP table's subjects) to come back
to latent units. That mapping is exact for a normal latent and the linear
approximation of the transform otherwise (a skewed dimension's tails are
stretched or squeezed by it).

Size (``perdi.locus_shift``), the latent per-allele effect ``b`` multiplied by:

- ``two_alleles``: 2, two copies of the effect allele against none;
- ``genetic_sd``: ``sqrt(2 f (1 - f))``, one SD of the variant's allele count (f the
  effect allele frequency, Hardy-Weinberg), the shift of one SD of this variant's
  genetic score;
- ``sd_multiple``: ``perdi.sd_multiple / |b / SD|``, the same length in SD units as a
  dimension's ``+k SD`` perturbation, so that locus and dimension maps compare in size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitudip.genetics.sumstats import read_sumstats_region, ssf_chromosome
from vitudip.io.stage_tables import LOCI_MERGED, udip_columns

#: The sizes of a locus direction (``perdi.locus_shift``); the module docstring defines them.
LOCUS_SHIFTS = ("two_alleles", "genetic_sd", "sd_multiple")

#: A gathered GWAS-SSF file of one dimension: ``<sumstats>/<dimension><SUMSTATS_SUFFIX>``.
SUMSTATS_SUFFIX = ".tsv.gz"

#: Leading columns of ``perdi/locus_directions.tsv``; one column per dimension (its latent shift) follows.
DIRECTION_COLUMNS = ["locus", "lead_snp", "chromosome", "lead_position", "effect_allele", "other_allele",
                     "effect_allele_frequency", "locus_shift", "multiplier", "sd_length"]


@dataclass(frozen=True)
class LocusLead:
    """A merged locus and its lead variant.

    Attributes:
        locus: the locus number of loci_merged.tsv.
        chromosome: GWAS-SSF chromosome number.
        position: the lead variant's base-pair position.
        variant_id: the lead variant's id (``lead_snp``), its label.
        alleles: its two alleles in alphabetical order (as FUMA's uniqID, ``lead_uniqID``).
    """

    locus: int
    chromosome: int
    position: int
    variant_id: str
    alleles: tuple[str, str]

    @property
    def name(self) -> str:
        """``locus_NNN``, the stem of the locus's maps and panel (as the loci stage's regional plots)."""
        return f"locus_{self.locus:03d}"


def locus_leads(loci_path: str | os.PathLike) -> list[LocusLead]:
    """Every locus of a merged loci table with its lead variant, in the table's order.

    Args:
        loci_path: ``loci/loci_merged.tsv`` (locus, chromosome, lead_snp, lead_uniqID, lead_position).

    Raises:
        ValueError: a missing column, a locus number or position that is not a whole number, an empty lead_snp,
            a lead_uniqID that is not chromosome:position:allele:allele, or an unknown chromosome, naming the file
            and line.
    """
    table = LOCI_MERGED.read(loci_path, columns=["locus", "chromosome", "lead_snp", "lead_uniqID", "lead_position"],
                             text_only=True)
    leads = []
    for position, row in enumerate(table.itertuples(index=False)):
        where = f"{loci_path} line {position + 2}"
        try:
            locus, lead_position = int(row.locus), int(row.lead_position)
        except ValueError:
            raise ValueError(f"{where}: locus '{row.locus}' and lead_position '{row.lead_position}' must be "
                             "whole numbers") from None
        if not row.lead_snp:
            raise ValueError(f"{where}: locus {locus} has no lead_snp")
        parts = row.lead_uniqID.split(":")
        if len(parts) != 4 or not all(parts[2:]):
            raise ValueError(f"{where}: lead_uniqID '{row.lead_uniqID}' of locus {locus} is not "
                             "chromosome:position:allele:allele")
        try:
            chromosome = ssf_chromosome(row.chromosome)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        leads.append(LocusLead(locus, chromosome, lead_position, row.lead_snp, tuple(sorted(parts[2:]))))
    return leads


@dataclass(frozen=True)
class LeadEffects:
    """A lead variant's GWAS effects on every dimension, aligned to one effect allele.

    Attributes:
        lead: the locus and its lead variant.
        effect_allele: the allele the betas count (ALT, as the GWAS stage writes).
        other_allele: the other one.
        frequency: effect allele frequency, the mean over the dimensions' files.
        beta: ``(n_dims,)`` effect per effect allele on each dimension's GWAS phenotype.
    """

    lead: LocusLead
    effect_allele: str
    other_allele: str
    frequency: float
    beta: np.ndarray


#: The columns of a dimension's file a lead variant's effect is read from.
_LEAD_COLUMNS = ["base_pair_location", "effect_allele", "other_allele", "beta", "effect_allele_frequency"]


def _lead_row(path: Path, lead: LocusLead) -> pd.Series:
    """The lead variant's row of one tabix-indexed file, found by the variant key."""
    rows = read_sumstats_region(path, lead.chromosome, lead.position, lead.position, _LEAD_COLUMNS)
    pairs = [tuple(sorted(pair)) for pair in zip(rows["effect_allele"], rows["other_allele"])]
    found = np.flatnonzero((rows["base_pair_location"].to_numpy() == lead.position)
                           & np.array([pair == lead.alleles for pair in pairs], dtype=bool))
    if found.size == 0:
        raise ValueError(f"{path}: no line for lead variant {lead.variant_id} of locus {lead.locus} (chromosome "
                         f"{lead.chromosome}, position {lead.position}, alleles {'/'.join(lead.alleles)}); a locus "
                         "direction needs the variant's beta on every dimension: were the loci found on other "
                         "summary statistics, or was the variant untested for this dimension?")
    return rows.iloc[int(found[0])]


def lead_effects(sumstats_dir: str | os.PathLike, leads: Sequence[LocusLead], dimensions: Sequence[str]) -> list[
        LeadEffects]:
    """Each lead variant's beta on every dimension, from the gathered, tabix-indexed GWAS-SSF files.

    Args:
        sumstats_dir: ``gwas/sumstats`` holding ``<dimension>.tsv.gz`` with its ``.tbi``.
        leads: from :func:`locus_leads`.
        dimensions: the dimensions, in latent order (``udip_000`` …).

    Returns:
        One :class:`LeadEffects` per lead, in order.

    Raises:
        FileNotFoundError: a dimension's file or its tabix index is missing.
        ValueError: a lead variant (chromosome, position and alleles) missing from a file, or a beta or frequency
            that is not a number; each names the file and the variant.
    """
    folder = Path(sumstats_dir)
    betas = np.full((len(leads), len(dimensions)), np.nan)
    frequencies = np.full((len(leads), len(dimensions)), np.nan)
    alleles: list[tuple[str, str] | None] = [None] * len(leads)
    for k, dimension in enumerate(tqdm(dimensions, desc="lead betas", unit="file", mininterval=10)):
        path = folder / f"{dimension}{SUMSTATS_SUFFIX}"
        if not Path(f"{path}.tbi").is_file():
            raise FileNotFoundError(f"{path}.tbi not found: locus directions read the gathered GWAS-SSF files "
                                    "through their tabix index (run the gwas_gather step)"
                                    if path.is_file() else f"summary statistics file {path} not found: run the "
                                    "GWAS stage first")
        for i, lead in enumerate(leads):
            row = _lead_row(path, lead)
            pair = (row["effect_allele"], row["other_allele"])
            beta, frequency = float(row["beta"]), float(row["effect_allele_frequency"])
            if not (math.isfinite(beta) and math.isfinite(frequency)):
                raise ValueError(f"{path}: lead variant {lead.variant_id} of locus {lead.locus} has beta {beta} "
                                 f"and effect_allele_frequency {frequency}: both must be numbers")
            if alleles[i] is None:
                alleles[i] = pair
            elif pair == alleles[i][::-1]:
                # the same variant counted by its other allele: the effect of the first file's allele
                beta, frequency = -beta, 1.0 - frequency
            betas[i, k], frequencies[i, k] = beta, frequency
    return [LeadEffects(lead, *alleles[i], float(frequencies[i].mean()), betas[i]) for i, lead in enumerate(leads)]


@dataclass(frozen=True)
class LocusDirection:
    """A locus's latent shift and how it was sized.

    Attributes:
        effects: the lead variant's betas it comes from.
        shift: ``(n_dims,)`` added to every subject's latent, in latent units.
        multiplier: the per-allele latent effect times this is ``shift`` (2 for ``two_alleles``).
        sd_length: ``|shift / SD|``, the shift's length in SDs of the dimensions.
    """

    effects: LeadEffects
    shift: np.ndarray
    multiplier: float
    sd_length: float


def locus_direction(effects: LeadEffects, latent_sd: np.ndarray, inverse_normal: bool, size: str,
                    sd_multiple: float) -> LocusDirection:
    """A lead variant's betas as a latent shift of the chosen size (see the module docstring).

    Args:
        effects: from :func:`lead_effects`.
        latent_sd: ``(n_dims,)`` SD of each latent dimension over the subjects (the GWAS sample).
        inverse_normal: the GWAS phenotypes were inverse-normal transformed (``pheno.inverse_normal``):
            betas are in SD units and are multiplied by ``latent_sd``.
        size: one of :data:`LOCUS_SHIFTS` (``perdi.locus_shift``).
        sd_multiple: the length in SD units for ``sd_multiple`` (``perdi.sd_multiple``).

    Raises:
        ValueError: an unknown size, or an ``sd_multiple`` direction of length 0.
    """
    if size not in LOCUS_SHIFTS:
        raise ValueError(f"perdi.locus_shift must be one of {', '.join(LOCUS_SHIFTS)}, got '{size}'")
    sd = np.asarray(latent_sd, dtype=np.float64)
    per_allele = effects.beta * sd if inverse_normal else effects.beta.astype(np.float64)
    # a dimension that does not vary has no SD scale: it adds nothing to the length
    with np.errstate(divide="ignore", invalid="ignore"):
        in_sd = np.where(sd > 0, per_allele / sd, 0.0)
    per_allele_length = float(np.linalg.norm(in_sd))
    if size == "two_alleles":
        multiplier = 2.0
    elif size == "genetic_sd":
        multiplier = math.sqrt(2.0 * effects.frequency * (1.0 - effects.frequency))
    else:
        if per_allele_length == 0:
            raise ValueError(f"lead variant {effects.lead.variant_id} of locus {effects.lead.locus} has no effect "
                             "on any varying dimension: its direction cannot be scaled to perdi.sd_multiple")
        multiplier = sd_multiple / per_allele_length
    return LocusDirection(effects, per_allele * multiplier, multiplier, per_allele_length * abs(multiplier))


def direction_table(directions: Sequence[LocusDirection], size: str, n_dims: int) -> pd.DataFrame:
    """``perdi/locus_directions.tsv``: each locus's lead variant, how its shift was sized, and the shift.

    Args:
        directions: from :func:`locus_direction`, each over ``n_dims`` dimensions.
        size: ``perdi.locus_shift``.
        n_dims: latent width (the shift columns ``udip_000`` …; a header without loci still has them).
    """
    rows = []
    for direction in directions:
        effects, lead = direction.effects, direction.effects.lead
        rows.append([lead.locus, lead.variant_id, lead.chromosome, lead.position, effects.effect_allele,
                     effects.other_allele, effects.frequency, size, direction.multiplier, direction.sd_length,
                     *direction.shift])
    return pd.DataFrame(rows, columns=[*DIRECTION_COLUMNS, *udip_columns(n_dims)])
