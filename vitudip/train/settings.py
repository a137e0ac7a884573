"""How to train: the settings the train stage reads from the config, importable without PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from vitudip.train.schedule import Schedule


@dataclass
class TrainSettings:
    """How to train (the config's ``train`` section and ``model.token_selection``).

    Args:
        epochs: passes over the training split.
        batch_size: subjects per step.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        schedule: ``step`` (published) or ``cosine``.
        step_epochs: epochs between decays (step).
        gamma: decay factor (step).
        warmup_epochs: warm-up (cosine).
        min_lr: floor of either schedule.
        token_selection: ``union`` (patches with brain in the cohort's union mask: a fixed
            token count) or ``batch`` (the union over each batch, as published).
        center: subtract the mean training image from inputs and targets, so the model spends
            its capacity on how subjects differ rather than on relearning the mean brain (the
            published model does not; PerDI's paired differences are unaffected).
        scale: also divide the centred images by their SD over the training brain voxels (one
            number). Subject differences are then not small next to the position embedding, so
            the latent varies between subjects from the first step; losses are still reported in
            the images' z-score units. Not in the published model; only with ``center``.
        checkpoint_every: keep ``epoch_NNN.pt`` every this many epochs (``last.pt`` always).
        workers: loader processes when the cache is streamed.
        resident: keep the whole training set on the device (None: when it fits).
        device: ``auto`` (CUDA when present), ``cuda`` or ``cpu``.
        seed: seeds initialisation and the data order.
        threads: CPU threads for torch (None: torch's default).
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str
    step_epochs: int
    gamma: float
    warmup_epochs: float
    min_lr: float
    token_selection: str
    center: bool
    scale: bool
    checkpoint_every: int
    workers: int
    resident: bool | None
    device: str
    seed: int
    threads: int | None

    #: The config keys the settings come from (the train script's ``--settings``, with the model).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("model", "train", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], threads: int | None) -> TrainSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
            threads: CPU threads for torch (None: torch's default).
        """
        section = config["train"]
        given = {"token_selection": config["model"]["token_selection"], "seed": config["seed"], "threads": threads}
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name not in given}, **given)

    def schedule_fn(self) -> Schedule:
        return Schedule(self.schedule, self.lr, self.epochs, self.step_epochs, self.gamma, self.warmup_epochs, self.min_lr)

    def resume_key(self) -> dict:
        """Settings that must match for a checkpoint to be resumed (all but run-time resources)."""
        key = asdict(self)
        for name in ("epochs", "checkpoint_every", "workers", "resident", "device", "threads"):
            key.pop(name)
        return key
