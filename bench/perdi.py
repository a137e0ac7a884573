#!/usr/bin/env python
"""PerDI decoding and testing: this project's streaming loop against the published approach, one run, one device.

Published approach (UDIP, Patel et al., Commun Biol 2024; ViT-UDIP, Islam et al., medRxiv 2025): for
every dimension separately, decode the original and
the +1 SD latents of all subjects, store both sets of full volumes on the host, then
`scipy.stats.ttest_rel` over the subjects. This project: one decoder pass for the original
latents per subject batch, reused for every dimension, only the brain voxels, and a
streaming paired t on the device.

`--size full`: 128 dimensions x 500 subjects with the `reference` model (random weights) on the
1 mm grid (182x224x182), for a GPU. `--size reduced`: 8 dimensions x 64 subjects with the demo
model (results/train/model.pt when present, else random `demo` weights) on the 2 mm grid, for a
CPU. The baseline runs on `--naive-dims` dimensions (its cost is the same for each); ratios are
per dimension. Also prints the largest t difference between the two (a correctness check) and
the per-dimension cost of what follows the maps in the stage (input grid, four smoothings,
region ranking with 1,000 permutations, four NIfTIs).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from vitudip.imaging import grid
from vitudip.imaging.atlas import load_mni_template
from vitudip.model.checkpoint import load_model
from vitudip.model.device import pick_device
from vitudip.model.patches import nonempty_patches
from vitudip.model.vit_autoencoder import ViTAutoEncoder, preset
from vitudip.perdi.decode import BrainDecoder, dimension_directions, perturbation_maps, perturbed_latents
from vitudip.perdi.regions import rank_regions
from vitudip.perdi.space import atlas_labels, save_map
from vitudip.perdi.stage import smoothed_maps

ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "full": dict(dims=128, subjects=500, naive_dims=1, voxel_mm=1, preset="reference"),
    "reduced": dict(dims=8, subjects=64, naive_dims=2, voxel_mm=2, preset="demo"),
}


def setup(size: str, device: torch.device) -> tuple[ViTAutoEncoder, torch.Tensor, np.ndarray, int]:
    """Model, its token set, the brain mask on its grid, and the input voxel size."""
    spec = SIZES[size]
    demo_model = ROOT / "results" / "train" / "model.pt"
    if size == "reduced" and demo_model.exists():
        model, _ = load_model(demo_model, device)
        print(f"model: trained demo model {demo_model}")
    else:
        torch.manual_seed(0)
        model = ViTAutoEncoder(preset(spec["preset"])).to(device).eval()
        print(f"model: {spec['preset']} preset, random weights")
    template, _ = load_mni_template()
    # as preprocessing does: a coarse voxel is brain when most of its block is
    brain = grid.block_mean((template > 0).astype(np.float32), spec["voxel_mm"]) > 0.5
    brain = grid.pad_to(brain, model.config.image_size)
    tokens = nonempty_patches(torch.from_numpy(brain), model.config.patch_size).to(device)
    return model, tokens, brain, spec["voxel_mm"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def naive_t(model: ViTAutoEncoder, tokens: torch.Tensor, latents: torch.Tensor, dim: int, shift: torch.Tensor,
            batch_size: int) -> np.ndarray:
    """The published way for one dimension: decode original and perturbed volumes, keep them all, ttest_rel."""
    volumes = {"original": [], "perturbed": []}
    for start in range(0, len(latents), batch_size):
        batch = latents[start:start + batch_size]
        moved = perturbed_latents(batch, dimension_directions([dim], shift[None], batch.shape[1]))[0]
        for name, z in (("original", batch), ("perturbed", moved)):
            volumes[name].append(model.to_volume(model.decode(z, tokens), tokens)[:, 0].cpu().numpy())
    original, perturbed = (np.concatenate(volumes[name]) for name in ("original", "perturbed"))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return stats.ttest_rel(perturbed, original, axis=0).statistic


def postprocess_seconds(t_volume: np.ndarray, change_volume: np.ndarray, brain: np.ndarray, voxel_mm: int) -> float:
    """Seconds the stage spends on one dimension after its maps: grid, smoothing, ranking, NIfTIs."""
    shape, affine = grid.mni_grid(voxel_mm)
    labels, names = atlas_labels(shape, affine)
    brain = grid.unpad(brain, shape)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        smoothed = smoothed_maps(grid.unpad(t_volume, shape), grid.unpad(change_volume, shape), brain, 3.0)
        rank_regions(smoothed["change_abs"], labels, names, brain, 0.01, 1000, np.random.default_rng(0))
        for kind, volume in smoothed.items():
            save_map(volume, affine, Path(folder) / f"{kind}.nii.gz")
        return time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="reduced")
    parser.add_argument("--dims", type=int, help="dimensions mapped (default: by size)")
    parser.add_argument("--subjects", type=int, help="subjects (default: by size)")
    parser.add_argument("--naive-dims", type=int, help="dimensions the baseline runs on (default: by size)")
    parser.add_argument("--batch-size", type=int, default=64, help="latents per decoder call (both methods)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    spec = {**SIZES[args.size], **{k: v for k, v in (("dims", args.dims), ("subjects", args.subjects),
                                                     ("naive_dims", args.naive_dims)) if v is not None}}
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; size {args.size}: {spec['dims']} dims x {spec['subjects']} subjects, "
          f"batch {args.batch_size}")
    model, tokens, brain, voxel_mm = setup(args.size, device)
    decoder = BrainDecoder(model, tokens, brain)
    print(f"grid {model.config.image_size}, {len(tokens)} tokens, {decoder.n_voxels} brain voxels")
    latents = torch.randn(spec["subjects"], model.config.encoder_dim, generator=torch.Generator().manual_seed(1))
    latents = latents.to(device)
    dims = list(range(spec["dims"]))
    shifts = latents.std(dim=0)[dims]

    # warm-up: kernels, allocator
    directions = dimension_directions(dims, shifts, latents.shape[1])
    perturbation_maps(decoder, latents[:4], directions[:1], decoder.n_voxels, args.batch_size)
    synchronize(device)
    started = time.perf_counter()
    maps = perturbation_maps(decoder, latents, directions, decoder.n_voxels, args.batch_size)
    synchronize(device)
    ours = time.perf_counter() - started
    memory = f" (peak GPU {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB)" if device.type == "cuda" else ""
    print(f"streaming: {ours:.2f} s for {len(dims)} dims = {ours / len(dims):.3f} s/dim{memory}")

    naive_seconds, worst = [], 0.0
    for j in dims[:spec["naive_dims"]]:
        started = time.perf_counter()
        reference = naive_t(model, tokens, latents, j, shifts[j], args.batch_size)
        synchronize(device)
        naive_seconds.append(time.perf_counter() - started)
        inside = brain & np.isfinite(reference)
        ours_volume = decoder.volume(maps.t[j])
        scale = max(1.0, float(np.abs(reference[inside]).max()))
        worst = max(worst, float(np.abs(ours_volume[inside] - reference[inside]).max()) / scale)
    naive = float(np.mean(naive_seconds))
    print(f"naive (decode both per dim, store volumes, scipy ttest_rel): {naive:.2f} s/dim "
          f"over {len(naive_seconds)} dim(s); est. {naive * len(dims):.1f} s for {len(dims)} dims")
    print(f"speed-up per dimension: {naive / (ours / len(dims)):.1f}x; "
          f"largest |t| difference / max |t|: {worst:.2e}")
    post = postprocess_seconds(decoder.volume(maps.t[0]), decoder.volume(maps.change[0]), brain, voxel_mm)
    print(f"stage work after the maps (input grid, 4 smoothings, ranking, 4 NIfTIs): {post:.2f} s/dim")


if __name__ == "__main__":
    sys.exit(main())
