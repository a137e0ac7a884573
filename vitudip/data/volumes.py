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
    """Rows of the memory-mapped cache as float16 tensors ``(X, Y, Z)``.

    The memmap is opened lazily in each process, so workers forked by a
    DataLoader do not share one file handle.

    Args:
        cache_dir: ``preprocess/cache`` (holds ``images.npy``).
        rows: cache rows to serve, in order.
    """

    def __init__(self, cache_dir: str | os.PathLike, rows: Sequence[int]) -> None:
        self.path = Path(cache_dir) / "images.npy"
        if not self.path.exists():
            raise FileNotFoundError(f"cache file {self.path} not found: run the preprocess stage first")
        self.rows = np.asarray(rows, dtype=np.int64)
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.path, mmap_mode="r")
        return self._images

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[self.rows[i]]))

    def load_all(self) -> torch.Tensor:
        """Every served row in one float16 tensor (for device-resident training)."""
        return torch.from_numpy(np.array(self.images[self.rows]))


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
