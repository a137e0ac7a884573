"""The PerDI stage in one call: brain maps, region ranking and panels for the chosen dimensions and every locus."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vitudip.imaging.cache_grid import CacheGrid
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import LOCUS_DIRECTIONS, LOCUS_REGIONS, REGIONS, udip_columns
from vitudip.model.checkpoint import load_model
from vitudip.model.device import pick_device, set_cpu_threads
from vitudip.perdi.decode import BrainDecoder, PerturbationMaps, dimension_directions, latent_sd, perturbation_maps
from vitudip.perdi.inputs import LOCI_COLUMNS, loci_dimensions, mapped_dimensions, subject_latents, udip_sd
from vitudip.perdi.locus import LocusDirection, direction_table, lead_effects, locus_direction, locus_leads
from vitudip.perdi.regions import REGION_COLUMNS, rank_regions
from vitudip.perdi.settings import PerdiSettings
from vitudip.perdi.space import atlas_labels, save_map, smooth_in_brain, template_on_grid, to_input_grid
from vitudip.plots.perdi import PeakSlices, canonical, peak_slices, plot_perdi_overview, plot_perdi_panel

log = logging.getLogger("vitudip.perdi")

#: Regions named on each dimension's panel.
PANEL_REGIONS = 3

#: Maps the regions can be ranked on (``perdi.rank_by``), with the label of their panels.
RANKED_MAPS = {"change": "smoothed mean change (image z units)", "t": "smoothed paired t"}

#: Every dimension's (and locus's) map files: suffix after ``udip_NNN`` (``locus_NNN``) and description in the
#: NIfTI header.
MAP_FILES = {"t": (".nii.gz", "t"), "t_abs": ("_abs.nii.gz", "|t|"), "change": ("_change.nii.gz", "mean change"),
             "change_abs": ("_change_abs.nii.gz", "|change|")}


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


@dataclass(frozen=True)
class MapTarget:
    """One direction's maps, ranking and panel.

    Attributes:
        name: file stem of its maps and panel (``udip_007``, ``locus_002``).
        title: what moved it and over how many subjects, for its panel and map headers (after its name).
        key: the leading columns of its rows in the region table (``{"dimension": "udip_007"}``).
        stream: its region ranking's permutations are seeded ``[seed, stream]``.
    """

    name: str
    title: str
    key: dict[str, Any]
    stream: int


def _locus_directions(loci_path: str | os.PathLike, sumstats_dir: str | os.PathLike | None,
                      udips_path: str | os.PathLike, n_dims: int,
                      settings: PerdiSettings) -> list[LocusDirection]:
    """Every locus's latent shift from its lead variant's betas; none without loci."""
    leads = locus_leads(loci_path)
    if not leads:
        return []
    if sumstats_dir is None:
        raise ValueError(f"{loci_path} has {len(leads)} loci but no GWAS summary statistics folder (--sumstats) "
                         "was given: locus directions need every dimension's beta of each lead variant")
    effects = lead_effects(sumstats_dir, leads, udip_columns(n_dims))
    sd = udip_sd(udips_path, n_dims)
    return [locus_direction(e, sd, settings.inverse_normal, settings.locus_shift, settings.sd_multiple)
            for e in effects]


def _locus_size(settings: PerdiSettings) -> str:
    """What a locus direction's size means, for titles and the log."""
    return {"two_alleles": "two effect alleles", "genetic_sd": "+1 SD of the lead variant's allele count",
            "sd_multiple": f"{settings.sd_multiple:g} SD long"}[settings.locus_shift]


@dataclass(frozen=True)
class PerdiInputs:
    """What the PerDI stage reads.

    Attributes:
        model: ``train/model.pt``.
        udips: ``embed/udips.tsv``.
        cache: ``preprocess/cache`` (its ``grid.json``).
        qc: ``preprocess/qc.tsv``.
        brain_mask: ``preprocess/brain_mask.npy`` (the union brain mask).
        loci: ``loci/loci_merged.tsv``; required when ``settings.dimensions`` is ``loci`` or ``leads``.
        sumstats: ``gwas/sumstats`` (tabix-indexed); required when the loci table has loci.
        atlas_cache: folder caching the atlas on the input grid (None: rebuild every run).
    """

    model: str | os.PathLike
    udips: str | os.PathLike
    cache: str | os.PathLike
    qc: str | os.PathLike
    brain_mask: str | os.PathLike
    loci: str | os.PathLike | None = None
    sumstats: str | os.PathLike | None = None
    atlas_cache: str | os.PathLike | None = None


@dataclass(frozen=True)
class PerdiOutputs:
    """What the PerDI stage writes (:func:`run_perdi` says what each holds).

    Attributes:
        maps: folder of the NIfTI maps.
        regions: the dimensions' region table.
        panels: folder of the panels.
        overview: the overview figure.
        locus_regions: the locus directions' region table; required with a loci table.
        locus_directions: the locus directions' shifts; required with a loci table.
    """

    maps: str | os.PathLike
    regions: str | os.PathLike
    panels: str | os.PathLike
    overview: str | os.PathLike
    locus_regions: str | os.PathLike | None = None
    locus_directions: str | os.PathLike | None = None

    def staged(self, with_loci: bool) -> dict[str, str | os.PathLike]:
        """The paths to write together, by name; the locus tables only with a loci table.

        Args:
            with_loci: a loci table was read.
        """
        paths = {"maps": self.maps, "panels": self.panels, "regions": self.regions, "overview": self.overview}
        if with_loci:
            paths.update(locus_regions=self.locus_regions, locus_directions=self.locus_directions)
        return paths


@dataclass(frozen=True)
class PerdiPlan:
    """What the stage maps, read from its inputs.

    Attributes:
        decoder: the trained model's decoder over the union brain's voxels, on the stage's device.
        input_scale: the training images' scale; the decoder predicts centred images divided by it.
        n_dims: the latent's width.
        space: the input grid with its brain mask, atlas labels and template.
        subjects: the perturbed subjects' ids.
        latents: their latents ``(n, n_dims)``.
        loci: the dimensions the loci table names, when ``settings.dimensions`` reads them from one; else None.
        dims: the mapped dimensions.
        directions: every locus's direction (none without loci).
        with_loci: a loci table was read, so the locus tables are written.
    """

    decoder: BrainDecoder
    input_scale: float
    n_dims: int
    space: InputSpace
    subjects: list[str]
    latents: np.ndarray
    loci: list[int] | None
    dims: list[int]
    directions: list[LocusDirection]
    with_loci: bool


def plan_perdi(inputs: PerdiInputs, settings: PerdiSettings, device: torch.device) -> PerdiPlan:
    """Read the model, the subjects' latents and the loci; place the atlas on the input grid.

    Args:
        inputs: the stage's input paths.
        settings: see :class:`PerdiSettings`.
        device: where the model goes.

    Raises:
        ValueError: the cache grid is not the model's image size (and what the readers raise on bad input).
    """
    model, state = load_model(inputs.model, device)
    n_dims = model.config.encoder_dim
    layout = CacheGrid.read(inputs.cache)
    if tuple(layout.pad_to) != model.config.image_size:
        raise ValueError(f"the cache grid {tuple(layout.pad_to)} is not the model's image size "
                         f"{model.config.image_size}: the model was trained on another cache")
    brain = np.load(inputs.brain_mask).astype(bool)
    subjects, latents = subject_latents(inputs.udips, inputs.qc, settings.n_subjects, n_dims)
    by_loci = settings.dimensions in LOCI_COLUMNS
    loci = (loci_dimensions(inputs.loci, n_dims, LOCI_COLUMNS[settings.dimensions])
            if by_loci and inputs.loci is not None else None)
    dims = mapped_dimensions(settings.dimensions, n_dims, loci)
    directions = (_locus_directions(inputs.loci, inputs.sumstats, inputs.udips, n_dims, settings)
                  if inputs.loci is not None else [])
    space = InputSpace.build(layout, brain, settings.atlas_threshold, inputs.atlas_cache)
    return PerdiPlan(BrainDecoder(model, state["brain_tokens"], brain), float(state.get("input_scale", 1.0)), n_dims,
                     space, subjects, latents, loci, dims, directions, inputs.loci is not None)


def decode_perturbations(plan: PerdiPlan, settings: PerdiSettings, device: torch.device) -> PerturbationMaps | None:
    """Decode every subject moved along each mapped dimension and locus direction, and test the change.

    Args:
        plan: what to map.
        settings: see :class:`PerdiSettings`.
        device: where the latents go (the decoder's device).

    Returns:
        per direction (the dimensions, then the loci) and brain voxel, the paired t and mean change in the
        decoder's units; None when there is no direction.
    """
    names = udip_columns(plan.n_dims)
    z = torch.from_numpy(plan.latents).to(device)
    shifts = settings.sd_multiple * latent_sd(z)[plan.dims]
    flat = [names[d] for d, s in zip(plan.dims, shifts.tolist()) if s == 0]
    if flat:
        log.warning("dimension(s) %s do not vary over the subjects: their maps are 0", ", ".join(flat))
    locus_size = _locus_size(settings)
    for direction in plan.directions:
        lead = direction.effects.lead
        log.info("locus %d (%s, effect allele %s): shift of %s = %.3g x the per-allele effect, %.3g SD long",
                 lead.locus, lead.variant_id, direction.effects.effect_allele, locus_size, direction.multiplier,
                 direction.sd_length)
    shift_rows = [dimension_directions(plan.dims, shifts, plan.n_dims)]
    if plan.directions:
        shift_rows.append(torch.from_numpy(np.stack([d.shift for d in plan.directions])).to(shifts))
    all_directions = torch.cat(shift_rows)
    log.info("PerDI of %d dimension(s) (+%g SD) and %d locus direction(s) (%s) over %d subjects on %s; "
             "%d brain voxels decoded", len(plan.dims), settings.sd_multiple, len(plan.directions), locus_size,
             len(plan.subjects), device, plan.decoder.n_voxels)
    started = time.perf_counter()
    maps = (perturbation_maps(plan.decoder, z, all_directions, plan.decoder.n_voxels, settings.batch_size)
            if len(all_directions) else None)
    log.info("decoded and tested in %.1f s", time.perf_counter() - started)
    return maps


def map_targets(plan: PerdiPlan, settings: PerdiSettings) -> list[MapTarget]:
    """The mapped dimensions' targets, then the locus directions', in the order :func:`decode_perturbations` decodes.

    Args:
        plan: what to map.
        settings: see :class:`PerdiSettings`.
    """
    names = udip_columns(plan.n_dims)
    subjects = f"{len(plan.subjects)} subjects"
    locus_size = _locus_size(settings)
    # dimension d's permutations are seeded [seed, d]; a locus's [seed, n_dims + locus] never collides
    targets = [MapTarget(names[d], f"+{settings.sd_multiple:g} SD, {subjects}", {"dimension": names[d]}, d)
               for d in plan.dims]
    for direction in plan.directions:
        lead = direction.effects.lead
        targets.append(MapTarget(lead.name, f"{locus_size} of {lead.variant_id}, {subjects}",
                                 {"locus": lead.locus, "lead_snp": lead.variant_id}, plan.n_dims + lead.locus))
    return targets


class RankedMap(NamedTuple):
    """One target's region ranking and what its panel shows.

    Attributes:
        table: its region rows, led by the target's key columns.
        view: the slices through the peak of its smoothed ranked map.
        peak: the largest value of its smoothed magnitude map.
    """

    table: pd.DataFrame
    view: PeakSlices
    peak: float


def rank_and_draw(target: MapTarget, smoothed: dict[str, np.ndarray], space: InputSpace, settings: PerdiSettings,
                  panels_dir: Path) -> RankedMap:
    """Rank the regions on one target's smoothed ``settings.rank_by`` magnitude and draw its panel.

    Args:
        target: the direction mapped.
        smoothed: its maps (:func:`smoothed_maps`).
        space: the input grid's brain, atlas labels and template.
        settings: see :class:`PerdiSettings`.
        panels_dir: where its panel goes.
    """
    ranked = smoothed[f"{settings.rank_by}_abs"]
    table = rank_regions(ranked, space.labels, space.region_names, space.brain, settings.top_fraction,
                         settings.permutations, np.random.default_rng([settings.seed, target.stream]))
    for position, (column, value) in enumerate(target.key.items()):
        table.insert(position, column, value)
    view = peak_slices(canonical(smoothed[settings.rank_by], space.layout.input_affine)[0], space.template,
                       space.template_affine)
    plot_perdi_panel(view, panels_dir / f"{target.name}.png", f"PerDI {target.name}: {target.title}",
                     _panel_lines(table), RANKED_MAPS[settings.rank_by])
    return RankedMap(table, view, float(ranked.max()))


def map_every_target(plan: PerdiPlan, maps: PerturbationMaps | None, targets: list[MapTarget],
                     settings: PerdiSettings, maps_dir: Path, panels_dir: Path) -> list[RankedMap]:
    """Smooth, write, rank and draw each target's maps on the input grid.

    Args:
        plan: what was mapped.
        maps: the decoded tests, one row per target (None only without targets).
        targets: from :func:`map_targets`.
        settings: see :class:`PerdiSettings`.
        maps_dir: where the NIfTI maps go.
        panels_dir: where the panels go.
    """
    layout = plan.space.layout
    ranked = []
    with ThreadPoolExecutor(max_workers=1) as writer:
        writing = []
        for j, target in enumerate(tqdm(targets, desc="perdi maps", unit="map", mininterval=10)):
            # the decoder predicts centred images divided by input_scale: undo the division
            smoothed = smoothed_maps(to_input_grid(plan.decoder.volume(maps.t[j]), layout),
                                     to_input_grid(plan.decoder.volume(maps.change[j] * plan.input_scale), layout),
                                     plan.space.brain, settings.smoothing_sigma)
            # gzip runs outside the GIL: one direction's maps are written while the next is computed
            for job in writing:
                job.result()
            writing = [writer.submit(save_map, smoothed[kind], layout.input_affine, maps_dir / f"{target.name}{suffix}",
                                     f"PerDI {target.name} {label}, {target.title}, sigma {settings.smoothing_sigma:g}")
                       for kind, (suffix, label) in MAP_FILES.items()]
            ranked.append(rank_and_draw(target, smoothed, plan.space, settings, panels_dir))
        for job in writing:
            job.result()
    return ranked


def _overview_rows(plan: PerdiPlan, settings: PerdiSettings, targets: list[MapTarget],
                   ranked: list[RankedMap]) -> tuple[list[str], str]:
    """The overview's rows and title: the loci table's dimensions (else the ``overview_dimensions`` with the largest
    peak), then every locus direction."""
    names = udip_columns(plan.n_dims)
    peaks = {target.name: result.peak for target, result in zip(targets, ranked)}
    chosen = (plan.loci if plan.loci is not None
              else sorted(plan.dims, key=lambda d: -peaks[names[d]])[:settings.overview_dimensions])
    shown = [names[d] for d in chosen if names[d] in peaks]
    title = (f"PerDI of the {len(shown)} dimension(s) with genomic risk loci" if plan.loci is not None
             else f"PerDI: the {len(shown)} dimension(s) with the largest peak")
    if plan.directions:
        title += f" and the {len(plan.directions)} locus direction(s)"
    return [*shown, *(t.name for t in targets[len(plan.dims):])], title


def write_perdi(plan: PerdiPlan, maps: PerturbationMaps | None, settings: PerdiSettings,
                outputs: PerdiOutputs) -> pd.DataFrame:
    """Write every target's maps and panel, the region tables and the overview; together or not at all.

    Args:
        plan: what was mapped.
        maps: from :func:`decode_perturbations`.
        settings: see :class:`PerdiSettings`.
        outputs: the stage's output paths.

    Returns:
        The region table of the dimensions.
    """
    targets = map_targets(plan, settings)
    with staged_outputs(outputs.staged(plan.with_loci)) as out:
        out["maps"].mkdir()
        out["panels"].mkdir()
        ranked = map_every_target(plan, maps, targets, settings, out["maps"], out["panels"])
        tables = [result.table for result in ranked]
        regions = _region_table(tables[:len(plan.dims)], ["dimension"])
        REGIONS.write(regions, out["regions"])
        if plan.with_loci:
            locus_regions = _region_table(tables[len(plan.dims):], ["locus", "lead_snp"])
            LOCUS_REGIONS.write(locus_regions, out["locus_regions"])
            LOCUS_DIRECTIONS.write(direction_table(plan.directions, settings.locus_shift, plan.n_dims),
                                   out["locus_directions"])
            log.info("locus directions: %d map(s), %d region rows to %s", len(plan.directions), len(locus_regions),
                     outputs.locus_regions)
        shown, title = _overview_rows(plan, settings, targets, ranked)
        views = {target.name: result.view for target, result in zip(targets, ranked)}
        _overview(views, shown, tables, targets, title, out["overview"])
    log.info("wrote %d map(s) to %s and %d region rows to %s", len(targets), outputs.maps, len(regions),
             outputs.regions)
    return regions


def run_perdi(inputs: PerdiInputs, outputs: PerdiOutputs, settings: PerdiSettings,
              threads: int | None = None) -> pd.DataFrame:
    """Map, rank and draw every chosen dimension and every locus; all outputs appear together or not at all.

    Writes, brain-masked and smoothed on the input grid, ``outputs.maps/udip_NNN.nii.gz`` (signed t),
    ``udip_NNN_abs.nii.gz`` (|t|, the published map), ``udip_NNN_change.nii.gz`` (signed mean change
    of the decoded image, in the preprocessed images' z units) and ``udip_NNN_change_abs.nii.gz``
    (|change|); the ``settings.rank_by`` magnitude map ranks the regions. Also
    ``outputs.panels/udip_NNN.png``, ``outputs.regions`` (dimension + :data:`REGION_COLUMNS`) and
    ``outputs.overview`` (the loci table's dimensions with ``dimensions`` loci or leads, else the
    ``overview_dimensions`` with the largest peak of the ranked map; then every locus).

    With a loci table, every locus's latent direction (its lead variant's betas, sized by
    ``settings.locus_shift``) gets the same maps and panel as ``locus_NNN``, its ranking in
    ``outputs.locus_regions`` (locus, lead_snp + :data:`REGION_COLUMNS`) and its shift in
    ``outputs.locus_directions`` (both header-only without loci).

    Args:
        inputs: the stage's input paths.
        outputs: the stage's output paths.
        settings: see :class:`PerdiSettings` (:meth:`PerdiSettings.from_config`).
        threads: CPU threads for torch (None: torch's default).

    Returns:
        The region table of the dimensions.
    """
    if inputs.loci is not None and (outputs.locus_regions is None or outputs.locus_directions is None):
        raise ValueError("with a loci table the locus regions and locus directions tables must be given too")
    set_cpu_threads(threads)
    device = pick_device(settings.device, "perdi.device")
    plan = plan_perdi(inputs, settings, device)
    maps = decode_perturbations(plan, settings, device)
    return write_perdi(plan, maps, settings, outputs)


def _region_table(tables: list[pd.DataFrame], key: list[str]) -> pd.DataFrame:
    """Rankings stacked, or the header alone."""
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*key, *REGION_COLUMNS])


def _overview(views: dict[str, PeakSlices], shown: list[str], tables: list[pd.DataFrame],
              targets: list[MapTarget], title: str, path: Path) -> None:
    """The overview figure: one row per shown map, labelled with its top region."""
    top = {target.name: table.iloc[0] for target, table in zip(targets, tables) if len(table)}
    rows = []
    for name in shown:
        best = top.get(name)
        label = name if best is None else f"{name}\n{best['region']} ({best['side']})"
        rows.append((label, views[name]))
    plot_perdi_overview(rows, path, title)
