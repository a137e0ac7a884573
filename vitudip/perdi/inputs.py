"""What PerDI maps: the subjects and their latents, and the dimensions.

The latents are read from the embed stage's UDIP table: a UDIP vector is the
encoder's mean output token, i.e. exactly the latent the decoder takes. The table
holds six significant digits (a relative rounding of at most 5e-6, far below the
+1 SD perturbation), and it is the latent the GWAS saw, so the encoder is not run
again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from vitudip.io.stage_tables import LOCI_MERGED, UDIP_PREFIX, read_qc, read_udips, udip_columns

#: the loci table column that names the dimensions of each mode that reads it
LOCI_COLUMNS = {"loci": "dimensions", "leads": "lead_dimension"}
_DIMENSION = re.compile(rf"^{UDIP_PREFIX}(\d+)$")


def subject_latents(udips_path: str | os.PathLike, qc_path: str | os.PathLike, n_subjects: int,
                    n_dims: int) -> tuple[list[str], np.ndarray]:
    """The first ``n_subjects`` subjects of the UDIP table (all when fewer) and their latents.

    The UDIP table lists QC-passed subjects in cache order, so these are the first
    QC-passed subjects (of the embedded splits).

    Args:
        udips_path: ``embed/udips.tsv`` (FID, IID, udip_000 …).
        qc_path: ``preprocess/qc.tsv``; every chosen subject must have passed QC there.
        n_subjects: how many subjects to take.
        n_dims: the model's latent width; the table must hold exactly ``udip_000`` … ``udip_{n_dims-1}``.

    Returns:
        subject ids and float32 latents ``(n, n_dims)``.

    Raises:
        ValueError: a dimension missing from (or extra in) the table, a subject not QC-passed in the cache,
            a missing latent, or fewer than 2 subjects.
    """
    table = read_udips(udips_path)
    expected = udip_columns(n_dims)
    present = [c for c in table.columns if c.startswith(UDIP_PREFIX)]
    missing = [c for c in expected if c not in present]
    if missing:
        raise ValueError(f"{udips_path} lacks dimension {missing[0]}"
                         f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}: the model has {n_dims}")
    extra = [c for c in present if c not in expected]
    if extra:
        raise ValueError(f"{udips_path} has dimension {extra[0]} but the model has only {n_dims}: "
                         "was the table made by another model?")
    chosen = table.head(n_subjects)
    if len(chosen) < 2:
        raise ValueError(f"a paired t-test needs at least 2 subjects: {n_subjects} asked for, "
                         f"{len(table)} in {udips_path}")
    qc = read_qc(qc_path)
    passed = set(qc.loc[qc["status"] == "ok", "subject_id"])
    absent = [s for s in chosen["IID"] if s not in passed]
    if absent:
        raise ValueError(f"subject '{absent[0]}' of {udips_path} is not a QC-passed subject of the preprocessing "
                         f"cache ({qc_path}): the UDIPs and the cache come from different runs")
    latents = chosen[expected].to_numpy(np.float64)
    bad = ~np.isfinite(latents)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{udips_path}: subject '{chosen['IID'].iloc[row]}' has no value for {expected[col]}")
    return list(chosen["IID"]), latents.astype(np.float32)


def loci_dimensions(loci_path: str | os.PathLike, n_dims: int, column: str = "dimensions") -> list[int]:
    """Dimensions named in a merged loci table's ``dimensions`` column (``udip_007;udip_012``).

    Args:
        loci_path: ``loci/loci_merged.tsv``.
        n_dims: the model's latent width.
        column: ``dimensions`` (every dimension reaching a locus) or ``lead_dimension`` (the one with its lead SNP).

    Returns:
        sorted distinct dimension indices (empty when the table has no locus).

    Raises:
        ValueError: no ``dimensions`` column, or a name that is not a dimension of the model.
    """
    loci = LOCI_MERGED.read(loci_path, columns=[column])
    dims = set()
    for position, cell in enumerate(loci[column]):
        for name in filter(None, (part.strip() for part in cell.split(";"))):
            match = _DIMENSION.match(name)
            if not match or int(match.group(1)) >= n_dims:
                raise ValueError(f"{loci_path} line {position + 2}: '{name}' is not a dimension of the model "
                                 f"({UDIP_PREFIX}000 … {UDIP_PREFIX}{n_dims - 1:03d})")
            dims.add(int(match.group(1)))
    return sorted(dims)


def mapped_dimensions(mode: str, n_dims: int, loci: Sequence[int] | None) -> list[int]:
    """The dimensions to map: ``all``, or the ones with loci (every one, or each locus's lead).

    Args:
        mode: ``perdi.dimensions`` (the config schema names the modes).
        n_dims: dimensions of the model.
        loci: the dimensions the loci table names, or None without one.

    Raises:
        ValueError: ``loci`` or ``leads`` without a loci table.
    """
    if mode == "all":
        return list(range(n_dims))
    if loci is None:
        raise ValueError(f"perdi.dimensions is '{mode}' but no loci table (loci_merged.tsv) was given")
    return list(loci)


def udip_sd(udips_path: str | os.PathLike, n_dims: int) -> np.ndarray:
    """Sample SD (n - 1) of every dimension over all subjects of the UDIP table (the GWAS sample before exclusions).

    Args:
        udips_path: ``embed/udips.tsv``.
        n_dims: the model's latent width (``udip_000`` … ``udip_{n_dims-1}``).

    Returns:
        float64 ``(n_dims,)``; missing values are left out.
    """
    return read_udips(udips_path)[udip_columns(n_dims)].std(ddof=1).to_numpy(np.float64)
