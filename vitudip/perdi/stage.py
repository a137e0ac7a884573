"""The PerDI stage in one call: brain maps, region ranking and panels for the chosen dimensions and every locus."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vitudip.imaging.preprocess import CacheGrid
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import LOCUS_DIRECTIONS, LOCUS_REGIONS, REGIONS, udip_columns
from vitudip.model.checkpoint import load_model
from vitudip.model.device import pick_device
from vitudip.perdi.decode import BrainDecoder, dimension_directions, latent_sd, perturbation_maps
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
    """

    name: str
    title: str
    key: dict[str, Any]


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


def run_perdi(model_path: str | os.PathLike, udips_path: str | os.PathLike, cache_dir: str | os.PathLike,
              qc_path: str | os.PathLike, brain_mask_path: str | os.PathLike, maps_dir: str | os.PathLike,
              regions_path: str | os.PathLike, panels_dir: str | os.PathLike, overview_path: str | os.PathLike,
              settings: PerdiSettings, loci_path: str | os.PathLike | None = None,
              atlas_cache: str | os.PathLike | None = None, sumstats_dir: str | os.PathLike | None = None,
              locus_regions_path: str | os.PathLike | None = None,
              locus_directions_path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Map, rank and draw every chosen dimension and every locus; all outputs appear together or not at all.

    Writes, brain-masked and smoothed on the input grid, ``maps_dir/udip_NNN.nii.gz`` (signed t),
    ``udip_NNN_abs.nii.gz`` (|t|, the published map), ``udip_NNN_change.nii.gz`` (signed mean change
    of the decoded image, in the preprocessed images' z units) and ``udip_NNN_change_abs.nii.gz``
    (|change|); the ``settings.rank_by`` magnitude map ranks the regions. Also
    ``panels_dir/udip_NNN.png``, ``regions_path`` (dimension + :data:`REGION_COLUMNS`) and
    ``overview_path`` (the loci table's dimensions with ``dimensions`` loci or leads, else the
    ``overview_dimensions`` with the largest peak of the ranked map; then every locus).

    With a loci table, every locus's latent direction (its lead variant's betas, sized by
    ``settings.locus_shift``) gets the same maps and panel as ``locus_NNN``, its ranking in
    ``locus_regions_path`` (locus, lead_snp + :data:`REGION_COLUMNS`) and its shift in
    ``locus_directions_path`` (both header-only without loci).

    Args:
        model_path: ``train/model.pt``.
        udips_path: ``embed/udips.tsv``.
        cache_dir: ``preprocess/cache`` (its ``grid.json``).
        qc_path: ``preprocess/qc.tsv``.
        brain_mask_path: ``preprocess/brain_mask.npy`` (the union brain mask).
        maps_dir, regions_path, panels_dir, overview_path: outputs.
        settings: see :class:`PerdiSettings` (:meth:`PerdiSettings.from_config`).
        loci_path: ``loci/loci_merged.tsv``; required when ``settings.dimensions`` is ``loci`` or ``leads``.
        atlas_cache: folder caching the atlas on the input grid (None: rebuild every run).
        sumstats_dir: ``gwas/sumstats`` (tabix-indexed); required when the loci table has loci.
        locus_regions_path, locus_directions_path: outputs, required with ``loci_path``.

    Returns:
        The region table of the dimensions.
    """
    if loci_path is not None and (locus_regions_path is None or locus_directions_path is None):
        raise ValueError("with a loci table the locus regions and locus directions tables must be given too")
    device = pick_device(settings.device, "perdi.device")
    model, state = load_model(model_path, device)
    n_dims = model.config.encoder_dim
    layout = CacheGrid.read(cache_dir)
    if tuple(layout.pad_to) != model.config.image_size:
        raise ValueError(f"the cache grid {tuple(layout.pad_to)} is not the model's image size "
                         f"{model.config.image_size}: the model was trained on another cache")
    brain = np.load(brain_mask_path).astype(bool)
    subjects, latents = subject_latents(udips_path, qc_path, settings.n_subjects, n_dims)
    by_loci = settings.dimensions in LOCI_COLUMNS
    loci = (loci_dimensions(loci_path, n_dims, LOCI_COLUMNS[settings.dimensions])
            if by_loci and loci_path is not None else None)
    dims = mapped_dimensions(settings.dimensions, n_dims, loci)
    directions = (_locus_directions(loci_path, sumstats_dir, udips_path, n_dims, settings)
                  if loci_path is not None else [])
    names = udip_columns(n_dims)
    space = InputSpace.build(layout, brain, settings.atlas_threshold, atlas_cache)

    decoder = BrainDecoder(model, state["brain_tokens"], brain)
    z = torch.from_numpy(latents).to(device)
    shifts = settings.sd_multiple * latent_sd(z)[dims]
    flat = [names[d] for d, s in zip(dims, shifts.tolist()) if s == 0]
    if flat:
        log.warning("dimension(s) %s do not vary over the subjects: their maps are 0", ", ".join(flat))
    locus_size = _locus_size(settings)
    for direction in directions:
        lead = direction.effects.lead
        log.info("locus %d (%s, effect allele %s): shift of %s = %.3g x the per-allele effect, %.3g SD long",
                 lead.locus, lead.variant_id, direction.effects.effect_allele, locus_size, direction.multiplier,
                 direction.sd_length)
    shift_rows = [dimension_directions(dims, shifts, n_dims)]
    if directions:
        shift_rows.append(torch.from_numpy(np.stack([d.shift for d in directions])).to(shifts))
    all_directions = torch.cat(shift_rows)
    log.info("PerDI of %d dimension(s) (+%g SD) and %d locus direction(s) (%s) over %d subjects on %s; "
             "%d brain voxels decoded", len(dims), settings.sd_multiple, len(directions), locus_size,
             len(subjects), device, decoder.n_voxels)
    started = time.perf_counter()
    maps = (perturbation_maps(decoder, z, all_directions, decoder.n_voxels, settings.batch_size)
            if len(all_directions) else None)
    # the decoder predicts centred images divided by input_scale: undo the division
    change_unit = float(state.get("input_scale", 1.0))
    log.info("decoded and tested in %.1f s", time.perf_counter() - started)

    what = f"+{settings.sd_multiple:g} SD, {len(subjects)} subjects"
    targets = [MapTarget(names[d], what, {"dimension": names[d]}) for d in dims]
    targets += [MapTarget(d.effects.lead.name, f"{locus_size} of {d.effects.lead.variant_id}, {len(subjects)} subjects",
                          {"locus": d.effects.lead.locus, "lead_snp": d.effects.lead.variant_id})
                for d in directions]
    outputs = {"maps": maps_dir, "panels": panels_dir, "regions": regions_path, "overview": overview_path}
    if loci_path is not None:
        outputs.update(locus_regions=locus_regions_path, locus_directions=locus_directions_path)
    tables, views, peaks = [], {}, {}
    with staged_outputs(outputs) as out, ThreadPoolExecutor(max_workers=1) as writer:
        out["maps"].mkdir()
        out["panels"].mkdir()
        writing = []
        for j, target in enumerate(tqdm(targets, desc="perdi maps", unit="map", mininterval=10)):
            smoothed = smoothed_maps(to_input_grid(decoder.volume(maps.t[j]), layout),
                                     to_input_grid(decoder.volume(maps.change[j] * change_unit), layout),
                                     space.brain, settings.smoothing_sigma)
            # gzip runs outside the GIL: one direction's maps are written while the next is computed
            for job in writing:
                job.result()
            writing = [writer.submit(save_map, smoothed[kind], layout.input_affine,
                                     out["maps"] / f"{target.name}{suffix}",
                                     f"PerDI {target.name} {label}, {target.title}, sigma {settings.smoothing_sigma:g}")
                       for kind, (suffix, label) in MAP_FILES.items()]
            ranked = smoothed[f"{settings.rank_by}_abs"]
            # dimension d's permutations are seeded [seed, d]; a locus's [seed, n_dims + locus] never collides
            stream = target.key["locus"] + n_dims if "locus" in target.key else dims[j]
            table = rank_regions(ranked, space.labels, space.region_names, space.brain, settings.top_fraction,
                                 settings.permutations, np.random.default_rng([settings.seed, stream]))
            for position, (column, value) in enumerate(target.key.items()):
                table.insert(position, column, value)
            tables.append(table)
            views[target.name] = peak_slices(canonical(smoothed[settings.rank_by], layout.input_affine)[0],
                                             space.template, space.template_affine)
            peaks[target.name] = float(ranked.max())
            plot_perdi_panel(views[target.name], out["panels"] / f"{target.name}.png",
                             f"PerDI {target.name}: {target.title}",
                             _panel_lines(table), RANKED_MAPS[settings.rank_by])
        for job in writing:
            job.result()
        regions = _region_table(tables[:len(dims)], ["dimension"])
        REGIONS.write(regions, out["regions"])
        if loci_path is not None:
            locus_regions = _region_table(tables[len(dims):], ["locus", "lead_snp"])
            LOCUS_REGIONS.write(locus_regions, out["locus_regions"])
            LOCUS_DIRECTIONS.write(direction_table(directions, settings.locus_shift, n_dims), out["locus_directions"])
            log.info("locus directions: %d map(s), %d region rows to %s", len(directions), len(locus_regions),
                     locus_regions_path)
        shown = [names[d] for d in (loci if loci is not None else sorted(dims, key=lambda d: -peaks[names[d]])
                                    [:settings.overview_dimensions]) if names[d] in views]
        title = (f"PerDI of the {len(shown)} dimension(s) with genomic risk loci" if loci is not None
                 else f"PerDI: the {len(shown)} dimension(s) with the largest peak")
        if directions:
            title += f" and the {len(directions)} locus direction(s)"
        _overview(views, [*shown, *(t.name for t in targets[len(dims):])], tables, targets, title, out["overview"])
    log.info("wrote %d map(s) to %s and %d region rows to %s", len(targets), maps_dir, len(regions), regions_path)
    return regions


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
