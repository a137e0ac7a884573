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

# Stage scripts import the library from this checkout, whichever environment runs them.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))

# Scripts are found from the workflow, whatever the working directory (--directory).
SCRIPTS = os.path.join(workflow.basedir, "scripts")
RESULTS = config["results"]
INPUTS = config["inputs"]


def results(*parts):
    """A path under the results folder."""
    return os.path.join(RESULTS, *parts)


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
    """What `rule all` asks for: the final files of every stage that exists."""
    outputs = [
        results("preprocess", "qc.tsv"),
        results("preprocess", "splits.tsv"),
        results("preprocess", "brain_mask.npy"),
        results("embed", "udips.tsv"),
        results("embed", "recon_mse.tsv"),
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
