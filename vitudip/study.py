"""A whole study's configuration, checked once when the workflow starts (``snakemake -n`` included).

:func:`vitudip.config.validate_config` checks each key against the schema. Here every stage's settings
object is built from the validated config, so each rule between two keys, written once in its stage's
settings class, stops the run before any job; the rules between two stages' keys are this module's.
Every module imported here is light (no torch, no plotting, no simulator): the workflow imports it at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from vitudip.config import ConfigError, load_config, validate_config
from vitudip.embed.settings import EmbedSettings
from vitudip.genetics.settings import (
    HeritabilitySettings,
    InProcessGwasSettings,
    JointSettings,
    PhenoSettings,
    QcSettings,
    ShardSettings,
)
from vitudip.imaging.grid import mni_grid
from vitudip.imaging.settings import PreprocessSettings
from vitudip.imaging.splits import split_counts
from vitudip.io.chromosomes import require_chromosome
from vitudip.loci.settings import LociSettings
from vitudip.model.config import model_from_config
from vitudip.perdi.settings import PerdiSettings
from vitudip.replication.settings import ReplicationSettings
from vitudip.simulate.settings import SimulateSettings
from vitudip.stability.settings import StabilitySettings
from vitudip.train.settings import TrainSettings, check_training

#: The settings class of every stage, each built from the config by ``from_config``.
STAGE_SETTINGS: tuple[type, ...] = (SimulateSettings, PreprocessSettings, TrainSettings, EmbedSettings, QcSettings,
                                    PhenoSettings, ShardSettings, JointSettings, InProcessGwasSettings, LociSettings,
                                    PerdiSettings, StabilitySettings, ReplicationSettings, HeritabilitySettings)

#: The config keys validate_inputs reads: the pheno section, and the split and batch its split-size check compares.
INPUT_CHECK_KEYS = (*PhenoSettings.CONFIG_KEYS, "preprocess.splits", "train.batch_size")

#: Above this KING kinship cutoff (second degree's lower bound) real data keeps second- and third-degree relatives.
SECOND_DEGREE_KINSHIP = 0.0884

#: The --par-region codes of each loci.genome_build.
PAR_REGIONS = {"GRCh37": ("b37", "hg19"), "GRCh38": ("b38", "hg38")}


def stage_settings(config: Mapping[str, Any]) -> dict[type, Any]:
    """Every stage's settings object built from a validated config, each class's own rules checked.

    Raises:
        ConfigError: the first rule a settings class refuses (its message names the keys).
    """
    built = {}
    for cls in STAGE_SETTINGS:
        try:
            built[cls] = cls.from_config(config)
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return built


def _check_gwas_chromosomes(config: Mapping[str, Any], built: Mapping[type, Any]) -> None:
    """gwas.chromosomes are codes plink2 reads, each chromosome once; REGENIE's PAR bounds are the study's build."""
    seen: dict[str, object] = {}
    for i, code in enumerate(config["gwas"]["chromosomes"]):
        try:
            name = require_chromosome(code, f"config key 'gwas.chromosomes[{i}]'")
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if name in seen:
            raise ConfigError(f"config key 'gwas.chromosomes[{i}]': {code!r} is chromosome {name}, listed already "
                              f"as {seen[name]!r}")
        seen[name] = code
    build, region = config["loci"]["genome_build"], config["gwas"]["regenie"]["par_region"]
    if region not in PAR_REGIONS[build] and config["gwas"]["engine"] == "regenie":
        raise ConfigError(f"config key 'gwas.regenie.par_region': {region} is not loci.genome_build {build} "
                          f"(use {' or '.join(PAR_REGIONS[build])})")


def _check_model_fits_the_cache(config: Mapping[str, Any], built: Mapping[type, Any]) -> None:
    """The cache grid holds the input images, the model takes the cache, and trains as its options need.

    These otherwise fail only when their stage starts: after preprocessing (hours on UK Biobank) and
    after Snakemake has deleted the previous model.
    """
    name = config["model"]["preset"]
    try:
        model = model_from_config(config)
        check_training(model, built[TrainSettings], name)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    pre = config["preprocess"]
    voxel_mm, factor, pad_to = pre["input_voxel_mm"], pre["downsample"], tuple(pre["pad_to"])
    shape = tuple(s // factor for s in mni_grid(voxel_mm)[0])
    if any(p < s for p, s in zip(pad_to, shape)):
        raise ConfigError(
            f"config key 'preprocess.pad_to': {list(pad_to)} is smaller than the images it must hold, {list(shape)} "
            f"(the {voxel_mm} mm MNI grid of preprocess.input_voxel_mm, block-averaged by preprocess.downsample "
            f"{factor}): raise pad_to or the downsampling")
    if model.image_size != pad_to:
        hint = ("the reference preset is the published 1 mm model: set preprocess.input_voxel_mm 1, downsample 1 "
                "and pad_to [182, 224, 182], or use model.preset demo for 2 mm"
                if name == "reference" else "set model.overrides.image_size to preprocess.pad_to, or the reverse")
        raise ConfigError(
            f"config key 'preprocess.pad_to': the cache volumes would be {list(pad_to)} but model preset '{name}' "
            f"takes {list(model.image_size)}; {hint}")


def _check_demo_cohort_size(config: Mapping[str, Any], built: Mapping[type, Any]) -> None:
    """The simulated cohort holds at least pheno.min_samples subjects (else the pheno stage stops after training)."""
    simulate, min_samples = config["simulate"], config["pheno"]["min_samples"]
    if simulate["enabled"] and simulate["n_subjects"] < min_samples:
        raise ConfigError(f"config keys 'pheno.min_samples' ({min_samples}) and 'simulate.n_subjects' "
                          f"({simulate['n_subjects']}): the simulated cohort is smaller than the fewest samples the "
                          "GWAS accepts; raise n_subjects or lower min_samples")


def _check_demo_train_split(config: Mapping[str, Any], built: Mapping[type, Any]) -> None:
    """The simulated cohort's train split holds a batch (a real study's is checked on its samples table by
    validate_inputs)."""
    simulate, splits, batch_size = config["simulate"], config["preprocess"]["splits"], config["train"]["batch_size"]
    if not simulate["enabled"] or splits["file"] is not None:
        return
    train = split_counts(simulate["n_subjects"], (splits["train"], splits["val"], splits["test"]))[0]
    if train < batch_size:
        raise ConfigError(f"config keys 'train.batch_size' ({batch_size}) and 'preprocess.splits.train' "
                          f"({splits['train']}): the train split of the {simulate['n_subjects']} simulated subjects "
                          f"('simulate.n_subjects') is {train}, smaller than a batch; lower batch_size or raise "
                          "the train share or n_subjects")


def _check_stability(config: Mapping[str, Any], built: Mapping[type, Any]) -> None:
    """The stability check retrains the ViT, and compares subjects the embed stage embeds."""
    if not config["stability"]["enabled"]:
        return
    if config["embed"]["method"] != "vit":
        raise ConfigError("config keys 'stability.enabled' and 'embed.method': the stability check trains the ViT a "
                          f"second time, but embed.method is {config['embed']['method']!r}: use vit, or turn "
                          "stability off")
    if config["replication"]["enabled"]:
        raise ConfigError("config keys 'stability.enabled' and 'replication.enabled': the stability check compares "
                          "the loci of two runs over the same subjects, but with replication on the first run's come "
                          "from the discovery set alone: turn one of them off")
    if config["stability"]["subjects"] == "held_out" and set(config["embed"]["splits"]) == {"train"}:
        raise ConfigError("config keys 'stability.subjects' and 'embed.splits': held_out compares the subjects "
                          "outside the training split, but only the train split is embedded: embed val and test "
                          "too, or set stability.subjects: all")


#: The rules between two stages' keys, in the order they are checked; each gets the config and the built settings.
STUDY_RULES: tuple[Callable[[Mapping[str, Any], Mapping[type, Any]], None], ...] = (
    _check_gwas_chromosomes, _check_model_fits_the_cache, _check_demo_cohort_size, _check_demo_train_split,
    _check_stability)


def check_study(config: Mapping[str, Any]) -> None:
    """Every rule between keys: each stage's settings built, then the rules between stages.

    Args:
        config: a config checked against the schema (:func:`vitudip.config.validate_config`).

    Raises:
        ConfigError: the first problem, naming the keys.
    """
    built = stage_settings(config)
    for rule in STUDY_RULES:
        rule(config, built)


def validate_study(config: dict) -> dict:
    """:func:`vitudip.config.validate_config` and :func:`check_study`: the config with its defaults filled in.

    Raises:
        ConfigError: the first problem, naming the keys.
    """
    filled = validate_config(config)
    check_study(filled)
    return filled


def load_study(path: str | os.PathLike) -> dict:
    """A config file read, checked against the schema and by :func:`check_study`, defaults filled in."""
    config = load_config(path)
    check_study(config)
    return config


def study_warnings(config: Mapping[str, Any]) -> list[str]:
    """Settings that are valid but that a study of real data most likely did not mean (shown at start).

    Args:
        config: a validated config.
    """
    warnings = []
    cutoff = config["genotype_qc"]["king_cutoff"]
    if not config["simulate"]["enabled"] and cutoff is not None and cutoff > SECOND_DEGREE_KINSHIP:
        warnings.append(
            f"config key 'genotype_qc.king_cutoff' is {cutoff:g}: for real data this keeps second- and third-degree "
            "relatives in the plink2 and torch GWAS (0.0442 drops them; config.yaml's value is for the short "
            "simulated genome)")
    return warnings
