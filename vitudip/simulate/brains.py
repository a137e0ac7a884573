"""Synthetic T1 brains on the MNI152 grid with planted regional effects.

Every subject starts from FSL's MNI152 template. One sampling map carries all
geometric changes (head size tied to sex, ventricle enlargement with age,
planted regional volume changes, a smooth random warp); one multiplicative
field carries all intensity changes (planted regional intensity, cortical
darkening with age, site gain, bias field); then noise. The realised value of
each planted measure is read back off the subject's warped labels, so the truth
tables say what the image really shows, not what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from vitudip.imaging.atlas import Atlas, harvard_oxford, load_mni_template
from vitudip.imaging.grid import block_mean
from vitudip.simulate.fields import SmoothFieldSampler

EFFECT_KINDS = ("volume", "intensity")

#: Cortical labels are the first 96 Harvard-Oxford regions (48 per side).
N_CORTICAL_LABELS = 96


@dataclass(frozen=True)
class PlantedEffect:
    """A latent factor that changes one Harvard-Oxford region.

    Args:
        name: identifier used in the truth tables (``ventricles_volume``).
        region: region name without side (``Lateral_Ventricle``).
        side: ``both``, ``left`` or ``right``.
        kind: ``volume`` (local smooth warp) or ``intensity`` (regional gain).
        strength: fractional change of the region per SD of the factor (0.15 = 15 %/SD).
    """

    name: str
    region: str
    side: str
    kind: str
    strength: float

    def __post_init__(self) -> None:
        if self.kind not in EFFECT_KINDS:
            raise ValueError(f"effect '{self.name}': kind must be one of {EFFECT_KINDS}, got '{self.kind}'")
        if not 0 < self.strength < 1:
            raise ValueError(f"effect '{self.name}': strength {self.strength} must lie in (0, 1) (fraction per SD)")


@dataclass(frozen=True)
class Ageing:
    """Biological variation that is not genetic.

    Args:
        mean_age: age (years) at which the ageing terms are zero.
        ventricle_per_year: relative lateral-ventricle volume change per year.
        cortex_per_year: relative cortical intensity loss per year (a thinning proxy).
        head_scale_male: linear head-size difference of males over females (after linear
            registration, as in UK Biobank's images, little of it is left).
    """

    mean_age: float = 62.0
    ventricle_per_year: float = 0.02
    cortex_per_year: float = 0.002
    head_scale_male: float = 0.005


@dataclass(frozen=True)
class Nuisance:
    """Scanner and registration variation, zero for images as clean as registered UK Biobank ones.

    Args:
        scale_sd: SD of a random global linear scaling (fraction).
        warp_mm: SD of a smooth random displacement (mm).
        warp_spacing_mm: control-point spacing of that displacement (mm).
        bias: SD of a smooth multiplicative bias field (fraction).
        noise: SD of Gaussian noise relative to the template's median brain intensity.
        site_gain: SD of a global intensity gain per assessment centre (fraction).
    """

    scale_sd: float = 0.0
    warp_mm: float = 0.0
    warp_spacing_mm: float = 24.0
    bias: float = 0.01
    noise: float = 0.01
    site_gain: float = 0.02


@dataclass
class _WarpUnit:
    """One region-side that can grow or shrink: a weight field in a bounding box and a centre."""

    key: tuple[int, ...]
    box: tuple[slice, slice, slice]
    weight: np.ndarray
    centre: np.ndarray


@dataclass
class Subject:
    """What a subject's image depends on.

    Args:
        factors: one standardised latent value per planted effect.
        age: years.
        male: sex.
        site_gain: multiplicative intensity gain of the subject's centre.
    """

    factors: np.ndarray
    age: float
    male: bool
    site_gain: float = 1.0
    extra: dict = field(default_factory=dict)


class BrainSimulator:
    """Makes T1 images on the MNI152 grid at ``voxel_mm`` with the planted effects.

    Args:
        voxel_mm: 1 (the UK Biobank grid) or 2 (the fast demo grid).
        effects: the planted effects, in factor order.
        ageing: age and sex terms.
        nuisance: scanner-like variation.
    """

    def __init__(self, voxel_mm: int, effects: list[PlantedEffect], ageing: Ageing, nuisance: Nuisance) -> None:
        self.voxel_mm = int(voxel_mm)
        self.effects = list(effects)
        self.ageing = ageing
        self.nuisance = nuisance
        self.atlas: Atlas = harvard_oxford(self.voxel_mm)
        self.affine = self.atlas.affine
        self.template, self.brain = self._template()
        self.shape = self.template.shape
        self.median_intensity = float(np.median(self.template[self.brain]))
        self.effect_labels = [self.atlas.region_labels(e.region, e.side) for e in self.effects]
        self.ventricle_labels = self.atlas.region_labels("Lateral_Ventricle", "both")
        self.units = self._warp_units()
        self.grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in self.shape], indexing="ij"))
        self.brain_centre = np.array(ndi.center_of_mass(self.brain), dtype=np.float32)
        self.fields = SmoothFieldSampler(self.shape, nuisance.warp_spacing_mm / self.voxel_mm)

    def _template(self) -> tuple[np.ndarray, np.ndarray]:
        """The template on this grid with its zero-valued ventricles filled CSF-dark."""
        t1, _ = load_mni_template()
        brain_1mm = ndi.binary_fill_holes(t1 > 0)
        csf = 0.5 * float(np.percentile(t1[t1 > 0], 1))
        t1 = np.where(brain_1mm & (t1 <= 0), csf, t1).astype(np.float32)
        brain = block_mean(brain_1mm.astype(np.float32), self.voxel_mm) > 0.5
        template = block_mean(t1, self.voxel_mm).astype(np.float32)
        # partial blocks at the brain edge are rescaled so the edge is not artificially dark
        cover = block_mean(brain_1mm.astype(np.float32), self.voxel_mm)
        template = np.where(brain, template / np.maximum(cover, 1e-6), 0).astype(np.float32)
        return template, brain

    def _warp_units(self) -> dict[tuple[int, ...], _WarpUnit]:
        """One unit per region side that any volume effect or ageing term resizes."""
        keys = set()
        for effect, labels in zip(self.effects, self.effect_labels):
            if effect.kind == "volume":
                keys.update((lab,) for lab in labels)
        keys.update((lab,) for lab in self.ventricle_labels)
        margin = max(1, int(round(3 / self.voxel_mm)))
        sigma = 2.0 / self.voxel_mm
        units = {}
        for key in sorted(keys):
            region = np.isin(self.atlas.labels, key)
            dilated = ndi.binary_dilation(region, iterations=margin)
            weight = np.clip(2 * ndi.gaussian_filter(dilated.astype(np.float32), sigma), 0, 1)
            idx = np.argwhere(weight > 1e-3)
            box = tuple(slice(lo, hi + 1) for lo, hi in zip(idx.min(0), idx.max(0)))
            centre = np.array(ndi.center_of_mass(region), dtype=np.float32)
            units[key] = _WarpUnit(key=key, box=box, weight=weight[box], centre=centre)
        return units

    def _log_volume_changes(self, subject: Subject) -> dict[tuple[int, ...], float]:
        """Log volume factor of every warp unit for this subject."""
        change = {key: 0.0 for key in self.units}
        years = subject.age - self.ageing.mean_age
        for lab in self.ventricle_labels:
            change[(lab,)] += np.log1p(self.ageing.ventricle_per_year) * years
        for effect, labels, f in zip(self.effects, self.effect_labels, subject.factors):
            if effect.kind == "volume":
                for lab in labels:
                    change[(lab,)] += np.log1p(effect.strength) * f
        return change

    def sampling_coordinates(self, subject: Subject, rng: np.random.Generator) -> np.ndarray:
        """Where each output voxel samples the template (3 x grid), all geometric changes combined.

        Displacements are small, so they are added rather than composed.
        """
        scale = 1.0 + (0.5 if subject.male else -0.5) * self.ageing.head_scale_male
        scale *= 1.0 + self.nuisance.scale_sd * rng.standard_normal()
        c = self.brain_centre[:, None, None, None]
        coords = c + (self.grid - c) / np.float32(scale)
        for key, log_v in self._log_volume_changes(subject).items():
            if log_v == 0.0:
                continue
            unit = self.units[key]
            shrink = np.float32(1.0 - np.exp(-log_v / 3.0))
            local = self.grid[(slice(None),) + unit.box] - unit.centre[:, None, None, None]
            coords[(slice(None),) + unit.box] -= unit.weight[None] * local * shrink
        if self.nuisance.warp_mm > 0:
            amplitude = np.float32(self.nuisance.warp_mm / self.voxel_mm)
            for axis in range(3):
                coords[axis] += amplitude * self.fields.sample(rng)
        return coords

    def synthesize(self, subject: Subject, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
        """One subject's image and its realised measures.

        Args:
            subject: factors and covariates.
            rng: this subject's own random stream.

        Returns:
            (float32 image on the grid, background exactly 0; measures: ``<effect>`` =
            region volume in mL or region-to-brain mean intensity ratio, plus
            ``ventricle_volume_ml`` and ``brain_volume_ml``).
        """
        coords = self.sampling_coordinates(subject, rng)
        image = ndi.map_coordinates(self.template, coords, order=1, mode="constant", cval=0.0, prefilter=False)
        labels = ndi.map_coordinates(self.atlas.labels, coords, order=0, mode="constant", cval=0)
        # the template's darkest brain voxels (filled CSF) sit far above half the CSF value
        brain = image > 0.25 * self.median_intensity
        labels[~brain] = 0

        gain = np.ones(self.shape, np.float32)
        for effect, lab, f in zip(self.effects, self.effect_labels, subject.factors):
            if effect.kind == "intensity":
                gain[np.isin(labels, lab)] *= np.float32(np.exp(np.log1p(effect.strength) * f))
        years = subject.age - self.ageing.mean_age
        cortex = (labels > 0) & (labels <= N_CORTICAL_LABELS)
        gain[cortex] *= np.float32(max(1.0 - self.ageing.cortex_per_year * years, 0.1))
        gain *= np.float32(subject.site_gain)
        if self.nuisance.bias > 0:
            gain *= np.exp(np.float32(self.nuisance.bias) * self.fields.sample(rng))
        image *= gain
        if self.nuisance.noise > 0:
            noise = rng.standard_normal(self.shape, dtype=np.float32)
            image += np.float32(self.nuisance.noise * self.median_intensity) * noise
        image = np.where(brain, np.maximum(image, 1.0), 0.0).astype(np.float32)
        return image, self.measure(image, labels)

    def measure(self, image: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Realised planted measures read off an image and its warped labels."""
        voxel_ml = self.voxel_mm**3 / 1000.0
        brain = image > 0
        brain_mean = float(image[brain].mean())
        out = {}
        for effect, lab in zip(self.effects, self.effect_labels):
            region = np.isin(labels, lab)
            if effect.kind == "volume":
                out[effect.name] = float(region.sum()) * voxel_ml
            else:
                out[effect.name] = float(image[region].mean()) / brain_mean if region.any() else float("nan")
        out["ventricle_volume_ml"] = float(np.isin(labels, self.ventricle_labels).sum()) * voxel_ml
        out["brain_volume_ml"] = float(brain.sum()) * voxel_ml
        return out
