"""How to train: the settings the train stage reads from the config, importable without PyTorch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from vitudip.model.config import ModelConfig
from vitudip.train.schedule import Schedule

if TYPE_CHECKING:
    import torch

#: Loader processes per training process on a GPU, unless ``train.workers`` says: they read and convert the
#: next batches from the cache while the GPU trains on this one.
GPU_LOADER_WORKERS = 4


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
        workers: loader processes per training process when the cache is streamed (None: 0 on the CPU, where
            they would take the model's cores, :data:`GPU_LOADER_WORKERS` on a GPU).
        processes: training processes of one job, one per GPU of the node (DistributedDataParallel; started by
            ``torchrun``); each global batch of ``batch_size`` is shared out among them.
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
    workers: int | None
    processes: int
    resident: bool | None
    device: str
    seed: int
    threads: int | None

    #: The config keys the settings come from (the train script's ``--settings``, with the model).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("model", "train", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], threads: int | None = None) -> TrainSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
            threads: CPU threads for torch (None: torch's default).
        """
        section = config["train"]
        given = {"token_selection": config["model"]["token_selection"], "seed": config["seed"], "threads": threads}
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name not in given}, **given)

    def schedule_fn(self) -> Schedule:
        return Schedule(self.schedule, self.lr, self.epochs, self.step_epochs, self.gamma, self.warmup_epochs,
                        self.min_lr)

    def loader_workers(self, device: torch.device) -> int:
        """Loader processes per training process on ``device`` (``workers``, or its default there)."""
        if self.workers is not None:
            return self.workers
        return GPU_LOADER_WORKERS if device.type == "cuda" else 0

    def resume_key(self) -> dict:
        """Settings that must match for a checkpoint to be resumed (all but run-time resources)."""
        key = asdict(self)
        # the processes take the steps one process takes on the same global batches
        for name in ("epochs", "checkpoint_every", "workers", "processes", "resident", "device", "threads"):
            key.pop(name)
        return key


def check_training(model: ModelConfig, settings: TrainSettings, preset: str = "") -> None:
    """The rules between the model's options and the training settings, checked at workflow start and by the trainer.

    Args:
        model: the model to train.
        settings: how to train it.
        preset: the model's ``model.preset``, named in the message when given.

    Raises:
        ValueError: a mode option without ``train.center`` (the modes are those of the centred images), or
            ``pool_from_modes`` with ``model.token_selection`` other than ``union`` (the pool's maps are fitted
            on the union's fixed tokens; a batch's own token set would change every sum).
    """
    which = f"model preset {preset!r}" if preset else "the model"
    if model.uses_modes and not settings.center:
        raise ValueError(f"config key 'train.center': false, but {which} fits the images' principal modes "
                         "(mode_loss_weight, latent_mode_weight or pool_from_modes), which are those of the centred "
                         "images: set train.center true, or turn those options off in model.overrides")
    if model.pool_from_modes and settings.token_selection != "union":
        raise ValueError(f"config key 'model.token_selection': {settings.token_selection!r}, but {which} starts its "
                         "pool from the modes over the union's fixed tokens (pool_from_modes needs "
                         f"model.token_selection: union, got {settings.token_selection!r}): use union, or set "
                         "model.overrides.pool_from_modes false")
