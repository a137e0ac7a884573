"""The processes of one training job: one, or one per GPU of a node with DistributedDataParallel.

A job of ``train.processes`` > 1 is started by ``torchrun`` (``python -m torch.distributed.run``), which gives each
process its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. Each global batch of ``train.batch_size`` subjects is
shared out in order (:func:`~vitudip.model.shard.shard_sizes`); each process reads only its own subjects through its
own loader workers, and the steps are those one process takes on the same global batches
(:mod:`vitudip.model.shard`). The first process validates, logs and writes the checkpoints.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vitudip.model.shard import BatchShard

log = logging.getLogger("vitudip.train")

#: How long a process waits for the others in one collective: the first process validates alone after each
#: epoch while the others wait for the next epoch's first step.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=3)


def launched_processes() -> int:
    """Processes the launcher started for this job (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class TrainingProcesses:
    """This process's place among the job's training processes.

    Args:
        rank: 0 for the first process (it validates, logs and writes), up to ``world - 1``.
        world: processes training the model together.
        device: this process's device (its own GPU when there are several).
    """

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is the process that validates, logs and writes."""
        return self.rank == 0

    @classmethod
    def start(cls, expected: int, device: torch.device) -> TrainingProcesses:
        """Join the job's processes (a process group when there are several).

        Args:
            expected: ``train.processes``.
            device: the device the training setting picked; with several processes on CUDA, each takes the GPU
                of its ``LOCAL_RANK``.

        Raises:
            ValueError: the launcher started another number of processes than ``train.processes``.
        """
        world = launched_processes()
        if world != expected:
            raise ValueError(f"config key 'train.processes' is {expected} but this job runs {world} process(es): "
                             f"start it with python -m torch.distributed.run --nproc-per-node {expected} (the "
                             "workflow's training rules do)")
        if world == 1:
            return cls(0, 1, device)
        local_rank = int(os.environ["LOCAL_RANK"])
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        processes = cls(dist.get_rank(), dist.get_world_size(), device)
        if not processes.main:
            # the first process says what the job does; the others speak only of their own failures
            logging.getLogger("vitudip").setLevel(logging.ERROR)
        log.info("data-parallel training on %d processes (%s backend)", world, dist.get_backend())
        return processes

    def stop(self) -> None:
        """Leave the process group."""
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def network(self, model: nn.Module) -> nn.Module:
        """What runs the model in training: the model, or its DistributedDataParallel wrapper (which starts every
        process from the first's weights and buffers)."""
        if self.world == 1:
            return model
        # the latent's running statistics are the global batch's in every process (:mod:`vitudip.model.shard`),
        # so buffers need no broadcast before each step
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       forward_sync_buffers=False)

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, BatchShard | None]]:
        """Each global batch of ``order``: this process's subjects and its shard of the batch (None: one process).

        A process with no subject of a short last batch gets the batch's first subject as a stand-in
        (:class:`~vitudip.model.shard.BatchShard`).
        """
        for batch in order.split(batch_size):
            if self.world == 1:
                yield batch, None
                continue
            shard = BatchShard(self.rank, self.world, len(batch))
            yield shard.local_rows(batch), shard

    def objective_scale(self) -> int:
        """What the batch-mean losses' shares are multiplied by before backward: DistributedDataParallel averages
        the processes' gradients, and the global loss is their sum."""
        return self.world

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the processes."""
        if self.world == 1:
            return values
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def agree(self, decision: bool) -> bool:
        """The first process's ``decision``, in every process (e.g. whether to begin another epoch)."""
        if self.world == 1:
            return decision
        flag = torch.tensor([float(decision)], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def share(self, value: object) -> object:
        """The first process's ``value`` (a picklable object), in every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wait(self) -> None:
        """Wait for every process to reach this point."""
        if self.world > 1:
            dist.barrier()
