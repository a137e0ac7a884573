"""The loci stage's settings: the config's ``loci`` section (light: read when the workflow starts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class FumaSettings:
    """Thresholds and options of the FUMA definitions (see :mod:`vitudip.loci.fuma`).

    Built from the config's ``loci`` section (:meth:`LociSettings.from_config`), whose
    schema holds the defaults (FUMA's) and checks each value.
    """

    p_threshold: float
    candidate_p: float
    r2: float
    lead_r2: float
    window_kb: float
    merge_distance_kb: float
    min_maf: float
    exclude_mhc: bool
    genome_build: str
    ld_method: str

    def __post_init__(self) -> None:
        # the rules between keys, which the schema cannot express
        pairs = [("p_threshold", "candidate_p", "an independent significant SNP is its own candidate"),
                 ("lead_r2", "r2", "lead SNPs are re-clumped from the independent significant SNPs")]
        for low, high, why in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"config keys 'loci.{low}' ({getattr(self, low):g}) and 'loci.{high}' "
                                 f"({getattr(self, high):g}): need {low} <= {high} ({why})")

    @property
    def window_bp(self) -> int:
        return int(round(self.window_kb * 1000))

    @property
    def merge_distance_bp(self) -> int:
        return int(round(self.merge_distance_kb * 1000))



@dataclass(frozen=True)
class LociSettings:
    """How the loci stage finds, filters and draws loci: the config's ``loci`` section.

    Its ``ld_reference`` is not here: it says which filesets the stage gets as ``ld_genotypes``.

    Attributes:
        fuma: the FUMA thresholds and options.
        skip_missing_ld: drop significant SNPs the LD reference lacks instead of failing.
        regional_flank_kb: regional plots show this much beyond each locus.
    """

    fuma: FumaSettings
    skip_missing_ld: bool
    regional_flank_kb: float

    #: The config keys the settings come from (the loci script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("loci",)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LociSettings:
        """The settings of a validated config's ``loci`` section (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        section = config["loci"]
        fuma = FumaSettings(**{f.name: section[f.name] for f in fields(FumaSettings)})
        return cls(fuma, section["skip_missing_ld"], section["regional_flank_kb"])
