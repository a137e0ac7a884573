"""How the embed stage runs: the config's ``embed`` section, the seed and the device training used."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class EmbedSettings:
    """What the embed script reads from the config.

    Args:
        splits: which splits get UDIPs (``embed.splits``).
        batch_size: subjects per forward pass (``embed.batch_size``).
        pca_components: components of the PCA baseline (``embed.pca_components``).
        seed: seeds the PCA's randomised solver.
        device: where the encoder runs (``train.device``: the embed stage has no device of its own).
    """

    splits: tuple[str, ...]
    batch_size: int
    pca_components: int
    seed: int
    device: str

    #: The config keys the settings come from (the embed script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("embed", "seed", "train.device")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EmbedSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        embed = config["embed"]
        return cls(splits=tuple(embed["splits"]), batch_size=embed["batch_size"],
                   pca_components=embed["pca_components"], seed=config["seed"], device=config["train"]["device"])
