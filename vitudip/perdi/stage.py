"""The PerDI stage in one call: brain maps, region ranking and panels for the chosen dimensions."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vitudip.imaging.preprocess import CacheGrid
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import REGIONS, udip_columns
from vitudip.model.checkpoint import load_model
from vitudip.model.device import pick_device
from vitudip.perdi.decode import BrainDecoder, latent_sd, perturbation_maps
from vitudip.perdi.inputs import LOCI_COLUMNS, loci_dimensions, mapped_dimensions, subject_latents
from vitudip.perdi.regions import REGION_COLUMNS, rank_regions
from vitudip.perdi.space import atlas_labels, save_map, smooth_in_brain, template_on_grid, to_input_grid
from vitudip.plots.perdi import PeakSlices, canonical, peak_slices, plot_perdi_overview, plot_perdi_panel

log = logging.getLogger("vitudip.perdi")

#: Regions named on each dimension's panel.
PANEL_REGIONS = 3

#: Maps the regions can be ranked on (``perdi.rank_by``), with the label of their panels.
RANKED_MAPS = {"change": "smoothed mean change (image z units)", "t": "smoothed paired t"}

#: Every dimension's map files: suffix after ``udip_NNN`` and description in the NIfTI header.
MAP_FILES = {"t": (".nii.gz", "t"), "t_abs": ("_abs.nii.gz", "|t|"), "change": ("_change.nii.gz", "mean change"),
             "change_abs": ("_change_abs.nii.gz", "|change|")}


@dataclass
class PerdiSettings:
    """How the PerDI stage perturbs, tests, smooths and ranks (the config's ``perdi`` section and the seed).

    Attributes:
        n_subjects: subjects whose latents are perturbed: the first ones of the UDIP table.
        sd_multiple: the perturbation, in SDs of the dimension over those subjects.
        dimensions: ``all``, ``loci`` (every dimension named in the merged loci table) or ``leads``
            (each locus's lead dimension: a few maps instead of every dimension touching a locus).
        rank_by: the map whose smoothed magnitude ranks the regions and fills the panels:
            ``change`` (mean decoded change, how much the brain changes) or ``t`` (the
            published paired t, how consistently it changes across subjects).
        smoothing_sigma: Gaussian SD of the smoothing, in voxels of the input grid.
        top_fraction: share of brain voxels (by the ranked map) that counts as the top for ``top_fraction_excess``.
        permutations: label permutations of ``permutation_p``.
        atlas_threshold: Harvard-Oxford probability (percent) a voxel needs for a label.
        batch_size: latents per decoder call.
        device: ``auto`` (CUDA when present), ``cuda`` or ``cpu``.
        overview_dimensions: rows of the overview figure when no loci table says which dimensions to show.
        seed: seed of the permutations.
    """

    n_subjects: int
    sd_multiple: float
    dimensions: str
    rank_by: str
    smoothing_sigma: float
    top_fraction: float
    permutations: int
    atlas_threshold: float
    batch_size: int
    device: str
    overview_dimensions: int
    seed: int

    #: The config keys the settings come from (the perdi script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("perdi", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PerdiSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`), which checked each value.

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        return cls(**config["perdi"], seed=config["seed"])


def _panel_lines(table: pd.DataFrame) -> list[str]:
    """The top regions of one dimension, one line each."""
    return [f"{row.rank}. {row.region} ({row.side})  KS {row.ks_score:.2f}  "
            f"top excess {row.top_fraction_excess:+.3f}  p {row.permutation_p:.3g}"
            for row in table.head(PANEL_REGIONS).itertuples()]


def smoothed_maps(t_volume: np.ndarray, change_volume: np.ndarray, brain: np.ndarray,
                  sigma: float) -> dict[str, np.ndarray]:
    """One dimension's written maps (the keys of :data:`MAP_FILES`), smoothed within the brain.

    Args:
        t_volume: paired t on the input grid.
        change_volume: mean change on the input grid.
        brain: bool brain mask on the input grid.
        sigma: Gaussian SD in voxels.
    """
    smoothed = {}
    for kind, volume in (("t", t_volume), ("change", change_volume)):
        smoothed[kind] = smooth_in_brain(volume, brain, sigma)
        # magnitude before smoothing, as published: opposite signs side by side do not cancel
        smoothed[f"{kind}_abs"] = smooth_in_brain(np.abs(volume), brain, sigma)
    return smoothed


@dataclass(frozen=True)
class InputSpace:
    """What every map is placed on: the input grid, its brain mask, atlas labels and (RAS) template.

    Attributes:
        layout: the cache's grid description.
        brain: bool union brain mask on the input grid.
        labels: Harvard-Oxford labels on the input grid.
        region_names: ``region_names[k - 1]`` is label ``k``.
        template: MNI152 template on the input grid, reoriented to RAS for display.
        template_affine: its RAS affine.
    """

    layout: CacheGrid
    brain: np.ndarray
    labels: np.ndarray
    region_names: tuple[str, ...]
    template: np.ndarray
    template_affine: np.ndarray

    @classmethod
    def build(cls, layout: CacheGrid, brain: np.ndarray, atlas_threshold: float,
              atlas_cache: str | os.PathLike | None) -> InputSpace:
        """From the cache grid and the union brain mask on the cache grid."""
        shape, affine = layout.input_shape, layout.input_affine
        labels, names = atlas_labels(shape, affine, atlas_threshold, atlas_cache)
        template, template_affine = canonical(template_on_grid(shape, affine), affine)
        return cls(layout, to_input_grid(brain, layout), labels, names, template, template_affine)


def run_perdi(model_path: str | os.PathLike, udips_path: str | os.PathLike, cache_dir: str | os.PathLike,
              qc_path: str | os.PathLike, brain_mask_path: str | os.PathLike, maps_dir: str | os.PathLike,
              regions_path: str | os.PathLike, panels_dir: str | os.PathLike, overview_path: str | os.PathLike,
              settings: PerdiSettings, loci_path: str | os.PathLike | None = None,
              atlas_cache: str | os.PathLike | None = None) -> pd.DataFrame:
    """Map, rank and draw every chosen dimension; all outputs appear together or not at all.

    Writes, brain-masked and smoothed on the input grid, ``maps_dir/udip_NNN.nii.gz`` (signed t),
    ``udip_NNN_abs.nii.gz`` (|t|, the published map), ``udip_NNN_change.nii.gz`` (signed mean change
    of the decoded image, in the preprocessed images' z units) and ``udip_NNN_change_abs.nii.gz``
    (|change|); the ``settings.rank_by`` magnitude map ranks the regions. Also
    ``panels_dir/udip_NNN.png``, ``regions_path`` (dimension + :data:`REGION_COLUMNS`) and
    ``overview_path`` (the loci table's dimensions, else the ``overview_dimensions`` with the
    largest peak of the ranked map).

    Args:
        model_path: ``train/model.pt``.
        udips_path: ``embed/udips.tsv``.
        cache_dir: ``preprocess/cache`` (its ``grid.json``).
        qc_path: ``preprocess/qc.tsv``.
        brain_mask_path: ``preprocess/brain_mask.npy`` (the union brain mask).
        maps_dir, regions_path, panels_dir, overview_path: outputs.
        settings: see :class:`PerdiSettings` (:meth:`PerdiSettings.from_config`).
        loci_path: ``loci/loci_merged.tsv``; required when ``settings.dimensions`` is ``loci``.
        atlas_cache: folder caching the atlas on the input grid (None: rebuild every run).

    Returns:
        The region table.
    """
    device = pick_device(settings.device, "perdi.device")
    model, state = load_model(model_path, device)
    n_dims = model.config.encoder_dim
    layout = CacheGrid.read(cache_dir)
    if tuple(layout.pad_to) != model.config.image_size:
        raise ValueError(f"the cache grid {tuple(layout.pad_to)} is not the model's image size "
                         f"{model.config.image_size}: the model was trained on another cache")
    brain = np.load(brain_mask_path).astype(bool)
    subjects, latents = subject_latents(udips_path, qc_path, settings.n_subjects, n_dims)
    loci = (loci_dimensions(loci_path, n_dims, LOCI_COLUMNS.get(settings.dimensions, "dimensions"))
            if loci_path is not None else None)
    dims = mapped_dimensions(settings.dimensions, n_dims, loci)
    names = udip_columns(n_dims)
    space = InputSpace.build(layout, brain, settings.atlas_threshold, atlas_cache)

    decoder = BrainDecoder(model, state["brain_tokens"], brain)
    z = torch.from_numpy(latents).to(device)
    shifts = settings.sd_multiple * latent_sd(z)[dims]
    flat = [names[d] for d, s in zip(dims, shifts.tolist()) if s == 0]
    if flat:
        log.warning("dimension(s) %s do not vary over the subjects: their maps are 0", ", ".join(flat))
    log.info("PerDI of %d dimension(s) over %d subjects (+%g SD) on %s; %d brain voxels decoded",
             len(dims), len(subjects), settings.sd_multiple, device, decoder.n_voxels)
    started = time.perf_counter()
    maps = perturbation_maps(decoder, z, dims, shifts, decoder.n_voxels, settings.batch_size) if dims else None
    # the decoder predicts centred images divided by input_scale: undo the division
    change_unit = float(state.get("input_scale", 1.0))
    log.info("decoded and tested in %.1f s", time.perf_counter() - started)

    targets = {"maps": maps_dir, "panels": panels_dir, "regions": regions_path, "overview": overview_path}
    tables, views, peaks = [], {}, {}
    what = f"+{settings.sd_multiple:g} SD, {len(subjects)} subjects"
    header = f"{what}, sigma {settings.smoothing_sigma:g}"
    with staged_outputs(targets) as out, ThreadPoolExecutor(max_workers=1) as writer:
        out["maps"].mkdir()
        out["panels"].mkdir()
        writing = []
        for j, dim in enumerate(tqdm(dims, desc="perdi maps", unit="dim", mininterval=10)):
            name = names[dim]
            smoothed = smoothed_maps(to_input_grid(decoder.volume(maps.t[j]), layout),
                                     to_input_grid(decoder.volume(maps.change[j] * change_unit), layout),
                                     space.brain, settings.smoothing_sigma)
            # gzip runs outside the GIL: one dimension's maps are written while the next is computed
            for job in writing:
                job.result()
            writing = [writer.submit(save_map, smoothed[kind], layout.input_affine, out["maps"] / f"{name}{suffix}",
                                     f"PerDI {name} {label}, {header}")
                       for kind, (suffix, label) in MAP_FILES.items()]
            ranked = smoothed[f"{settings.rank_by}_abs"]
            table = rank_regions(ranked, space.labels, space.region_names, space.brain, settings.top_fraction,
                                 settings.permutations, np.random.default_rng([settings.seed, dim]))
            table.insert(0, "dimension", name)
            tables.append(table)
            views[dim] = peak_slices(canonical(smoothed[settings.rank_by], layout.input_affine)[0], space.template,
                                     space.template_affine)
            peaks[dim] = float(ranked.max())
            plot_perdi_panel(views[dim], out["panels"] / f"{name}.png", f"PerDI {name}: {what}",
                             _panel_lines(table), RANKED_MAPS[settings.rank_by])
        for job in writing:
            job.result()
        regions = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
            columns=["dimension", *REGION_COLUMNS])
        REGIONS.write(regions, out["regions"])
        _overview(views, peaks, regions, loci, names, settings.overview_dimensions, out["overview"])
    log.info("wrote %d map(s) to %s and %d region rows to %s", len(dims), maps_dir, len(regions), regions_path)
    return regions


def _overview(views: dict[int, PeakSlices], peaks: dict[int, float], regions: pd.DataFrame, loci: list[int] | None,
              names: list[str], n_top: int, path: Path) -> None:
    """The overview figure: dimensions with loci, else those with the largest peak of the ranked map."""
    if loci is not None:
        shown = [d for d in loci if d in views]
        title = f"PerDI of the {len(shown)} dimension(s) with genomic risk loci"
    else:
        shown = sorted(views, key=lambda d: -peaks[d])[:n_top]
        title = f"PerDI: the {len(shown)} dimension(s) with the largest peak"
    top = regions[regions["rank"] == 1].set_index("dimension") if len(regions) else None
    rows = []
    for dim in shown:
        best = top.loc[names[dim]] if top is not None and names[dim] in top.index else None
        label = names[dim] if best is None else f"{names[dim]}\n{best['region']} ({best['side']})"
        rows.append((label, views[dim]))
    plot_perdi_overview(rows, path, title)
