"""Subjects of the preprocessing cache, served as float16 batches.

The cache holds z-scored, padded float16 volumes; a batch stays float16 until it
reaches the device, where it is converted, so the host moves half the bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class CachedVolumes(Dataset):
    """Rows of the cache as float16 tensors ``(X, Y, Z)``.

    Rows are read with ``pread`` into fresh arrays rather than through a memory map: a map's pages stay in the
    process's resident memory, so a job that reads every subject (embedding 45,000 at 1 mm: 668 GB) would seem to
    hold them all, to Slurm and to Snakemake's benchmark, although the kernel may reclaim them. The file is
    opened lazily in each process, so workers forked by a DataLoader do not share a descriptor.

    Args:
        cache_dir: ``preprocess/cache`` (holds ``images.npy``).
        rows: cache rows to serve, in order.
    """

    def __init__(self, cache_dir: str | os.PathLike, rows: Sequence[int]) -> None:
        self.path = Path(cache_dir) / "images.npy"
        if not self.path.exists():
            raise FileNotFoundError(f"cache file {self.path} not found: run the preprocess stage first")
        self.rows = np.asarray(rows, dtype=np.int64)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(fh))
            self._offset = fh.tell()
        if fortran or len(shape) != 4:
            raise ValueError(f"cache file {self.path} holds a {len(shape)}-d {'Fortran-ordered ' * fortran}array: "
                             "expected C-ordered (subjects, X, Y, Z) volumes; run the preprocess stage again")
        self.shape: tuple[int, int, int, int] = tuple(shape)
        self.dtype = dtype
        self._row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        self._descriptor: tuple[int, int] | None = None

    @property
    def images(self) -> np.ndarray:
        """The cache memory-mapped, for its shape and type (reading rows through it would map their pages)."""
        return np.load(self.path, mmap_mode="r")

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return self.shape[1:]

    def __len__(self) -> int:
        return len(self.rows)

    def _file(self) -> int:
        """This process's descriptor of the cache file."""
        if self._descriptor is None or self._descriptor[0] != os.getpid():
            self._descriptor = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._descriptor[1]

    def _read_into(self, row: int, out: np.ndarray) -> None:
        if os.preadv(self._file(), [memoryview(out).cast("B")], self._offset + int(row) * self._row_bytes) \
                != self._row_bytes:
            raise ValueError(f"cache file {self.path} ends before row {row}: run the preprocess stage again")

    def read(self, i: int) -> np.ndarray:
        """The ``i``-th served row as a float16 array ``(X, Y, Z)``."""
        volume = np.empty(self.volume_shape, self.dtype)
        self._read_into(self.rows[i], volume)
        return volume

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.read(i))

    def load_all(self) -> torch.Tensor:
        """Every served row in one float16 tensor (for device-resident training)."""
        volumes = np.empty((len(self.rows), *self.volume_shape), self.dtype)
        for i, row in enumerate(self.rows):
            self._read_into(row, volumes[i])
        return torch.from_numpy(volumes)

    def __del__(self) -> None:
        if self._descriptor is not None and self._descriptor[0] == os.getpid():
            os.close(self._descriptor[1])


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled subject order of one epoch: a function of (seed, epoch) only, so a resumed run sees the same
    order."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(n, generator=generator)


class BatchSource:
    """Batches of volumes on the device, from device memory when the whole set fits, else through a loader.

    Args:
        volumes: the subjects to serve.
        batch_size: subjects per batch.
        device: where batches go.
        resident: hold all volumes on the device (``True``), stream them (``False``), or decide by size
            (``None``: resident on a GPU when they take under half of its free memory).
        workers: DataLoader worker processes when streaming.
    """

    def __init__(self, volumes: CachedVolumes, batch_size: int, device: torch.device,
                 resident: bool | None = None, workers: int = 0) -> None:
        self.volumes = volumes
        self.batch_size = batch_size
        self.device = device
        self.workers = workers
        if resident is None:
            resident = device.type == "cuda" and self._fits_on_gpu()
        self.resident = volumes.load_all().to(device) if resident else None

    def _fits_on_gpu(self) -> bool:
        free, _ = torch.cuda.mem_get_info(self.device)
        needed = len(self.volumes) * int(np.prod(self.volumes.volume_shape)) * 2
        return needed < free // 2

    def __len__(self) -> int:
        return (len(self.volumes) + self.batch_size - 1) // self.batch_size

    def batches(self, order: torch.Tensor) -> Iterator[torch.Tensor]:
        """float16 batches ``(B, X, Y, Z)`` on the device, in ``order``."""
        return self.index_batches(list(order.split(self.batch_size)))

    def index_batches(self, batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """float16 batches on the device of the given subjects (indices into ``volumes``), one per tensor.

        The loader's workers read the next batches while the device works on this one.
        """
        if self.resident is not None:
            for index in batches:
                yield self.resident[index.to(self.device)]
            return
        loader = DataLoader(self.volumes, batch_sampler=[index.tolist() for index in batches],
                            num_workers=self.workers, pin_memory=self.device.type == "cuda",
                            persistent_workers=False, multiprocessing_context="fork" if self.workers else None)
        for batch in loader:
            yield batch.to(self.device, non_blocking=True)
