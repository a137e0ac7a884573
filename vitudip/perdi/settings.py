"""How the PerDI stage runs: the settings it reads from the config, importable without PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass
class PerdiSettings:
    """How the PerDI stage perturbs, tests, smooths and ranks (the config's ``perdi`` section and the seed).

    Attributes:
        n_subjects: subjects whose latents are perturbed: the first ones of the UDIP table.
        sd_multiple: the perturbation, in SDs of the dimension over those subjects.
        locus_shift: the size of each locus's direction (its lead variant's betas in latent units):
            ``two_alleles``, ``genetic_sd`` or ``sd_multiple`` (:mod:`vitudip.perdi.locus`).
        dimensions: ``all``, ``loci`` (every dimension named in the merged loci table) or ``leads``
            (each locus's lead dimension: a few maps instead of every dimension touching a locus).
        rank_by: the map whose smoothed magnitude ranks the regions and fills the panels:
            ``change`` (mean decoded change, how much the brain changes) or ``t`` (the
            published paired t, how consistently it changes across subjects).
        smoothing_sigma: Gaussian SD of the smoothing, in voxels of the input grid.
        top_fraction: share of brain voxels (by the ranked map) that counts as the top for ``top_fraction_excess``.
        permutations: label permutations of ``permutation_p``.
        atlas_threshold: Harvard-Oxford probability (percent) a voxel needs for a label.
        batch_size: latents per decoder call.
        device: ``auto`` (CUDA when present), ``cuda`` or ``cpu``.
        overview_dimensions: rows of the overview figure when no loci table says which dimensions to show.
        seed: seed of the permutations.
        inverse_normal: the GWAS phenotypes were inverse-normal transformed (``pheno.inverse_normal``), so
            the betas of a locus direction are in SD units.
    """

    n_subjects: int
    sd_multiple: float
    locus_shift: str
    dimensions: str
    rank_by: str
    smoothing_sigma: float
    top_fraction: float
    permutations: int
    atlas_threshold: float
    batch_size: int
    device: str
    overview_dimensions: int
    seed: int
    inverse_normal: bool

    #: The config keys the settings come from (the perdi script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("perdi", "seed", "pheno.inverse_normal")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PerdiSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`), which checked each value.

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        return cls(**config["perdi"], seed=config["seed"], inverse_normal=config["pheno"]["inverse_normal"])
