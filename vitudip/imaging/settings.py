"""The preprocess stage's settings, checked when they are made.

Light on purpose: it imports no image library, so a config check or a workflow can build the
settings without loading what the conversion needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

#: How far the split fractions' sum may stray from 1 (float rounding of fractions such as 0.7 + 0.15 + 0.15).
_SUM_TOLERANCE = 1e-6


@dataclass
class PreprocessSettings:
    """How :func:`~vitudip.imaging.cohort.preprocess_cohort` reads, normalises, caches and splits the images.

    Making one checks what the config schema cannot (see :meth:`__post_init__`).

    Attributes:
        input_voxel_mm: voxel size of the input MNI grid (1 for UK Biobank, 2 for the demo grid).
        input_grid: ``auto`` (recognise the grid of that voxel size from the images' affines) or a
            name in :data:`~vitudip.imaging.grid.STANDARD_GRIDS` (``fsl_2mm``, ``block_2mm``, ``mni152_1mm``).
        check_affine: refuse images whose affine is not the input grid's.
        downsample: integer block-averaging factor applied after the z-score (1: none).
        pad_to: shape the (downsampled) volume is zero-padded to, centred.
        on_bad_image: ``"exclude"`` records a bad image in the QC table; ``"fail"`` stops at the first.
        split_fractions: train, validation and test fractions of the subjects that pass QC.
        splits_file: TSV (subject_id, split) that replaces the random split when given.
        seed: seed of the random split.
        threads: worker processes converting images.
    """

    input_voxel_mm: int
    input_grid: str
    check_affine: bool
    downsample: int
    pad_to: tuple[int, int, int]
    on_bad_image: str
    split_fractions: tuple[float, float, float]
    splits_file: str | os.PathLike | None
    seed: int
    threads: int

    #: The config keys the settings come from (the preprocess script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("preprocess", "seed")

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, naming the key; the preprocess code checks them nowhere else.

        The schema checks each value of a config, but not how values go together, and callers
        without a config (tests, benchmarks) bypass it.

        Raises:
            ValueError: threads not a positive integer, split fractions that are not three
                non-negative numbers summing to 1 (when they are used: no splits file), or an input
                grid of another voxel size.
        """
        if int(self.threads) != self.threads or self.threads < 1:
            raise ValueError(f"preprocess.threads must be a positive integer, got {self.threads}")
        if self.splits_file is None:
            _check_split_fractions(tuple(self.split_fractions))
        # Imported here, not at the top: the grids pull in scipy, which this module stays free of.
        from vitudip.imaging.grid import grid_choices

        try:
            grid_choices(self.input_grid, self.input_voxel_mm)
        except ValueError as err:
            raise ValueError(f"config key 'preprocess.input_grid': {err}") from None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], threads: int = 1) -> PreprocessSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
            threads: worker processes converting images (the job's ``threads``).
        """
        section, splits = config["preprocess"], config["preprocess"]["splits"]
        return cls(
            input_voxel_mm=section["input_voxel_mm"],
            input_grid=section["input_grid"],
            check_affine=section["check_affine"],
            downsample=section["downsample"],
            pad_to=tuple(section["pad_to"]),
            on_bad_image=section["on_bad_image"],
            split_fractions=(splits["train"], splits["val"], splits["test"]),
            splits_file=splits["file"],
            seed=config["seed"],
            threads=threads,
        )


def _check_split_fractions(fractions: tuple[float, ...]) -> None:
    """Refuse fractions that are not three finite, non-negative numbers summing to 1, naming the config key.

    Args:
        fractions: train, val and test fractions (``preprocess.splits``).

    Raises:
        ValueError: a wrong count, a negative or non-finite fraction, or a sum other than 1.
    """
    where = "config key 'preprocess.splits'"
    if len(fractions) != 3:
        raise ValueError(f"{where}: needs three fractions (train, val, test), got {fractions}")
    if not all(math.isfinite(f) and f >= 0 for f in fractions):
        raise ValueError(f"{where}: train, val and test must be non-negative fractions, got {fractions}")
    total = math.fsum(fractions)
    if abs(total - 1) > _SUM_TOLERANCE:
        raise ValueError(f"{where}: train + val + test must be 1, got {total:g}")
