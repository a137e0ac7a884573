"""The training loop: seeded, resumable exactly, in as many jobs as it takes, mixed precision on CUDA, one progress
bar per epoch."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vitudip.data.volumes import BatchSource, CachedVolumes, epoch_order
from vitudip.embed.spectrum import LOW_PARTICIPATION_RATIO, Spectrum
from vitudip.imaging.cache_grid import CacheGrid
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.stage_tables import passed_subjects
from vitudip.model.checkpoint import CheckpointError, config_differences, load_checkpoint, save_checkpoint
from vitudip.model.device import pick_device, set_cpu_threads
from vitudip.model.latent_penalty import LatentSpreadPenalty
from vitudip.model.mode_loss import LatentModeAnchor, ModeLoss, PrincipalModes, fit_principal_modes, ridge_patch_maps
from vitudip.model.patches import patchify
from vitudip.model.step import Step, load_brain_tokens
from vitudip.model.vit_autoencoder import ModelConfig, ViTAutoEncoder, per_subject_patch_mse
from vitudip.plots.training import plot_loss, plot_reconstruction
from vitudip.train.distributed import TrainingProcesses
from vitudip.train.identity import identity_differences, training_data_identity
from vitudip.train.jobs import JobClock, TimeLimitReached, job_name
from vitudip.train.schedule import Schedule
from vitudip.train.settings import TrainSettings, check_training

log = logging.getLogger("vitudip.train")

#: A final validation loss above this fraction of the mean training image's is warned about: nothing was learned.
UNLEARNED_LOSS_FRACTION = 0.98
#: The most training subjects the mode loss's modes are fitted on.
MODE_FIT_SUBJECTS = 2000

METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_penalty", "train_mode_loss", "val_loss",
                  "val_participation_ratio", "seconds", "subjects_per_s"]


@torch.no_grad()
def evaluate(step: Step, source: BatchSource) -> tuple[float, Spectrum | None]:
    """Mean per-subject loss over a source, in eval mode, and the spectrum of its latents (None for one subject)."""
    step.model.eval()
    total, count, latents = 0.0, 0, []
    for batch in source.batches(torch.arange(len(source.volumes))):
        _, per_subject, latent, _ = step(batch)
        total += float(per_subject.sum())
        count += len(per_subject)
        latents.append(latent.cpu())
    features = torch.cat(latents).numpy()
    return total / max(count, 1), Spectrum.of(features) if len(features) > 1 else None


@torch.no_grad()
def mean_training_image(train: BatchSource) -> torch.Tensor:
    """Voxel-wise mean of the training volumes ``(X, Y, Z)``, float32 on the device."""
    total = None
    for batch in train.batches(torch.arange(len(train.volumes))):
        part = batch.float().sum(0)
        total = part if total is None else total + part
    return total / len(train.volumes)


@torch.no_grad()
def residual_sd(train: BatchSource, mean: torch.Tensor) -> float:
    """SD of the training volumes minus the mean image, over brain voxels."""
    total, count = 0.0, 0
    for batch in train.batches(torch.arange(len(train.volumes))):
        x = batch.float()
        mask = x != 0
        total += float((torch.where(mask, x - mean, 0.0) ** 2).sum())
        count += int(mask.sum())
    return math.sqrt(total / max(count, 1))


@torch.no_grad()
def mean_image_loss(mean: torch.Tensor, val: BatchSource, step: Step) -> float:
    """Validation loss of predicting every subject as the mean training image: the bar to beat."""
    patch_size = step.model.config.patch_size
    losses = []
    for batch in val.batches(torch.arange(len(val.volumes))):
        x = batch.float()
        mask = x != 0
        index = step.tokens(mask)
        prediction = patchify(mean.expand_as(x), patch_size)[:, index]
        target = patchify(x, patch_size)[:, index]
        voxel_mask = patchify(mask, patch_size)[:, index]
        losses += per_subject_patch_mse(prediction, target, voxel_mask).tolist()
    return float(np.mean(losses))


def mode_fit_order(n_train: int, seed: int) -> torch.Tensor:
    """The training subjects the modes (and the closed-form pool) are fitted on: a seeded subsample of at most
    :data:`MODE_FIT_SUBJECTS`, which bounds the passes at UK Biobank's size (128 modes need far fewer)."""
    order = torch.arange(n_train)
    if n_train > MODE_FIT_SUBJECTS:
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:MODE_FIT_SUBJECTS]
    return order


def principal_modes(step: Step, train: BatchSource, brain_tokens: torch.Tensor, config: ModelConfig,
                    settings: TrainSettings) -> PrincipalModes:
    """The leading modes of the training split as ``step`` prepares it, for the mode options of ``config``
    (the centred images', :func:`~vitudip.train.settings.check_training`)."""
    order = mode_fit_order(len(train.volumes), settings.seed)

    def patches() -> Iterator[torch.Tensor]:
        for batch in train.batches(order):
            yield patchify(step.prepare(batch)[0], config.patch_size)[:, brain_tokens]

    return fit_principal_modes(patches, brain_tokens, config.mode_loss_modes, seed=settings.seed)


@torch.no_grad()
def _tokens_and_scores(step: Step, source: BatchSource, order: torch.Tensor,
                       modes: PrincipalModes) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's tokens ``(N, K, D)`` over the brain tokens and the whitened mode scores ``(N, k)``, on the CPU."""
    tokens, scores = [], []
    for batch in source.batches(order):
        x, _ = step.prepare(batch)
        encoded, _ = step.model.encode(x, step.brain_tokens)
        tokens.append(encoded.float().cpu())
        patches = patchify(x, step.model.config.patch_size)[:, step.brain_tokens]
        scores.append(modes.whitened_scores(patches, step.brain_tokens).cpu())
    return torch.cat(tokens), torch.cat(scores)


def start_pool_from_modes(step: Step, train: BatchSource, val: BatchSource, modes: PrincipalModes,
                          seed: int) -> float | None:
    """Set the per-patch pool so that the latent's first dimensions are the whitened mode scores (``pool_from_modes``).

    Args:
        step: holds the untrained model (``pooling: per_patch``) and the brain tokens the maps are fitted on.
        train: the training subjects (the modes' subsample is used).
        val: held-out subjects, to report how well the start carries the modes.
        modes: the fitted modes.
        seed: seeds the subsample.

    Returns:
        the validation subjects' mean squared gap between the anchored dimensions and their whitened mode scores
        (:class:`~vitudip.model.mode_loss.LatentModeAnchor`'s measure); None without 2 validation subjects.
    """
    model = step.model
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    tokens, scores = _tokens_and_scores(step, train, mode_fit_order(len(train.volumes), seed), modes)
    weight, bias = ridge_patch_maps(tokens, scores)
    del tokens, scores
    model.pool.set_maps(step.brain_tokens, weight, bias)
    gap = None
    if len(val.volumes) >= 2:
        tokens, targets = _tokens_and_scores(step, val, torch.arange(len(val.volumes)), modes)
        with torch.no_grad():
            latent = model.pool(tokens.to(step.brain_tokens.device), step.brain_tokens)[:, :targets.shape[1]]
        # the anchor's own measure: whitened scores have variance 1 over the fitted subjects, so 1 is nothing
        # carried (R² over the validation subjects would mislead: a mode of noise has far less variance there)
        per_mode = (latent.float().cpu() - targets).pow(2).mean(dim=0)
        gap = float(per_mode.mean())
        log.info("pool started from the modes in %.0f s: validation mean squared gap of the %d anchored dimensions "
                 "to their whitened mode scores %.3f (0: exact, 1: nothing carried; first mode %.3f, last %.3f)",
                 time.perf_counter() - started, len(per_mode), gap, float(per_mode[0]), float(per_mode[-1]))
    model.train(was_training)
    return gap


def _try_resume(path: Path, config: ModelConfig, settings: TrainSettings, data: dict, until: int,
                device: torch.device) -> dict | None:
    """The state of one checkpoint to continue from, or None (saying why) when it cannot be used.

    Args:
        path: the checkpoint.
        config, settings, data: what it must have been made with (:func:`training_data_identity` for ``data``).
        until: the last epoch this job trains; a later checkpoint is not resumed from (quietly: it is this run's).
        device: where its tensors go.
    """
    try:
        state = load_checkpoint(path, map_location=device)
    except CheckpointError as err:
        log.warning("cannot resume from %s: %s", path, err)
        return None
    diff = config_differences(state["model_config"], config)
    if state.get("train_key") != settings.resume_key():
        diff.append("training settings changed")
    if diff:
        log.warning("cannot resume from %s: it was made with a different setup (%s)", path, "; ".join(diff))
        return None
    changed = identity_differences(state.get("data"), data)
    if changed:
        log.warning("cannot resume from %s: it was trained on other data (%s); training from scratch", path,
                    "; ".join(changed))
        return None
    if state["epoch"] > until:
        log.info("%s is after epoch %d, past this job's last epoch %d", path, state["epoch"], until)
        return None
    return state


def _snapshots(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """``epoch_NNN.pt`` files with their epoch, newest first."""
    found = []
    for path in checkpoint_dir.glob("epoch_*.pt"):
        number = path.stem.removeprefix("epoch_")
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found, reverse=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(checkpoint_dir: Path) -> None:
    """Delete ``.tmp-<name>.pt-<PID>`` files that a killed checkpoint write left (their process is gone)."""
    for tmp in checkpoint_dir.glob(".tmp-*.pt-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        log.warning("removed %s, left by an interrupted checkpoint write", tmp)


def resume_state(checkpoint_dir: Path, config: ModelConfig, settings: TrainSettings, data: dict, until: int,
                 device: torch.device) -> tuple[dict | None, Path | None]:
    """The newest usable checkpoint up to epoch ``until``: ``last.pt``, else the newest usable ``epoch_NNN.pt``.

    Returns:
        its state and path; (None, None) when none can be used.
    """
    snapshots = [path for epoch, path in _snapshots(checkpoint_dir) if epoch <= until]
    candidates = [checkpoint_dir / "last.pt"] + snapshots
    for path in candidates:
        if not path.exists():
            continue
        state = _try_resume(path, config, settings, data, until, device)
        if state is not None:
            level = logging.INFO if path.name == "last.pt" or state["epoch"] == until else logging.WARNING
            log.log(level, "resuming from %s after epoch %d", path, state["epoch"])
            return state, path
    if any(path.exists() for path in candidates):
        log.warning("no checkpoint in %s can be resumed; training from scratch", checkpoint_dir)
    return None, None


def set_aside(checkpoint_dir: Path, start_epoch: int, resumed_from: Path | None) -> None:
    """Move what this run would overwrite to ``superseded/<time>/``: snapshots after ``start_epoch``, and
    ``last.pt`` unless it is what the run resumed from.

    They belong to another setup, other data, or later epochs of this run; a user may still want them (the
    model of a cohort before it changed is its ``last.pt``).
    """
    later = [path for epoch, path in _snapshots(checkpoint_dir) if epoch > start_epoch]
    last = checkpoint_dir / "last.pt"
    if last.exists() and resumed_from != last:
        later.append(last)
    if not later:
        return
    keep = checkpoint_dir / "superseded" / time.strftime("%Y%m%d-%H%M%S")
    keep.mkdir(parents=True, exist_ok=True)
    for path in later:
        os.replace(path, keep / path.name)
    log.warning("moved %s to %s instead of overwriting them", ", ".join(path.name for path in later), keep)


@dataclass(frozen=True)
class SplitVolumes:
    """The cache's training and validation subjects, before any of them is read onto a device.

    Attributes:
        layout: the cache's grid, written into the model.
        subjects: the QC-passed subjects with their split and cache row.
        val_rows: cache rows of the validation subjects (empty when there are none).
        train: the training subjects' volumes.
        val: the validation subjects' volumes; the first training subject's when there are none (for the figure).
        identity: what the run trains on (:func:`~vitudip.train.identity.training_data_identity`), stored in its
            checkpoints.
    """

    layout: CacheGrid
    subjects: pd.DataFrame
    val_rows: np.ndarray
    train: CachedVolumes
    val: CachedVolumes
    identity: dict


def load_split_volumes(cache_dir: str | os.PathLike, qc_path: str | os.PathLike, splits_path: str | os.PathLike,
                       brain_mask_path: str | os.PathLike, config: ModelConfig) -> SplitVolumes:
    """The QC-passed training and validation subjects of the cache.

    Args:
        cache_dir, qc_path, splits_path, brain_mask_path: the preprocess stage's outputs.
        config: model sizes (``image_size`` must equal the cache's volume shape).

    Raises:
        ValueError: no QC-passed subject is in the train split, or the cache's volumes are not the model's size.
    """
    # Read before training, so that a bad grid.json fails now and not after the last epoch.
    layout = CacheGrid.read(cache_dir)
    subjects = passed_subjects(qc_path, splits_path)
    train_rows = subjects.loc[subjects["split"] == "train", "row"].to_numpy()
    val_rows = subjects.loc[subjects["split"] == "val", "row"].to_numpy()
    if len(train_rows) == 0:
        raise ValueError(f"no QC-passed subject is in the train split ({splits_path})")
    train_volumes = CachedVolumes(cache_dir, train_rows)
    if train_volumes.volume_shape != config.image_size:
        raise ValueError(f"cache volumes are {train_volumes.volume_shape} but model.image_size is {config.image_size}: "
                         f"they must be equal (preprocess.pad_to)")
    val_volumes = CachedVolumes(cache_dir, val_rows if len(val_rows) else train_rows[:1])
    identity = training_data_identity(subjects, qc_path, train_volumes.images, layout.to_json(), brain_mask_path)
    return SplitVolumes(layout, subjects, val_rows, train_volumes, val_volumes, identity)


@dataclass
class TrainingRun:
    """The model and what trains it.

    Attributes:
        processes: the job's training processes (one, or one per GPU).
        device: where the model and the batches are.
        model: the autoencoder.
        step: one forward pass with its input preparation, brain tokens and mode losses.
        optimizer: AdamW over the model's parameters.
        penalty: the latent spread penalty (off when both its weights are 0).
        schedule: the learning rate per (fractional) epoch.
        train: batches of the training subjects.
        val: batches of the validation subjects.
        mean_image: the mean training image ``(X, Y, Z)`` (subtracted from the inputs with ``train.center``).
        modes: the training split's principal modes, when the model's mode options use them.
        network: what runs the model in training (:meth:`~vitudip.train.distributed.TrainingProcesses.network`),
            set once the model's starting weights are in place.
    """

    processes: TrainingProcesses
    device: torch.device
    model: ViTAutoEncoder
    step: Step
    optimizer: torch.optim.Optimizer
    penalty: LatentSpreadPenalty
    schedule: Schedule
    train: BatchSource
    val: BatchSource
    mean_image: torch.Tensor
    modes: PrincipalModes | None
    network: nn.Module | None = None


def prepare_training(config: ModelConfig, settings: TrainSettings, volumes: SplitVolumes,
                     brain_mask_path: str | os.PathLike, processes: TrainingProcesses) -> TrainingRun:
    """The seeded model, its optimizer and the training step with its centring, scaling and modes.

    Every process prepares the same (the mean image, the scale and the modes are computed from the same
    subjects in each), so that only the training batches need sharing out.

    Args:
        config: model sizes.
        settings: training settings.
        volumes: the subjects to train and validate on.
        brain_mask_path: the preprocess stage's union brain mask.
        processes: the job's training processes; the model and the batches go to this one's device.
    """
    device = processes.device
    torch.manual_seed(settings.seed)
    model = ViTAutoEncoder(config).to(device)
    brain_tokens = load_brain_tokens(brain_mask_path, config).to(device)
    log.info("model: %s parameters, %d of %d patches hold brain, token selection %s",
             f"{sum(p.numel() for p in model.parameters()):,}", len(brain_tokens), config.n_tokens,
             settings.token_selection)
    penalty = LatentSpreadPenalty(config.encoder_dim, config.latent_variance_weight, config.latent_covariance_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                  fused=device.type == "cuda")
    # after the model: whether the subjects stay on a GPU depends on the memory the model left free
    workers = settings.loader_workers(device)
    train = BatchSource(volumes.train, settings.batch_size, device, settings.resident, workers)
    val = BatchSource(volumes.val, settings.batch_size, device, settings.resident, workers)
    mean_image = mean_training_image(train)
    # one pass: the scaling and the mode loss's unit both need it
    sd = residual_sd(train, mean_image) if settings.center else 1.0
    scale = sd if settings.scale else 1.0
    step = Step(model, brain_tokens, settings.token_selection, mean_image if settings.center else None, scale)
    if scale != 1.0:
        log.info("centred images are divided by their SD over training brain voxels, %.4f", scale)
    modes = principal_modes(step, train, brain_tokens, config, settings) if config.uses_modes else None
    if modes is not None:
        # a weight of 1: leaving every mode unexplained costs what the mean image's plain error does
        if config.mode_loss_weight > 0:
            step.mode_loss = ModeLoss(modes, config.mode_loss_weight, sd**2)
        if config.latent_mode_weight > 0:
            step.latent_anchor = LatentModeAnchor(modes, config.latent_mode_weight, sd**2)
    log.info("%d training and %d validation subjects, %s", len(volumes.train), len(volumes.val_rows),
             "held on the device" if train.resident is not None else f"streamed with {workers} loader workers")
    return TrainingRun(processes, device, model, step, optimizer, penalty, settings.schedule_fn(), train, val,
                       mean_image, modes)


def resume_training(checkpoint_dir: Path, config: ModelConfig, settings: TrainSettings, run: TrainingRun,
                    data: dict, until: int) -> tuple[list[dict], int]:
    """Continue from the newest usable checkpoint, else start afresh (from the modes with ``pool_from_modes``).

    Args:
        checkpoint_dir: where ``last.pt`` and the ``epoch_NNN.pt`` snapshots are; made when missing.
        config: model sizes, which a checkpoint must match.
        settings: training settings, whose resume key a checkpoint must match.
        run: the prepared model and optimizer, into which a checkpoint's state is loaded.
        data: what the run trains on, which a checkpoint must match.
        until: the last epoch this job trains; no later checkpoint is resumed from.

    Returns:
        the metrics rows of the epochs already trained, and their number.

    With several processes, the first chooses the checkpoint and the others load the same; only the first
    writes or moves files, and starts the pool (the others receive its weights when training begins).
    """
    processes = run.processes
    state, resumed_from = None, None
    if processes.main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(checkpoint_dir)
        state, resumed_from = resume_state(checkpoint_dir, config, settings, data, until, run.device)
    chosen = processes.share(None if resumed_from is None else str(resumed_from))
    if not processes.main and chosen is not None:
        state = load_checkpoint(chosen, map_location=run.device)
    history: list[dict] = []
    start_epoch = 0
    if chosen is not None:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        history = state["history"]
        start_epoch = state["epoch"]
    processes.wait()
    if not processes.main:
        return history, start_epoch
    if chosen is not None:
        snapshot = checkpoint_dir / f"epoch_{start_epoch:03d}.pt"
        due = start_epoch % settings.checkpoint_every == 0 or start_epoch == until < settings.epochs
        if due and not snapshot.exists():
            # the run that reached this epoch was killed before (or while) writing its snapshot
            save_checkpoint(snapshot, state)
            log.info("wrote the missing snapshot %s", snapshot)
    elif config.pool_from_modes:
        start_pool_from_modes(run.step, run.train, run.val, run.modes, settings.seed)
    if start_epoch < until:
        set_aside(checkpoint_dir, start_epoch, resumed_from)
    return history, start_epoch


class EpochFit(NamedTuple):
    """One pass over the training subjects.

    Attributes:
        lr: the learning rate of its last batch.
        loss, penalty, mode_loss: the reconstruction loss, latent spread penalty and mode loss per subject.
        subjects: subjects seen.
        seconds: how long it took.
    """

    lr: float
    loss: float
    penalty: float
    mode_loss: float
    subjects: int
    seconds: float


def seed_epoch_draws(seed: int, epoch: int) -> None:
    """Seed torch's global generators (the CPU's and every GPU's) for one epoch from ``(seed, epoch)`` alone.

    Within an epoch they draw nested dropout's dimensions and each loader's base seed; seeded so, an epoch
    draws the same whether the run was resumed before it or not, and nothing about them need be saved.
    (The order has a generator of its own, :func:`~vitudip.data.volumes.epoch_order`; numpy's and Python's
    generators are not used in training.)
    """
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0]))


def train_epoch(run: TrainingRun, settings: TrainSettings, epoch: int) -> EpochFit:
    """Train one epoch over the training subjects in the epoch's seeded order.

    Args:
        run: the model and what trains it.
        settings: training settings.
        epoch: 0-based; sets the order, the random draws and, with the batch, the learning rate.
    """
    seed_epoch_draws(settings.seed, epoch)
    run.model.train()
    processes = run.processes
    started = time.perf_counter()
    total, penalty_total, modes_total, seen = 0.0, 0.0, 0.0, 0
    order = epoch_order(len(run.train.volumes), settings.seed, epoch)
    shards = list(processes.batches(order, settings.batch_size))
    batches = run.train.index_batches([index for index, _ in shards])
    bar = tqdm(zip(batches, shards), total=len(shards), desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch",
               mininterval=10, disable=not processes.main)
    for i, (batch, (_, shard)) in enumerate(bar):
        lr = run.schedule.at(epoch + i / len(shards))
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        loss, _, latent, modes = run.step(batch, shard, run.network)
        spread = run.penalty(latent, shard) if run.penalty.enabled else torch.zeros((), device=run.device)
        run.optimizer.zero_grad(set_to_none=True)
        # the losses' shares sum over the processes to the global batch's; the penalty is the global batch's
        ((loss + modes) * processes.objective_scale() + spread).backward()
        run.optimizer.step()
        rows = len(batch) if shard is None else shard.global_rows
        # per process: its share of each batch mean (they sum to the mean); the penalty is every process's
        total += float(loss.detach()) * rows
        penalty_total += float(spread.detach()) * rows / processes.world
        modes_total += float(modes.detach()) * rows
        seen += rows
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
    total, penalty_total, modes_total = processes.sum([total, penalty_total, modes_total])
    return EpochFit(lr, total / seen, penalty_total / seen, modes_total / seen, seen, time.perf_counter() - started)


def train_epochs(run: TrainingRun, volumes: SplitVolumes, config: ModelConfig, settings: TrainSettings,
                 checkpoint_dir: Path, history: list[dict], start_epoch: int, until: int, clock: JobClock) -> int:
    """Train the epochs after ``start_epoch`` up to ``until`` while the job has time; after each, validate, log
    and write ``last.pt`` (and a snapshot every ``checkpoint_every`` epochs and at ``until`` when training goes
    on after it).

    Args:
        run: the model and what trains it.
        volumes: the subjects (``val_rows`` says whether any are validated on; their identity is stored).
        config: model sizes, stored in the checkpoints.
        settings: training settings (``epochs``, ``checkpoint_every``; the resume key is stored).
        checkpoint_dir: where ``last.pt`` and ``epoch_NNN.pt`` go.
        history: the metrics rows so far; each epoch's row is appended.
        start_epoch: epochs already trained.
        until: the last epoch this job trains.
        clock: the job's time; no epoch is begun that is not expected to end before its limit.

    Returns:
        the epoch trained last (``start_epoch`` when none was).

    With several processes, the first validates, logs, writes and decides whether another epoch fits.
    """
    main = run.processes.main
    epoch = start_epoch
    while epoch < until:
        if epoch > start_epoch and not run.processes.agree(clock.room_for_another()):
            break
        began = time.perf_counter()
        fit = train_epoch(run, settings, epoch)
        epoch += 1
        if not main:
            clock.epoch_done(time.perf_counter() - began)
            continue
        val_loss, spectrum = evaluate(run.step, run.val) if len(volumes.val_rows) else (float("nan"), None)
        row = {"epoch": epoch, "lr": fit.lr, "train_loss": fit.loss, "train_penalty": fit.penalty,
               "train_mode_loss": fit.mode_loss, "val_loss": val_loss,
               "val_participation_ratio": spectrum.participation_ratio if spectrum else float("nan"),
               "seconds": fit.seconds, "subjects_per_s": fit.subjects / fit.seconds}
        history.append(row)
        log.info("epoch %d: train %.4f (latent penalty %.4f, mode loss %.4f), validation %.4f, latent participation "
                 "ratio %.1f of %d, %.0f s, %.1f subjects/s", row["epoch"], row["train_loss"], row["train_penalty"],
                 row["train_mode_loss"], row["val_loss"], row["val_participation_ratio"], config.encoder_dim,
                 fit.seconds, row["subjects_per_s"])
        state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "epoch": epoch,
                 "history": history, "model_config": config.to_dict(), "train_key": settings.resume_key(),
                 "data": volumes.identity}
        save_checkpoint(checkpoint_dir / "last.pt", state)
        if epoch % settings.checkpoint_every == 0 or epoch == until < settings.epochs:
            save_checkpoint(checkpoint_dir / f"epoch_{epoch:03d}.pt", state)
        clock.epoch_done(time.perf_counter() - began)
    return epoch


def warn_about_health(metrics: pd.DataFrame, baseline: float, encoder_dim: int) -> None:
    """Warn when the final epoch's validation loss is hardly below the mean image's, or its latents span few traits.

    Args:
        metrics: the metrics table.
        baseline: the mean training image's validation loss.
        encoder_dim: the latent's size.
    """
    final_ratio = metrics["val_participation_ratio"].iloc[-1]
    final_loss = metrics["val_loss"].iloc[-1]
    if final_loss >= UNLEARNED_LOSS_FRACTION * baseline:
        log.warning("the validation loss is %.4f, %.0f %% of the mean training image's %.4f: the decoder has not "
                    "learned how subjects differ, so PerDI has little to decode and the UDIPs are close to the "
                    "untrained encoder's features (train longer, or see README, \"Embedding health\")",
                    final_loss, 100 * final_loss / baseline, baseline)
    if final_ratio < min(LOW_PARTICIPATION_RATIO, encoder_dim):
        log.warning("the validation latents' participation ratio is %.1f of %d: the UDIPs are a few traits in "
                    "disguise (embed/health.tsv; README, \"Embedding health\")", final_ratio, encoder_dim)


def write_training_outputs(run: TrainingRun, volumes: SplitVolumes, config: ModelConfig, settings: TrainSettings,
                           metrics: pd.DataFrame, baseline: float, outputs: dict[str, str | os.PathLike]) -> None:
    """Write the model, the metrics and the figures; all appear together or not at all.

    Args:
        run: the trained model and its training step.
        volumes: the subjects (the first validation subject is drawn).
        config: model sizes, stored with the model.
        settings: training settings (the epochs, token selection and centring are stored with the model).
        metrics: the metrics table.
        baseline: the mean training image's validation loss, drawn beside the losses.
        outputs: paths for ``model``, ``metrics``, ``loss_plot``, ``reconstruction_plot``.
    """
    with staged_outputs(outputs) as out:
        save_checkpoint(out["model"], {
            "model": run.model.state_dict(), "model_config": config.to_dict(), "epoch": settings.epochs,
            "token_selection": settings.token_selection, "brain_tokens": run.step.brain_tokens.cpu(),
            "mean_image": run.mean_image.cpu() if settings.center else None, "input_scale": run.step.scale,
            "grid": volumes.layout.to_json(),
        })
        write_tsv(metrics, out["metrics"])
        plot_loss(metrics, baseline, out["loss_plot"])
        _reconstruction_figure(run.step, volumes.val, volumes.subjects, volumes.val_rows, out["reconstruction_plot"])


def _train_job(cache_dir: str | os.PathLike, qc_path: str | os.PathLike, splits_path: str | os.PathLike,
               brain_mask_path: str | os.PathLike, config: ModelConfig, settings: TrainSettings, until: int,
               checkpoint_dir: Path, time_limit_s: float | None) -> tuple[TrainingRun, SplitVolumes, list[dict]]:
    """One job's share of training: resume, train to epoch ``until`` while time allows, and log where it started
    and stopped.

    Raises:
        TimeLimitReached: the job stopped before ``until`` to end within ``time_limit_s``, its last epoch saved.
    """
    clock = JobClock(time_limit_s)
    check_training(config, settings)
    if not 1 <= until <= settings.epochs:
        raise ValueError(f"a training job's last epoch must be within 1..train.epochs ({settings.epochs}), "
                         f"got {until}")
    processes = TrainingProcesses.start(settings.processes, pick_device(settings.device, "train.device"))
    try:
        # the job's threads are shared by its processes
        set_cpu_threads(None if settings.threads is None else max(settings.threads // processes.world, 1))
        device = processes.device
        log.info("device: %s%s", device, f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        volumes = load_split_volumes(cache_dir, qc_path, splits_path, brain_mask_path, config)
        run = prepare_training(config, settings, volumes, brain_mask_path, processes)
        history, start_epoch = resume_training(checkpoint_dir, config, settings, run, volumes.identity, until)
        run.network = processes.network(run.model)
        log.info("%s trains epochs %d to %d of %d", job_name(), start_epoch + 1, until, settings.epochs)
        stopped = train_epochs(run, volumes, config, settings, checkpoint_dir, history, start_epoch, until, clock)
    finally:
        processes.stop()
    why = "its last epoch" if stopped == until else "the time limit"
    log.info("%s started after epoch %d and stopped after epoch %d of %d (%s), in %.0f s", job_name(), start_epoch,
             stopped, settings.epochs, why, clock.elapsed())
    if stopped < until:
        raise TimeLimitReached(
            f"stopped after epoch {stopped} of {until} so as to end within this job's time limit of "
            f"{time_limit_s / 60:.0f} min (an epoch takes up to {clock.longest_epoch_s / 60:.1f} min); "
            f"rerunning the job resumes from {checkpoint_dir / 'last.pt'} (Snakemake's --retries does), or give "
            "each job fewer epochs (train.epochs_per_job)")
    return run, volumes, history


def train_segment(cache_dir: str | os.PathLike, qc_path: str | os.PathLike, splits_path: str | os.PathLike,
                  brain_mask_path: str | os.PathLike, config: ModelConfig, settings: TrainSettings, until: int,
                  record_path: str | os.PathLike, checkpoint_dir: str | os.PathLike,
                  time_limit_s: float | None = None) -> None:
    """Train up to epoch ``until`` (one job of a chain, not the last) and write its record.

    Args:
        cache_dir, qc_path, splits_path, brain_mask_path: the preprocess stage's outputs.
        config: model sizes.
        settings: training settings.
        until: the epoch this job ends after; below ``settings.epochs``.
        record_path: the job's JSON record (the epoch and its snapshot), which the next job waits for.
        checkpoint_dir: where ``last.pt`` and ``epoch_NNN.pt`` are (``epoch_<until>.pt`` is always written).
        time_limit_s: the job's time limit; None: none.

    Raises:
        TimeLimitReached: see :func:`_train_job`.
    """
    if until >= settings.epochs:
        raise ValueError(f"a training segment ends before the last epoch ({settings.epochs}), got {until}: "
                         "the last epochs are train_model's")
    checkpoint_dir = Path(checkpoint_dir)
    run, _, _ = _train_job(cache_dir, qc_path, splits_path, brain_mask_path, config, settings, until,
                           checkpoint_dir, time_limit_s)
    if not run.processes.main:
        return
    with staged_outputs({"record": record_path}) as out:
        snapshot = checkpoint_dir / f"epoch_{until:03d}.pt"
        out["record"].write_text(json.dumps({"epoch": until, "checkpoint": str(snapshot)}))


def train_model(cache_dir: str | os.PathLike, qc_path: str | os.PathLike, splits_path: str | os.PathLike,
                brain_mask_path: str | os.PathLike, config: ModelConfig, settings: TrainSettings,
                outputs: dict[str, str | os.PathLike], checkpoint_dir: str | os.PathLike,
                time_limit_s: float | None = None) -> pd.DataFrame:
    """Train the autoencoder on the training split (the last job of a chain) and write the model, metrics and
    figures.

    Args:
        cache_dir, qc_path, splits_path, brain_mask_path: the preprocess stage's outputs.
        config: model sizes (``image_size`` must equal the cache's volume shape).
        settings: training settings.
        outputs: paths for ``model``, ``metrics``, ``loss_plot``, ``reconstruction_plot``.
        checkpoint_dir: where ``last.pt`` (resumed from on a rerun) and ``epoch_NNN.pt`` go.
        time_limit_s: the job's time limit; None: none.

    Returns:
        The metrics table (empty in every process but the first, which writes the outputs).

    Raises:
        TimeLimitReached: see :func:`_train_job`.
    """
    run, volumes, history = _train_job(cache_dir, qc_path, splits_path, brain_mask_path, config, settings,
                                       settings.epochs, Path(checkpoint_dir), time_limit_s)
    if not run.processes.main:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    baseline = mean_image_loss(run.mean_image, run.val, run.step)
    log.info("validation loss of the mean training image: %.4f", baseline)
    metrics = pd.DataFrame(history, columns=METRIC_COLUMNS)
    metrics["mean_image_val_loss"] = baseline
    warn_about_health(metrics, baseline, config.encoder_dim)
    write_training_outputs(run, volumes, config, settings, metrics, baseline, outputs)
    return metrics


@torch.no_grad()
def _reconstruction_figure(step: Step, volumes: CachedVolumes, subjects: pd.DataFrame, rows: np.ndarray,
                           path: Path) -> None:
    """Input beside reconstruction for the first validation subject."""
    step.model.eval()
    device = next(step.model.parameters()).device
    original = volumes[0][None].to(device).float()
    x, mask = step.prepare(original)
    index = step.tokens(mask)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=step.autocast):
        recon = step.model.reconstruct(x, index).float()[0, 0]
    if step.mean_image is not None:
        recon = recon * step.scale + step.mean_image
    volume = original[0].cpu().numpy()
    recon = torch.where(mask[0], recon, 0.0).cpu().numpy()
    row = int(rows[0]) if len(rows) else int(volumes.rows[0])
    subject = subjects.loc[subjects["row"] == row, "subject_id"].iloc[0]
    mean = step.mean_image.cpu().numpy() if step.mean_image is not None else None
    plot_reconstruction(volume, recon, path, title=f"validation subject {subject}", mean_image=mean)
