"""The UDIP table format shared by every embedding method."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

UDIP_PREFIX = "udip_"


def udip_columns(n: int) -> list[str]:
    """``udip_000`` … for ``n`` dimensions."""
    return [f"{UDIP_PREFIX}{i:03d}" for i in range(n)]


def udip_table(subject_ids: list[str], values: np.ndarray) -> pd.DataFrame:
    """FID, IID (both the subject id, as in the genotype files), then one column per dimension."""
    table = pd.DataFrame(values, columns=udip_columns(values.shape[1]))
    table.insert(0, "IID", subject_ids)
    table.insert(0, "FID", subject_ids)
    return table


def read_udips(path: str | os.PathLike) -> pd.DataFrame:
    """Read a UDIP table with string ids."""
    table = pd.read_csv(path, sep="\t", dtype={"FID": str, "IID": str})
    if not any(c.startswith(UDIP_PREFIX) for c in table.columns):
        raise ValueError(f"{path} has no {UDIP_PREFIX}NNN columns")
    return table


def udip_matrix(table: pd.DataFrame) -> np.ndarray:
    return table[[c for c in table.columns if c.startswith(UDIP_PREFIX)]].to_numpy(float)


RECON_COLUMN = "recon_mse"


def recon_table(subject_ids: list[str], errors: np.ndarray) -> pd.DataFrame:
    """``recon_mse.tsv``: FID, IID and each subject's reconstruction MSE over its brain voxels."""
    return pd.DataFrame({"FID": subject_ids, "IID": subject_ids, RECON_COLUMN: errors})


def read_recon_mse(path: str | os.PathLike) -> pd.Series:
    """A ``recon_mse.tsv`` as a float Series indexed by IID."""
    table = pd.read_csv(path, sep="\t", dtype={"FID": str, "IID": str})
    missing = [c for c in ("IID", RECON_COLUMN) if c not in table.columns]
    if missing:
        raise ValueError(f"{path} is not a reconstruction-error table: it lacks column(s) {', '.join(missing)}")
    return table.set_index("IID")[RECON_COLUMN].astype(float)
