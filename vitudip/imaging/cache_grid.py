"""The ``grid.json`` contract: how a cache row maps back to the input grid, written and read here.

The preprocess stage writes ``grid.json`` beside ``images.npy``; training and the maps read it back,
so the writer and the reader live together.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitudip.imaging import grid

#: Element type of the cache's volumes, recorded in ``grid.json``.
CACHE_DTYPE = np.float16
#: The file beside ``images.npy`` that says how the cache maps back to the input grid.
GRID_FILE = "grid.json"
#: The fields every record holds; ``input_grid`` is not among them (see :meth:`CacheGrid.from_json`).
_GRID_FIELDS = ("input_shape", "input_affine", "downsample", "coarse_shape", "coarse_affine", "pad_to", "pad_offsets")


@dataclass(frozen=True)
class CacheGrid:
    """How a cache row maps back to the input grid: downsampled by blocks, then padded.

    Attributes:
        input_grid: name of the input images' grid (:data:`~vitudip.imaging.grid.STANDARD_GRIDS`, or
            ``unchecked`` when the affine was not checked).
        input_shape: the input images' shape.
        input_affine: the input images' own affine (voxel → MNI mm).
        downsample: block-averaging factor.
        coarse_shape: shape after the block averaging.
        coarse_affine: affine after the block averaging.
        pad_to: the cache volumes' shape.
        pad_offsets: leading zero-padding per axis.
    """

    input_grid: str
    input_shape: tuple[int, int, int]
    input_affine: np.ndarray
    downsample: int
    coarse_shape: tuple[int, int, int]
    coarse_affine: np.ndarray
    pad_to: tuple[int, int, int]
    pad_offsets: tuple[int, int, int]

    def cache_affine(self) -> np.ndarray:
        """Affine of the padded cache grid: the coarse grid shifted by the leading padding."""
        shift = np.eye(4)
        shift[:3, 3] = -np.asarray(self.pad_offsets, dtype=float)
        return self.coarse_affine @ shift

    def to_json(self) -> dict:
        """The grid as a JSON-ready record (what ``grid.json`` and the trained model hold)."""
        return {
            "input_grid": self.input_grid,
            "input_shape": list(self.input_shape),
            "input_affine": self.input_affine.tolist(),
            "downsample": self.downsample,
            "coarse_shape": list(self.coarse_shape),
            "coarse_affine": self.coarse_affine.tolist(),
            "pad_to": list(self.pad_to),
            "pad_offsets": list(self.pad_offsets),
            "cache_affine": self.cache_affine().tolist(),
        }

    def write(self, cache_dir: str | os.PathLike, n_rows: int) -> Path:
        """Write ``cache_dir/grid.json`` for a cache of ``n_rows`` rows; read it back with :meth:`read`.

        Args:
            cache_dir: the cache folder.
            n_rows: rows of ``images.npy``.

        Returns:
            The file written.
        """
        path = Path(cache_dir) / GRID_FILE
        record = {**self.to_json(), "dtype": np.dtype(CACHE_DTYPE).name, "n_rows": n_rows}
        path.write_text(json.dumps(record, indent=2))
        return path

    @classmethod
    def from_json(cls, record: dict, source: str) -> CacheGrid:
        """The grid of a :meth:`to_json` record.

        A record written before grids were named has no ``input_grid``: its affine was then always
        a standard grid's, which names it.

        Args:
            record: the parsed record.
            source: where it came from, for messages (a file).

        Raises:
            ValueError: a missing or malformed field, naming ``source``.
        """
        try:
            values = {name: record[name] for name in _GRID_FIELDS}
            input_affine = np.asarray(values["input_affine"], dtype=float)
            coarse_affine = np.asarray(values["coarse_affine"], dtype=float)
            if input_affine.shape != (4, 4) or coarse_affine.shape != (4, 4):
                raise ValueError("an affine is not 4 x 4")
            input_shape = tuple(int(n) for n in values["input_shape"])
            name = record.get("input_grid")
            if name is None:
                known = grid.recognise_grid(input_shape, input_affine)
                name = known.name if known is not None else grid.UNCHECKED_GRID
            return cls(
                input_grid=str(name),
                input_shape=input_shape,
                input_affine=input_affine,
                downsample=int(values["downsample"]),
                coarse_shape=tuple(int(n) for n in values["coarse_shape"]),
                coarse_affine=coarse_affine,
                pad_to=tuple(int(n) for n in values["pad_to"]),
                pad_offsets=tuple(int(n) for n in values["pad_offsets"]),
            )
        except KeyError as err:
            raise ValueError(f"{source} lacks the field {err}: rerun the preprocess stage") from None
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source} is not a cache grid description ({err}): rerun the preprocess stage") from None

    @classmethod
    def read(cls, cache_dir: str | os.PathLike) -> CacheGrid:
        """The grid the preprocess stage wrote beside its cache (``cache_dir/grid.json``, by :meth:`write`).

        Args:
            cache_dir: the cache folder.

        Raises:
            FileNotFoundError: no ``grid.json``.
            ValueError: it is not JSON or lacks a field, naming the file.
        """
        path = Path(cache_dir) / GRID_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the preprocessing cache describes its grid there "
                                    "(rerun the preprocess stage)")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}): rerun the preprocess stage") from None
        return cls.from_json(record, str(path))


def cache_grid(input_grid: grid.StandardGrid, downsample: int, pad_to: Sequence[int]) -> CacheGrid:
    """The grids a cache goes through: input grid, block-downsampled grid, padded grid.

    Args:
        input_grid: the input images' grid.
        downsample: block-averaging factor.
        pad_to: the padded shape.

    Returns:
        The cache's grid description.

    Raises:
        ValueError: ``pad_to`` smaller than the downsampled grid.
    """
    factor = int(downsample)
    coarse_shape = tuple(s // factor for s in input_grid.shape)
    target = tuple(int(p) for p in pad_to)
    if any(p < c for p, c in zip(target, coarse_shape)):
        raise ValueError(
            f"preprocess.pad_to {target} is smaller than the image grid {coarse_shape} "
            f"({input_grid.name} grid downsampled by {factor})"
        )
    return CacheGrid(
        input_grid=input_grid.name,
        input_shape=input_grid.shape,
        input_affine=np.asarray(input_grid.affine, dtype=float),
        downsample=factor,
        coarse_shape=coarse_shape,
        coarse_affine=grid.block_affine(input_grid.affine, factor),
        pad_to=target,
        pad_offsets=grid.pad_offsets(coarse_shape, target),
    )
