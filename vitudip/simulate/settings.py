"""The simulate stage's settings and the files it writes (light: read when the workflow starts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

#: The simulated cohort's files, relative to ``simulate.outdir``: the contract with every stage that reads them.
COHORT_FILES = {
    "images": "images",
    "samples": "samples.tsv",
    "covariates": "covariates.tsv",
    "bed": "geno.bed",
    "bim": "geno.bim",
    "fam": "geno.fam",
    "truth_loci": "truth/loci.tsv",
    "truth_regions": "truth/regions.tsv",
    "truth_measures": "truth/measures.tsv",
    "known_loci": "known_loci.tsv",
    "genes": "genes.tsv",
}


@dataclass(frozen=True)
class SimulateSettings:
    """The config's ``simulate`` section and the seed, with the rules between its keys checked.

    Args:
        section: the ``simulate`` section, schema defaults filled in (the simulator reads it as is).
        seed: the study seed.

    Raises:
        ValueError: ``age_range`` is not increasing, or an effect is on a chromosome that is not simulated.
    """

    section: Mapping[str, Any]
    seed: int

    #: The config keys the settings come from (the simulate script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("simulate", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SimulateSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        return cls(config["simulate"], config["seed"])

    def __post_init__(self) -> None:
        lo, hi = self.section["age_range"]
        if lo >= hi:
            raise ValueError(f"config key 'simulate.age_range': lower bound {lo} is not below upper bound {hi}")
        if not self.section["enabled"]:
            return
        chromosomes = set(self.section["genotypes"]["chromosomes"])
        for i, effect in enumerate(self.section["effects"]):
            if effect["chromosome"] not in chromosomes:
                raise ValueError(f"config key 'simulate.effects[{i}].chromosome': {effect['chromosome']} is not in "
                                 f"simulate.genotypes.chromosomes {sorted(chromosomes)}")
