# Shared helpers: config checking and the paths every stage reads and writes.

import json
import shlex
import os

from vitudip.config import ConfigError, check_input_paths, validate_config
from vitudip.genetics.genotypes import find_genotypes
from vitudip.simulate.cohort import COHORT_FILES

try:
    config = validate_config(config)
    # The simulate stage writes the demo cohort's files, so they need not exist yet.
    DEMO = {k: os.path.join(config["simulate"]["outdir"], v) for k, v in COHORT_FILES.items()}
    produced = set(DEMO.values()) | {os.path.join(config["simulate"]["outdir"], "geno")} if config["simulate"]["enabled"] else set()
    check_input_paths(config, produced)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

# Stage scripts import the library from this checkout, whichever environment (or Slurm node) runs them.
# (Snakemake formats the prefix like a shell command, hence the doubled braces.)
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

# Scripts are found from the workflow, whatever the working directory (--directory).
SCRIPTS = os.path.join(workflow.basedir, "scripts")
RESULTS = config["results"]
INPUTS = config["inputs"]


def results(*parts):
    """A path under the results folder."""
    return os.path.join(RESULTS, *parts)


def script_path(name):
    """A stage script of this checkout, passed to each rule as a param (its shell line reads no globals)."""
    return os.path.join(SCRIPTS, name)


def fileset_prefix(files):
    """The prefix of a genotype fileset given its files (``geno.bed`` ... -> ``geno``)."""
    return os.path.splitext(files[0])[0]


def genotype_files(prefix):
    """The files of a genotype prefix: the format found on disk (.pgen, .bed, then .bgen); PLINK 1 before it exists."""
    try:
        return find_genotypes(prefix).files
    except FileNotFoundError:
        return [prefix + ext for ext in (".bed", ".bim", ".fam")]


def plink1_prefix(prefix):
    """A PLINK 1 fileset with the genotypes of ``prefix``: itself, or the copy rule convert_genotypes makes."""
    if genotype_files(prefix)[0].endswith(".bed"):
        return prefix
    return results("genotypes", "plink1")


def all_outputs():
    """The inputs of the target rule `all`, the final files of every stage that exists."""
    outputs = [
        results("preprocess", "qc.tsv"),
        results("preprocess", "splits.tsv"),
        results("preprocess", "brain_mask.npy"),
        results("embed", "udips.tsv"),
        results("embed", "recon_mse.tsv"),
        results("embed", "scree.png"),
        results("pheno", "exclusions.tsv"),
        results("gwas", "lambda.tsv"),
        results("gwas", "qq.png"),
        results("loci", "loci_merged.tsv"),
        results("loci", "manhattan.png"),
    ]
    if config["embed"]["method"] == "vit":
        outputs += [results("train", "loss.png"), results("train", "reconstruction.png"),
                    results("perdi", "regions.tsv"), results("perdi", "overview.png"), results("report", "summary.tsv")]
        if config["embed"]["pca_baseline"]:
            outputs.append(results("embed", "pca", "udips.tsv"))
    if config["simulate"]["enabled"]:
        outputs += [results("embed", "embedding_vs_truth.tsv"), results("loci", "truth_recovery.tsv")]
        if config["embed"]["method"] == "vit":
            outputs += [results("report", "truth.tsv"), results("report", "truth_summary.tsv")]
    return outputs


# Command-line options and inputs of the stage rules, from the config.


def preprocess_args():
    """Command-line options of scripts/preprocess.py from the config's preprocess section."""
    p = config["preprocess"]
    s = p["splits"]
    args = [
        f"--input-voxel-mm {p['input_voxel_mm']}",
        f"--input-grid {p['input_grid']}",
        f"--downsample {p['downsample']}",
        f"--pad-to {' '.join(str(n) for n in p['pad_to'])}",
        f"--on-bad-image {p['on_bad_image']}",
        f"--split-fractions {s['train']} {s['val']} {s['test']}",
        f"--seed {config['seed']}",
    ]
    if not p["check_affine"]:
        args.append("--no-affine-check")
    if s["file"]:
        args.append(f"--splits-file {shlex.quote(s['file'])}")
    return " ".join(args)


def train_settings():
    """TrainSettings fields from the config's train section, the token selection and the seed."""
    settings = dict(config["train"], token_selection=config["model"]["token_selection"], seed=config["seed"])
    return json.dumps(settings, sort_keys=True)


def embed_inputs(method):
    inputs = {
        "cache": results("preprocess", "cache"),
        "qc": results("preprocess", "qc.tsv"),
        "splits": results("preprocess", "splits.tsv"),
        "brain_mask": results("preprocess", "brain_mask.npy"),
    }
    if method == "vit":
        inputs["model"] = results("train", "model.pt")
    return inputs


def compared_embeddings():
    """method -> UDIP table, for every embedding the workflow writes."""
    tables = {EMBED["method"]: results("embed", "udips.tsv")}
    if EMBED["method"] == "vit" and EMBED["pca_baseline"]:
        tables["pca"] = results("embed", "pca", "udips.tsv")
    return tables


def embedding_health_inputs():
    """<method>_spectrum and <method>_health of every embedding the workflow writes."""
    inputs = {}
    for method, udips in compared_embeddings().items():
        folder = os.path.dirname(udips)
        inputs[f"{method}_spectrum"] = os.path.join(folder, "spectrum.tsv")
        inputs[f"{method}_health"] = os.path.join(folder, "health.tsv")
    return inputs


def pheno_args():
    p = config["pheno"]
    args = [f"--min-samples {p['min_samples']}", f"--genetic-pcs {p['genetic_pcs']}", f"--pcs-from {p['pcs_from']}"]
    for flag, key in (("--covariate", "covariates"), ("--categorical", "categorical"), ("--derived", "derived")):
        if p[key]:
            args.append(f"{flag} {' '.join(shlex.quote(c) for c in p[key])}")
    if p["centre_age"]:
        args.append("--centre-age")
    if p["inverse_normal"]:
        args.append("--inverse-normal")
    if p["outlier_sd"] is not None:
        args.append(f"--outlier-sd {p['outlier_sd']}")
    return " ".join(args)


def gwas_shard_inputs(wildcards):
    inputs = {
        "pheno": results("pheno", "pheno.tsv"),
        "covar": results("pheno", "covar.tsv"),
        "genotypes": genotype_files(GWAS_GENOTYPES),
    }
    if GWAS["engine"] == "regenie":
        inputs["step1"] = results("gwas", "regenie_step1")
    return inputs


def loci_args():
    """Thresholds and switches of the loci script, from config `loci`."""
    args = [
        f"--p-threshold {LOCI['p_threshold']}",
        f"--candidate-p {LOCI['candidate_p']}",
        f"--r2 {LOCI['r2']}",
        f"--lead-r2 {LOCI['lead_r2']}",
        f"--window-kb {LOCI['window_kb']}",
        f"--merge-distance-kb {LOCI['merge_distance_kb']}",
        f"--min-maf {LOCI['min_maf']}",
        f"--genome-build {LOCI['genome_build']}",
        f"--ld-method {LOCI['ld_method']}",
        f"--regional-flank-kb {LOCI['regional_flank_kb']}",
    ]
    if LOCI["exclude_mhc"]:
        args.append("--exclude-mhc")
    if LOCI["skip_missing_ld"]:
        args.append("--skip-missing-ld")
    return " ".join(args)
