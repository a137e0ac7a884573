"""One process's rows of a global batch, when several processes train one model (data parallel).

Each process runs the model on its own rows; what depends on the whole batch (the latent penalty, the running
statistics of the latent, the loss's brain-voxel count, nested dropout's draws) is computed from every process's
rows, so that training on ``world`` processes takes the steps one process takes on the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn


def shard_sizes(global_rows: int, world: int) -> list[int]:
    """Rows of a global batch per process: in order, as even as can be (the first ones get one more)."""
    return [len(part) for part in torch.arange(global_rows).tensor_split(world)]


@dataclass(frozen=True)
class BatchShard:
    """This process's rows of a global batch.

    A process with no rows of a (last, short) global batch runs one stand-in row with weight 0, so that it
    still takes part in every collective and in the gradient's reduction.

    Args:
        rank: this process's place in the group.
        world: processes in the group.
        global_rows: subjects in the global batch.
    """

    rank: int
    world: int
    global_rows: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world or self.global_rows < 1:
            raise ValueError(f"a batch shard needs 0 <= rank < world and a non-empty batch, got rank {self.rank}, "
                             f"world {self.world}, {self.global_rows} rows")

    @property
    def sizes(self) -> list[int]:
        return shard_sizes(self.global_rows, self.world)

    @property
    def rows(self) -> int:
        """This process's real rows (0: it runs a stand-in)."""
        return self.sizes[self.rank]

    @property
    def offset(self) -> int:
        """The global batch's row this process's first row is."""
        return sum(self.sizes[:self.rank])

    def local_rows(self, global_rows: torch.Tensor) -> torch.Tensor:
        """This process's rows of something drawn for the whole global batch (the first row for a stand-in)."""
        if self.rows == 0:
            return global_rows[:1]
        return global_rows[self.offset:self.offset + self.rows]

    def weights(self, device: torch.device) -> torch.Tensor:
        """1 per real row, 0 for a stand-in: multiplies per-row terms so a stand-in adds nothing."""
        return torch.full((max(self.rows, 1),), float(self.rows > 0), device=device)

    def mean(self, per_row: torch.Tensor) -> torch.Tensor:
        """This process's share of the global batch's mean of ``per_row`` (the shares sum to the mean)."""
        return (per_row * self.weights(per_row.device)).sum() / self.global_rows

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of a (detached) value over the processes."""
        value = value.detach().clone()
        dist.all_reduce(value)
        return value

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's real rows of ``rows`` in the global batch's order; the gradient flows back to each
        process's own rows (summed over the processes, each of which computes the same function of them)."""
        most = max(self.sizes)
        padding = rows.new_zeros((most - self.rows, *rows.shape[1:]))
        padded = torch.cat([rows[:self.rows], padding])
        parts = dist_nn.all_gather(padded)
        return torch.cat([part[:size] for part, size in zip(parts, self.sizes)])


def batch_mean(per_row: torch.Tensor, shard: BatchShard | None) -> torch.Tensor:
    """The batch's mean of a per-row term, or with a ``shard`` this process's share of the global batch's."""
    return per_row.mean() if shard is None else shard.mean(per_row)
