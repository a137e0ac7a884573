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

from vitudip.io.bgen import BgenError, check_bgen
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.tables import Table

# package data, so that an installed library reads them without the checkout
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
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
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    return _describe(errors[0]) if errors else None


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Check a config against the schema and return a copy with defaults filled in.

    Args:
        config: the parsed YAML.
        schema: the schema (default: ``vitudip/schemas/config.schema.yaml``).

    Raises:
        ConfigError: the first problem, naming the key (unknown key, wrong type, bad value).
    """
    schema = schema or load_schema()
    problem = _first_error(jsonschema.Draft202012Validator(schema), config)
    if problem is not None:
        raise ConfigError(problem)
    filled = copy.deepcopy(config)
    _fill_defaults(schema, filled)
    return filled


def _stage_schema(keys: Sequence[str], schema: dict) -> dict:
    """The schema of the part of the config a stage reads: whole sections, and single keys of others."""
    properties: dict[str, dict] = {}
    for key in keys:
        section, _, name = key.partition(".")
        whole = schema["properties"][section]
        if not name:
            properties[section] = whole
            continue
        part = properties.setdefault(section, {"type": "object", "additionalProperties": False, "properties": {}})
        if part is whole:
            raise ValueError(f"settings keys list both '{section}' and '{key}'")
        part["properties"][name] = whole["properties"][name]
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


def stage_values(config: Mapping[str, Any], keys: Sequence[str]) -> dict:
    """The part of a validated config a stage reads: what the workflow passes to its script as ``--settings``.

    Args:
        config: a validated config.
        keys: the stage's settings keys (its settings class's ``CONFIG_KEYS``): a top-level key (``loci``) or
            one key of a section (``pheno.inverse_normal``), so that the stage reruns only for what it reads.
    """
    values: dict[str, Any] = {}
    for key in keys:
        section, _, name = key.partition(".")
        if name:
            values.setdefault(section, {})[name] = copy.deepcopy(config[section][name])
        else:
            values[section] = copy.deepcopy(config[section])
    return values


def stage_config(values: Mapping[str, Any], keys: Sequence[str], schema: dict | None = None) -> dict:
    """The part of the config a stage reads, checked against the schema, with the schema's defaults filled in.

    Every stage script gets this part as its ``--settings`` JSON, and its settings class is built from
    what this returns: the schema is the one place that holds defaults and allowed values.

    Args:
        values: top-level config keys (``{"seed": 7, "loci": {"r2": 0.5}}``); a section may leave out keys,
            which get their defaults.
        keys: what the stage reads (its settings class's ``CONFIG_KEYS``): top-level keys, or single keys of
            a section (``train.device``), of which no other key is accepted or filled in.
        schema: the config schema (default: ``vitudip/schemas/config.schema.yaml``).

    Raises:
        ConfigError: a key the stage does not read, a missing one, or a bad value; named as in config.yaml.
    """
    part = _stage_schema(keys, schema or load_schema())
    unknown = sorted(set(values) - set(part["properties"]))
    if unknown:
        raise ConfigError(f"unknown settings key(s) {', '.join(map(repr, unknown))}: this stage reads "
                          f"{', '.join(keys)}")
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
        schema: the config schema (default: ``vitudip/schemas/config.schema.yaml``).
    """
    return stage_config({section: {}}, [section], schema)[section]


def analysed_chromosomes(config: dict) -> list[str]:
    """The chromosomes the study analyses, as text: the simulated ones for the demo, else ``gwas.chromosomes``."""
    chromosomes = (config["simulate"]["genotypes"]["chromosomes"] if config["simulate"]["enabled"]
                   else config["gwas"]["chromosomes"])
    return [str(chromosome) for chromosome in chromosomes]


def _count_sample_rows(path: str) -> int:
    """Samples of an Oxford .sample: its lines but the header and the column-type line."""
    with open(path, "rb") as handle:
        return max(sum(1 for line in handle if line.strip()) - 2, 0)


def genotype_input_problems(config: dict) -> list[str]:
    """What is wrong with the genotype input: missing files (per chromosome), and for BGEN a layout or bit
    depth the reader does not take or a .sample of another sample count (read from headers only)."""
    genotypes = GenotypeInput.from_config(config)
    chromosomes = analysed_chromosomes(config)
    problems = genotypes.missing(chromosomes)
    wanted = chromosomes if genotypes.per_chromosome else chromosomes[:1]
    counts: dict[str, int] = {}
    for chromosome in [] if problems else wanted:
        if genotypes.format(chromosome) != "bgen":
            continue
        bgen, sample_file = genotypes.files(chromosome)
        if sample_file not in counts:
            counts[sample_file] = _count_sample_rows(sample_file)
        try:
            check_bgen(bgen, counts[sample_file], sample_file)
        except BgenError as err:
            problems.append(str(err))
    return [f"config key 'inputs.genotypes': {problem}" for problem in problems]


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
            missing += genotype_input_problems(config)
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
    """The contract of a user's input table, from its schema (``vitudip/schemas/<name>.schema.yaml``).

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
    """Check an input table against its schema (``vitudip/schemas/<name>.schema.yaml``) before any job reads it.

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
