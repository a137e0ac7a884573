"""How many traits an embedding really holds: the spectrum of its correlation matrix.

128 columns can be three traits in disguise. The participation ratio
``(sum λ)² / sum λ²`` of the correlation eigenvalues counts the effective number of
independent dimensions (128 for uncorrelated columns, 1 for copies of one trait); the
number of components that hold 90 % of the variance says the same another way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitudip.io.tables import Table

log = logging.getLogger("vitudip.embed")

#: Below this participation ratio an embedding is reported as collapsed (of 128 dimensions).
LOW_PARTICIPATION_RATIO = 16.0

#: Share of the variance that ``dims_90pct`` counts components for.
VARIANCE_SHARE = 0.9

SPECTRUM_COLUMNS = ["component", "eigenvalue", "variance_fraction", "cumulative_fraction"]
HEALTH_COLUMNS = ["embedding", "subjects", "dimensions", "constant_dimensions", "participation_ratio",
                  "dims_90pct", "status"]
#: ``embed/spectrum.tsv`` and ``embed/health.tsv`` (also under ``embed/pca/``), read by the report.
SPECTRUM = Table("embedding spectrum", required=tuple(SPECTRUM_COLUMNS), integers=("component",),
                 numbers=tuple(SPECTRUM_COLUMNS[1:]), writer="the embed stage")
HEALTH = Table("embedding health table", required=tuple(HEALTH_COLUMNS), text=("embedding", "status"),
               writer="the embed stage")


def correlation_eigenvalues(features: np.ndarray) -> tuple[np.ndarray, int]:
    """Eigenvalues (descending) of the correlation matrix of the columns, and how many columns are constant.

    Constant columns carry nothing; they get eigenvalue 0 rather than making the matrix undefined.

    Args:
        features: ``(n, d)`` with ``n >= 2``.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"an embedding spectrum needs a 2-D table of at least 2 subjects, got shape {features.shape}")
    centred = features - features.mean(0)
    sd = centred.std(0)
    constant = sd <= 1e-12 * max(float(np.abs(features).max()), 1.0)
    z = np.where(constant, 0.0, centred / np.where(constant, 1.0, sd))
    # the n x n Gram matrix when there are fewer subjects than dimensions: the same nonzero eigenvalues
    small = z @ z.T if z.shape[0] < z.shape[1] else z.T @ z
    eigenvalues = np.linalg.eigvalsh(small / z.shape[0])[::-1].clip(min=0.0)
    padded = np.zeros(z.shape[1])
    padded[: min(len(eigenvalues), z.shape[1])] = eigenvalues[: z.shape[1]]
    return padded, int(constant.sum())


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """``(sum λ)² / sum λ²``: 1 for one trait, the number of dimensions for independent ones; 0 if all are 0."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    squares = float(np.sum(eigenvalues**2))
    return float(np.sum(eigenvalues) ** 2 / squares) if squares > 0 else 0.0


def dims_for_share(eigenvalues: np.ndarray, share: float = VARIANCE_SHARE) -> int:
    """Fewest leading components whose eigenvalues hold ``share`` of the total."""
    eigenvalues = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    total = eigenvalues.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(eigenvalues) / total, share - 1e-12) + 1)


@dataclass
class Spectrum:
    """An embedding's correlation spectrum and what it says.

    Attributes:
        eigenvalues: descending, one per dimension.
        constant_dimensions: columns that do not vary.
        subjects: rows it was computed on.
    """

    eigenvalues: np.ndarray
    constant_dimensions: int
    subjects: int

    @classmethod
    def of(cls, features: np.ndarray) -> Spectrum:
        eigenvalues, constant = correlation_eigenvalues(features)
        return cls(eigenvalues, constant, int(np.asarray(features).shape[0]))

    @property
    def dimensions(self) -> int:
        return len(self.eigenvalues)

    @property
    def participation_ratio(self) -> float:
        return participation_ratio(self.eigenvalues)

    @property
    def dims_90pct(self) -> int:
        return dims_for_share(self.eigenvalues)

    def is_low(self, threshold: float = LOW_PARTICIPATION_RATIO) -> bool:
        """Fewer effective dimensions than ``threshold`` (or all of them, for smaller embeddings)."""
        return self.participation_ratio < min(threshold, self.dimensions)

    def status(self, threshold: float = LOW_PARTICIPATION_RATIO) -> str:
        """``ok``, or a one-line warning a user can act on."""
        if not self.is_low(threshold):
            return "ok"
        return (f"low: participation ratio {self.participation_ratio:.1f} of {self.dimensions} dimensions "
                f"(< {min(threshold, self.dimensions):g}); {self.dims_90pct} components hold 90 % of the "
                f"variance, so the columns are a few traits in disguise and per-dimension GWAS will miss what "
                f"they do not carry")

    def table(self) -> pd.DataFrame:
        """``SPECTRUM_COLUMNS``, one row per component."""
        total = self.eigenvalues.sum()
        fraction = self.eigenvalues / total if total > 0 else np.zeros_like(self.eigenvalues)
        return pd.DataFrame({"component": np.arange(1, self.dimensions + 1), "eigenvalue": self.eigenvalues,
                             "variance_fraction": fraction, "cumulative_fraction": np.cumsum(fraction)})

    def health_row(self, embedding: str) -> dict:
        """One row of ``HEALTH_COLUMNS``."""
        return {"embedding": embedding, "subjects": self.subjects, "dimensions": self.dimensions,
                "constant_dimensions": self.constant_dimensions,
                "participation_ratio": round(self.participation_ratio, 3), "dims_90pct": self.dims_90pct,
                "status": self.status()}


def write_spectrum(features: np.ndarray, embedding: str, spectrum_path: str | os.PathLike,
                   health_path: str | os.PathLike) -> Spectrum:
    """Write an embedding's ``spectrum.tsv`` and one-row ``health.tsv``, logging a warning when it is collapsed.

    Args:
        features: ``(n, d)`` the embedding.
        embedding: its name in ``health.tsv`` and the log (``vit``, ``pca``).
        spectrum_path, health_path: where to write.
    """
    spectrum = Spectrum.of(features)
    SPECTRUM.write(spectrum.table(), spectrum_path)
    HEALTH.write(pd.DataFrame([spectrum.health_row(embedding)], columns=HEALTH_COLUMNS), health_path)
    log.info("%s embedding: participation ratio %.1f of %d dimensions, %d components hold 90 %% of the variance",
             embedding, spectrum.participation_ratio, spectrum.dimensions, spectrum.dims_90pct)
    if spectrum.is_low():
        log.warning("%s embedding is collapsed: %s", embedding, spectrum.status())
    return spectrum


def read_spectrum(path: str | os.PathLike) -> pd.DataFrame:
    """A ``spectrum.tsv`` as written by :func:`write_spectrum` (one reader for the file)."""
    return SPECTRUM.read(path)


def read_health(path: str | os.PathLike) -> pd.DataFrame:
    """A ``health.tsv`` as written by :func:`write_spectrum`."""
    return HEALTH.read(path)
