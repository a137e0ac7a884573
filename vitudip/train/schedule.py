"""Learning-rate schedules: the published step decay with a floor, and cosine with warm-up."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Learning rate as a function of the (fractional) epoch.

    Args:
        kind: ``step`` (multiply by ``gamma`` every ``step_epochs``, never below ``min_lr``: the
            published StepLR) or ``cosine`` (linear warm-up, then cosine decay to ``min_lr``).
        lr: peak learning rate.
        epochs: total epochs (cosine decays over them).
        step_epochs: epochs between decays (step).
        gamma: decay factor (step).
        warmup_epochs: warm-up length (cosine).
        min_lr: floor.
    """

    kind: str
    lr: float
    epochs: int
    step_epochs: int = 3
    gamma: float = 0.5
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"train.schedule must be one of {SCHEDULES}, got '{self.kind}'")

    def at(self, epoch: float) -> float:
        """Learning rate at ``epoch`` (0-based; fractions within an epoch allowed)."""
        if self.kind == "step":
            return max(self.lr * self.gamma ** math.floor(epoch / self.step_epochs), self.min_lr)
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1e-3) / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        progress = min((epoch - self.warmup_epochs) / span, 1.0)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
