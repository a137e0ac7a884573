"""The ``replication`` section of the config.

Light (standard library only), so the workflow builds it from the config when it starts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

#: How the analysed subjects are split.
SPLITS = ("fraction", "file", "covariate")


@dataclass
class ReplicationSettings:
    """How the analysed subjects are split into discovery and replication, and what counts as replicated.

    Args:
        enabled: split the subjects and test the discovery loci in the replication set.
        split: ``fraction`` (a seeded random share), ``file`` (a list of the replication IIDs) or ``covariate``
            (the subjects with some levels of a column of the covariates file, e.g. assessment centre).
        fraction: share of the subjects in the replication set (``fraction``).
        file: file of the replication set's IIDs (``file``): one per line, or a table with an IID column.
        covariate: the covariates file's column (``covariate``).
        levels: its levels that form the replication set (``covariate``).
        p_threshold: a lead replicates with p below this and the discovery's sign (Patel et al. 2024).
        seed: seed of the ``fraction`` split.
    """

    enabled: bool
    split: str
    fraction: float
    file: str | None
    covariate: str | None
    levels: list[str]
    p_threshold: float
    seed: int

    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("replication", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ReplicationSettings:
        """The settings of a validated config (schema defaults filled in)."""
        section = copy.deepcopy(dict(config["replication"]))
        section["levels"] = [str(level) for level in section["levels"]]
        return cls(seed=int(config["seed"]), **section)

    def __post_init__(self) -> None:
        # the schema checks each value; these are the rules between the section's keys
        if not self.enabled:
            return
        if self.split == "file" and not self.file:
            raise ValueError("config key 'replication.file' is empty, but replication.split is file: name the file "
                             "of the replication set's IIDs")
        if self.split == "covariate" and not (self.covariate and self.levels):
            raise ValueError("config keys 'replication.covariate' and 'replication.levels': replication.split is "
                             "covariate, so name the covariates file's column and the levels that form the "
                             "replication set")
