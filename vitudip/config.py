"""Loading and checking the workflow configuration, with errors that name the key."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from vitudip.io.genotype_files import genotype_format
from vitudip.io.tables import Table

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"
#: The schema every config is checked against.
SCHEMA_PATH = SCHEMA_DIR / "config.schema.yaml"
#: The schemas of the input tables: one row record each (column -> value).
TABLE_SCHEMAS = {"samples": SCHEMA_DIR / "samples.schema.yaml", "covariates": SCHEMA_DIR / "covariates.schema.yaml"}


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


def _key_path(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(f".{p}" if parts else str(p))
    return "".join(parts) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line naming the key and what is wrong with it."""
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown config key {', '.join(repr(e) for e in extra)} {where} (allowed: {allowed})"
    if error.validator == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        prefix = f"{key}." if error.absolute_path else ""
        return f"missing required config key {', '.join(repr(prefix + m) for m in missing)}"
    if error.validator == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"config key '{key}' must be of type {want}, got {error.instance!r} ({type(error.instance).__name__})"
    return f"config key '{key}': {error.message}"


def _fill_defaults(schema: dict, node: Any) -> None:
    """Insert schema defaults for absent keys, recursively (objects and arrays of objects)."""
    if isinstance(node, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in node and "default" in sub:
                node[name] = copy.deepcopy(sub["default"])
            if name in node:
                _fill_defaults(sub, node[name])
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for item in node:
            _fill_defaults(schema["items"], item)


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """A schema file (YAML), the config's by default."""
    with open(path) as fh:
        return yaml.safe_load(fh)


def _first_error(validator: jsonschema.protocols.Validator, instance: Any) -> str | None:
    """The description of the shallowest schema violation, or None when ``instance`` is valid."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    return _describe(errors[0]) if errors else None


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Check a config against the schema and return a copy with defaults filled in.

    Args:
        config: the parsed YAML.
        schema: the schema (default: ``workflow/schemas/config.schema.yaml``).

    Raises:
        ConfigError: the first problem, naming the key (unknown key, wrong type, bad value).
    """
    schema = schema or load_schema()
    problem = _first_error(jsonschema.Draft202012Validator(schema), config)
    if problem is not None:
        raise ConfigError(problem)
    filled = copy.deepcopy(config)
    _fill_defaults(schema, filled)
    _check_consistency(filled)
    return filled


#: Above this KING kinship cutoff (second degree's lower bound) real data keeps second- and third-degree relatives.
SECOND_DEGREE_KINSHIP = 0.0884


def config_warnings(config: dict) -> list[str]:
    """Settings that are valid but that a study of real data most likely did not mean (shown at start).

    Args:
        config: a validated config (:func:`validate_config`).
    """
    warnings = []
    cutoff = config["genotype_qc"]["king_cutoff"]
    if not config["simulate"]["enabled"] and cutoff is not None and cutoff > SECOND_DEGREE_KINSHIP:
        warnings.append(
            f"config key 'genotype_qc.king_cutoff' is {cutoff:g}: for real data this keeps second- and third-degree "
            "relatives in the plink2 and torch GWAS (0.0442 drops them; config.yaml's value is for the short "
            "simulated genome)")
    return warnings


def _check_consistency(config: dict) -> None:
    """Rules the schema cannot express."""
    lo, hi = config["simulate"].get("age_range", [0, 1])
    if lo >= hi:
        raise ConfigError(f"config key 'simulate.age_range': lower bound {lo} is not below upper bound {hi}")
    splits = config["preprocess"]["splits"]
    if splits.get("file") is None:
        total = splits["train"] + splits["val"] + splits["test"]
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"config key 'preprocess.splits': train + val + test must be 1, got {total:g}")
    from vitudip.imaging.grid import grid_choices

    try:
        grid_choices(config["preprocess"]["input_grid"], config["preprocess"]["input_voxel_mm"])
    except ValueError as err:
        raise ConfigError(f"config key 'preprocess.input_grid': {err}") from None
    _check_gwas_chromosomes(config)
    sim = config["simulate"]
    if sim["enabled"]:
        chromosomes = set(sim["genotypes"]["chromosomes"])
        for i, effect in enumerate(sim["effects"]):
            if effect["chromosome"] not in chromosomes:
                raise ConfigError(
                    f"config key 'simulate.effects[{i}].chromosome': {effect['chromosome']} is not in "
                    f"simulate.genotypes.chromosomes {sorted(chromosomes)}"
                )


    _check_model_fits_the_cache(config)


#: The --par-region codes of each loci.genome_build.
_PAR_REGIONS = {"GRCh37": ("b37", "hg19"), "GRCh38": ("b38", "hg38")}


def _check_gwas_chromosomes(config: dict) -> None:
    """gwas.chromosomes are codes plink2 reads, each chromosome once; REGENIE's PAR bounds are the study's build."""
    from vitudip.io.chromosomes import require_chromosome

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
    if region not in _PAR_REGIONS[build] and config["gwas"]["engine"] == "regenie":
        raise ConfigError(f"config key 'gwas.regenie.par_region': {region} is not loci.genome_build {build} "
                          f"(use {' or '.join(_PAR_REGIONS[build])})")


def _check_model_fits_the_cache(config: dict) -> None:
    """The model config can be built, the cache grid holds the input images, and the model takes the cache.

    These otherwise fail only when their stage starts: after preprocessing (hours on UK Biobank) and
    after Snakemake has deleted the previous model.
    """
    from vitudip.imaging.grid import mni_grid
    from vitudip.model.config import configured

    model = config.get("model", {})
    name = model.get("preset", "demo")
    try:
        model_config = configured(name, model.get("overrides", {}))
    except ValueError as err:
        raise ConfigError(f"config key 'model.overrides' (preset '{name}'): {err}") from None
    if model_config.uses_modes and not config.get("train", {}).get("center", True):
        raise ConfigError(f"config key 'train.center': false, but model preset '{name}' fits the images' principal "
                          "modes (mode_loss_weight, latent_mode_weight or pool_from_modes), which are those of the "
                          "centred images: set train.center true, or turn those options off in model.overrides")
    if model_config.pool_from_modes and model.get("token_selection", "union") != "union":
        raise ConfigError(f"config key 'model.token_selection': {model['token_selection']!r}, but model preset "
                          f"'{name}' starts its pool from the modes over the union's fixed tokens: use union, or set "
                          "model.overrides.pool_from_modes false")
    pre = config["preprocess"]
    voxel_mm, factor, pad_to = pre["input_voxel_mm"], pre["downsample"], tuple(pre["pad_to"])
    shape = tuple(s // factor for s in mni_grid(voxel_mm)[0])
    if any(p < s for p, s in zip(pad_to, shape)):
        raise ConfigError(
            f"config key 'preprocess.pad_to': {list(pad_to)} is smaller than the images it must hold, {list(shape)} "
            f"(the {voxel_mm} mm MNI grid of preprocess.input_voxel_mm, block-averaged by preprocess.downsample "
            f"{factor}): raise pad_to or the downsampling")
    if model_config.image_size != pad_to:
        hint = ("the reference preset is the published 1 mm model: set preprocess.input_voxel_mm 1, downsample 1 "
                "and pad_to [182, 224, 182], or use model.preset demo for 2 mm"
                if name == "reference" else "set model.overrides.image_size to preprocess.pad_to, or the reverse")
        raise ConfigError(
            f"config key 'preprocess.pad_to': the cache volumes would be {list(pad_to)} but model preset '{name}' "
            f"takes {list(model_config.image_size)}; {hint}")


def stage_config(values: Mapping[str, Any], keys: Sequence[str], schema: dict | None = None) -> dict:
    """The part of the config a stage reads, checked against the schema, with the schema's defaults filled in.

    Every stage script gets this part as its ``--settings`` JSON, and its settings class is built from
    what this returns: the schema is the one place that holds defaults and allowed values.

    Args:
        values: top-level config keys (``{"seed": 7, "loci": {"r2": 0.5}}``); a section may leave out keys,
            which get their defaults.
        keys: the top-level keys the stage reads; each must be in ``values``.
        schema: the config schema (default: ``workflow/schemas/config.schema.yaml``).

    Raises:
        ConfigError: a key the stage does not read, a missing one, or a bad value; named as in config.yaml.
    """
    schema = schema or load_schema()
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ConfigError(f"unknown settings key(s) {', '.join(map(repr, unknown))}: this stage reads "
                          f"{', '.join(keys)}")
    part = {
        "type": "object",
        "additionalProperties": False,
        "required": list(keys),
        "properties": {key: schema["properties"][key] for key in keys},
    }
    problem = _first_error(jsonschema.Draft202012Validator(part), values)
    if problem is not None:
        raise ConfigError(problem)
    filled = copy.deepcopy(dict(values))
    _fill_defaults(part, filled)
    return filled


def read_settings(text: str, keys: Sequence[str]) -> dict:
    """:func:`stage_config` of a stage script's ``--settings`` JSON.

    Args:
        text: a JSON object of the config keys the stage reads (what the workflow passes).
        keys: those keys.

    Raises:
        ConfigError: not a JSON object, or what :func:`stage_config` refuses.
    """
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--settings is not valid JSON ({err}): pass an object such as "
                          f"'{{\"{keys[0]}\": ...}}'") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--settings must be a JSON object of the config keys {', '.join(keys)}, "
                          f"got {type(values).__name__}")
    return stage_config(values, keys)


def section_defaults(section: str, schema: dict | None = None) -> dict:
    """A config section with every key at its schema default (for library callers and tests).

    Args:
        section: a top-level config key whose value is a mapping (``loci``, ``perdi``, ...).
        schema: the config schema (default: ``workflow/schemas/config.schema.yaml``).
    """
    return stage_config({section: {}}, [section], schema)[section]


def _missing_genotype_files(prefix: str) -> str | None:
    """None when a complete fileset is there, else what is missing (the files of a partial set by name)."""
    try:
        genotype_format(prefix)
    except FileNotFoundError as err:
        return str(err)
    return None


def check_input_paths(config: dict, produced: set[str] = frozenset()) -> None:
    """Every input the study needs exists, unless a workflow rule produces it.

    Args:
        config: a validated config.
        produced: paths the workflow itself writes (the simulated cohort's files).

    Raises:
        ConfigError: naming the key and the missing path.
    """
    produced = {os.path.normpath(p) for p in produced}
    missing = []
    for key, path in config["inputs"].items():
        if path is None or os.path.normpath(path) in produced:
            continue
        if key == "genotypes":
            problem = _missing_genotype_files(path)
            if problem is not None:
                missing.append(f"config key 'inputs.{key}': {problem}")
        elif not Path(path).exists():
            missing.append(f"config key 'inputs.{key}': file '{path}' not found")
    step1_variants = config["gwas"]["regenie"]["step1_variants"]
    if config["gwas"]["engine"] == "regenie" and step1_variants is not None and not Path(step1_variants).exists():
        missing.append(f"config key 'gwas.regenie.step1_variants': file '{step1_variants}' not found")
    ld_reference = config["loci"]["ld_reference"]
    if ld_reference is not None and not all(Path(ld_reference + ext).exists() for ext in (".bed", ".bim", ".fam")):
        missing.append(f"config key 'loci.ld_reference': PLINK 1 files (.bed/.bim/.fam) for prefix "
                       f"'{ld_reference}' not found")
    split_file = config["preprocess"]["splits"].get("file")
    if split_file is not None and not Path(split_file).exists():
        missing.append(f"config key 'preprocess.splits.file': file '{split_file}' not found")
    if missing:
        raise ConfigError("; ".join(missing))


def load_config(path: str | os.PathLike) -> dict:
    """Read, validate and fill a config file."""
    path = Path(path)
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file '{path}' does not hold a mapping of keys")
    return validate_config(config)


def _describe_cell(column: str, error: jsonschema.ValidationError) -> str:
    """What is wrong with one cell of a table, naming the column."""
    if error.validator == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"column '{column}' must be of type {want}, got {error.instance!r}"
    return f"column '{column}': {error.message}"


def input_table(name: str, columns: Mapping[str, dict] | None = None) -> Table:
    """The contract of a user's input table, from its schema (``workflow/schemas/<name>.schema.yaml``).

    The schema is the one description of the table: its required columns, which are text (IDs keep
    their zeros) and which column must be unique (``x-unique``). The stages read the table through this
    contract, and the workflow checks it with it when it starts.

    Args:
        name: its key under the config's ``inputs`` (``samples`` or ``covariates``).
        columns: further columns the config names, each with the schema of its cells
            (``{"age": {"type": "number"}}`` for a numeric covariate).
    """
    schema = load_schema(TABLE_SCHEMAS[name])
    properties = {**schema["properties"], **dict(columns or {})}
    required = (*schema.get("required", []), *(c for c in (columns or {}) if c not in schema.get("required", [])))
    return Table(f"{name} table", required=tuple(required),
                 text=tuple(c for c, sub in properties.items() if sub.get("type") == "string"),
                 numbers=tuple(c for c, sub in properties.items() if sub.get("type") == "number"),
                 unique=schema.get("x-unique"), infer_others=False)


def validate_table(path: str | os.PathLike, name: str, columns: Mapping[str, dict] | None = None) -> None:
    """Check an input table against its schema (``workflow/schemas/<name>.schema.yaml``) before any job reads it.

    The table is read through :func:`input_table`, the reader its stage uses: the header must hold the
    schema's required columns and ``columns``, number columns must hold numbers, the ``x-unique`` column
    must not repeat; then every required column must have a value in every row, and every value must
    match its column's schema (an empty cell is no value).

    Args:
        path: the tab-separated table.
        name: its key under the config's ``inputs`` (``samples`` or ``covariates``).
        columns: further columns the config names, each with the schema of its cells.

    Raises:
        ConfigError: naming the file and the column (and the line, for a bad cell).
    """
    contract = input_table(name, columns)
    where = f"(config key 'inputs.{name}')"
    try:
        table = contract.read(path)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"{err} {where}") from None
    schema = load_schema(TABLE_SCHEMAS[name])
    properties = {**schema["properties"], **dict(columns or {})}
    what = f"{name} table '{path}' {where}"
    # line 1 is the header
    for column in schema.get("required", []):
        cells = table[column]
        empty = np.flatnonzero((cells.isna() | cells.eq("")).to_numpy())
        if empty.size:
            raise ConfigError(f"{what} line {empty[0] + 2}: no value in column '{column}'")
    # Column by column, each distinct value once: row by row takes about 10 s per start on 40 000 subjects.
    # Number columns were checked by the reader; a column whose schema is {} takes any value.
    for column, sub in properties.items():
        if column not in table.columns or not sub or column in contract.numbers:
            continue
        cells = table[column][table[column].notna() & table[column].ne("")]
        validator = jsonschema.Draft202012Validator(sub)
        for value in cells.unique():
            if not validator.is_valid(value):
                position = np.flatnonzero((table[column] == value).to_numpy())[0]
                problem = _describe_cell(column, next(validator.iter_errors(value)))
                raise ConfigError(f"{what} line {position + 2}: {problem}")
