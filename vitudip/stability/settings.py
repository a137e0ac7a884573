"""The stability check's settings: the config's ``stability`` section (light: read when the workflow starts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class StabilitySettings:
    """Whether and how a second training run is compared with the first.

    Attributes:
        enabled: train, embed and run the GWAS a second time (twice the cost of those stages).
        seed_run1: the first (the study's) run's seed, ``seed``.
        seed_run2: the second run's seed, ``seed`` + ``stability.seed_offset``.
        subjects: ``held_out`` (the subjects of neither model's training split) or ``all`` compared.
        untrained: also compare the two runs' networks as initialised (the untrained reference CKA).
        permutations: subject permutations behind the CKA's null (0: none).
        merge_distance_kb: loci closer than this merge (``loci.merge_distance_kb``, as in loci_merged.tsv).
    """

    enabled: bool
    seed_run1: int
    seed_run2: int
    subjects: str
    untrained: bool
    permutations: int
    merge_distance_kb: float

    #: The config keys the settings come from (the stability script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("stability", "seed", "loci.merge_distance_kb")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StabilitySettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        section = config["stability"]
        return cls(enabled=section["enabled"], seed_run1=config["seed"],
                   seed_run2=config["seed"] + section["seed_offset"],
                   subjects=section["subjects"], untrained=section["untrained"],
                   permutations=section["permutations"], merge_distance_kb=config["loci"]["merge_distance_kb"])

    @property
    def merge_distance_bp(self) -> int:
        return int(round(self.merge_distance_kb * 1000))
