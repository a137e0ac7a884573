"""Training split into cluster jobs: the epochs each job trains to, and a clock that ends a job before its limit.

A long training runs as a chain of jobs (the workflow's ``train_segment`` rules, then ``train_model``), each
resuming from the checkpoint the one before it wrote. This module is free of torch: the workflow reads the
chain's epochs when it builds the DAG.
"""

from __future__ import annotations

import math
import os
import time

#: The next epoch is expected to take at most this multiple of the longest so far.
EPOCH_TIME_SAFETY = 1.25
#: A job stops when less than this fraction of its time limit would be left after the next epoch, for the
#: checkpoint write and the outputs.
END_MARGIN_FRACTION = 0.03


def segment_ends(epochs: int, epochs_per_job: int) -> list[int]:
    """The epoch after which each job of the chain stops, the last being ``epochs``.

    Args:
        epochs: the configured epochs (``train.epochs``).
        epochs_per_job: epochs each job trains (``train.epochs_per_job``).

    Raises:
        ValueError: either is below 1.
    """
    if epochs < 1 or epochs_per_job < 1:
        raise ValueError(f"train.epochs ({epochs}) and train.epochs_per_job ({epochs_per_job}) must be >= 1")
    return [min(k * epochs_per_job, epochs) for k in range(1, math.ceil(epochs / epochs_per_job) + 1)]


def job_name() -> str:
    """This job as a log names it: the Slurm job ID when there is one."""
    job = os.environ.get("SLURM_JOB_ID")
    return f"job {job}" if job else f"process {os.getpid()}"


class TimeLimitReached(ValueError):
    """A job stopped before its time limit, its last epoch saved; rerunning it resumes there."""


class JobClock:
    """The time a job has left, from its start.

    Args:
        limit_s: the job's time limit in seconds (the rule's ``runtime``); None: no limit.
    """

    def __init__(self, limit_s: float | None) -> None:
        if limit_s is not None and limit_s <= 0:
            raise ValueError(f"a job's time limit must be positive, got {limit_s} s")
        self.limit_s = limit_s
        self.started = time.monotonic()
        self.longest_epoch_s = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def epoch_done(self, seconds: float) -> None:
        """Record one epoch's wall time (training, validation and checkpoint)."""
        self.longest_epoch_s = max(self.longest_epoch_s, seconds)

    def room_for_another(self) -> bool:
        """Whether the next epoch is expected to end before the limit, with a margin."""
        if self.limit_s is None:
            return True
        needed = EPOCH_TIME_SAFETY * self.longest_epoch_s + END_MARGIN_FRACTION * self.limit_s
        return self.elapsed() + needed <= self.limit_s


def job_time_limit_s(runtime_minutes: float | None) -> float | None:
    """A training job's time limit in seconds: the rule's ``runtime`` inside a Slurm job, which Slurm enforces
    (the profile asks for it as the job's ``--time``); None elsewhere, where nothing stops a job.

    Args:
        runtime_minutes: the rule's ``runtime`` resource (None: not given).
    """
    if runtime_minutes is None or "SLURM_JOB_ID" not in os.environ:
        return None
    return 60.0 * runtime_minutes
