"""Data-parallel training: several processes (gloo on the CPU here, NCCL on GPUs) take the steps one process takes
on the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vitudip import resources as cost
from vitudip.data.volumes import BatchSource, CachedVolumes
from vitudip.model.checkpoint import load_checkpoint
from vitudip.model.shard import BatchShard, batch_mean, shard_sizes
from vitudip.train.distributed import TrainingProcesses

from test_train import SHAPE, write_cohort

ROOT = Path(__file__).resolve().parent.parent


def test_a_global_batch_is_shared_out_in_order_as_evenly_as_can_be():
    assert shard_sizes(13, 2) == [7, 6]
    assert shard_sizes(1, 2) == [1, 0]
    assert shard_sizes(10, 4) == [3, 3, 2, 2]
    rows = torch.arange(100, 113)
    assert BatchShard(1, 2, 13).local_rows(rows).tolist() == list(range(107, 113))
    # no row of a short last batch: the batch's first subject stands in, with weight 0
    stand_in = BatchShard(1, 2, 1)
    assert stand_in.rows == 0 and stand_in.local_rows(rows[:1]).tolist() == [100]
    assert stand_in.weights(torch.device("cpu")).tolist() == [0.0]
    # the processes' shares of a batch mean sum to the mean
    values = torch.linspace(0, 1, 13)
    shares = [batch_mean(values[s.offset:s.offset + s.rows], s) for s in (BatchShard(r, 2, 13) for r in (0, 1))]
    assert float(sum(shares)) == pytest.approx(float(values.mean()), rel=1e-6)
    with pytest.raises(ValueError, match="rank"):
        BatchShard(2, 2, 4)


def test_a_job_launched_with_another_number_of_processes_is_refused(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match=r"'train.processes' is 2 but this job runs 1 process.*--nproc-per-node 2"):
        TrainingProcesses.start(2, torch.device("cpu"))


def test_loader_workers_serve_the_batches_the_main_process_reads(tmp_path):
    write_cohort(tmp_path, [np.s_[10:20, 10:20, 10:20]], n=6)
    volumes = CachedVolumes(tmp_path / "cache", [5, 0, 3, 1, 4, 2])
    batches = [torch.tensor([2, 0, 5]), torch.tensor([1]), torch.tensor([4, 3])]
    served = [list(BatchSource(volumes, 3, torch.device("cpu"), False, workers).index_batches(batches))
              for workers in (0, 2)]
    for plain, loaded, index in zip(*served, batches):
        assert torch.equal(plain, loaded)
        assert torch.equal(plain, torch.stack([volumes[i] for i in index.tolist()]))


def test_several_processes_ask_for_a_gpu_and_the_host_memory_of_each():
    model = cost.ModelSize(voxels=182 * 218 * 182, tokens=2366, dimensions=128, heads=8, depth=16, modes=128,
                           pool_from_modes=True)
    one = cost.train_model(40_000, 10, 8, model, gpu=True)
    four = cost.train_model(40_000, 10, 8, model, gpu=True, processes=4)
    assert four.mem_mb > 3.5 * one.mem_mb
    assert four.runtime < 0.5 * one.runtime


def _command(root: Path, out: Path, processes: int, batch_size: int) -> list[str]:
    overrides = {"image_size": list(SHAPE), "patch_size": [8, 8, 8], "encoder_dim": 24, "encoder_depth": 1,
                 "encoder_heads": 2, "decoder_dim": 12, "decoder_depth": 1, "decoder_heads": 2,
                 "mode_loss_modes": 8}
    # the demo preset: nested dropout, the latent's running statistics, the spread penalty, the mode loss, the
    # anchor and the pool started from the modes, each of which reads the whole batch
    settings = json.dumps({"seed": 3, "model": {"preset": "demo", "overrides": overrides},
                           "train": {"epochs": 4, "batch_size": batch_size, "processes": processes,
                                     "device": "cpu", "workers": 1}})
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else []
    return [sys.executable, *launcher, str(ROOT / "scripts" / "train.py"), "--cache", str(root / "cache"),
            "--qc", str(root / "qc.tsv"), "--splits", str(root / "splits.tsv"),
            "--brain-mask", str(root / "brain_mask.npy"), "--settings", settings,
            # one thread in every process: a product's rounding depends on the threads sharing it, and the mode fit's
            # near-equal modes of 14 subjects turn that into a 1e-2 weight gap, which is not the processes' doing
            "--threads", str(processes),
            "--checkpoints", str(out / "checkpoints"), "--model", str(out / "model.pt"),
            "--metrics", str(out / "metrics.tsv"), "--loss-plot", str(out / "loss.png"),
            "--reconstruction-plot", str(out / "reconstruction.png")]


def test_two_processes_train_the_weights_one_process_trains_on_the_same_global_batches(tmp_path):
    """torchrun with two gloo processes against one process: 14 training subjects in global batches of 13, so one
    batch is shared out 7 / 6 and the other (one subject) leaves the second process a stand-in."""
    root = tmp_path / "cohort"
    root.mkdir()
    write_cohort(root, [np.s_[10:20, 10:20, 10:20]])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"processes{processes}"
        # a bound, so that a stuck process fails the test instead of holding the suite (one run of the two-process
        # command in about ten hung on 2026-12-06 with one worker gone, not yet explained)
        done = subprocess.run(_command(root, out, processes, 13), env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[processes] = out, done.stderr
    _, log = runs[2]
    assert log.count("data-parallel training on 2 processes (gloo backend)") == 1
    assert log.count("epoch 4: train") == 1  # only the first process logs and writes
    metrics = [pd.read_csv(runs[p][0] / "metrics.tsv", sep="\t") for p in (1, 2)]
    for column in ("train_loss", "train_penalty", "train_mode_loss", "val_loss"):
        np.testing.assert_allclose(metrics[1][column], metrics[0][column], rtol=1e-4, err_msg=column)
    weights = [load_checkpoint(runs[p][0] / "model.pt")["model"] for p in (1, 2)]
    assert weights[0].keys() == weights[1].keys()
    one, two = (torch.cat([w[name].double().flatten() for name in weights[0]]) for w in weights)
    # summation order alone: 7e-6 here; a penalty over each process's own rows instead of the batch's gives 2e-2
    gap = float((two - one).norm() / one.norm())
    assert gap < 1e-4, gap
    # the same run: the second resumes from its own checkpoint, whichever process count continues it
    assert load_checkpoint(runs[2][0] / "checkpoints" / "last.pt")["epoch"] == 4
