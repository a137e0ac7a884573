# Shared helpers: config and input-table checking, and the paths and settings every stage reads and writes.
# Every helper reads only `config` (and the files it names), never a global of a later include.
# Only the light settings modules are imported here (no stage's engine, model or simulator).

import json
import math
import shlex
import os
import sys

from snakemake.settings.types import DeploymentMethod

import vitudip.resources as cost

from vitudip.config import ConfigError, analysed_chromosomes, check_input_paths, stage_values, validate_table
from vitudip.embed.settings import EmbedSettings
from vitudip.genetics.settings import (
    CATALOG_KEYS,
    REGENIE_STEP1_KEYS,
    HeritabilitySettings,
    InProcessGwasSettings,
    JointSettings,
    PhenoSettings,
    QcSettings,
    ShardSettings,
)
from vitudip.imaging.settings import PreprocessSettings
from vitudip.io.genotype_files import GenotypeInput
from vitudip.loci.settings import LociSettings
from vitudip.model.config import model_from_config
from vitudip.perdi.settings import PerdiSettings
from vitudip.replication.settings import ReplicationSettings
from vitudip.simulate.settings import COHORT_FILES, SimulateSettings
from vitudip.train.jobs import segment_ends
from vitudip.train.settings import TrainSettings
from vitudip.study import INPUT_CHECK_KEYS, study_warnings, validate_study


def input_table_columns():
    """Per input table, the columns the config names beyond the table's schema, each with its cells' schema."""
    pheno = PhenoSettings.from_config(config)
    covariates = {column: {"type": "number"} for column in pheno.numeric_columns()}
    covariates.update({column: {} for column in pheno.categorical})
    replication = config["replication"]
    if replication["enabled"] and replication["split"] == "covariate":
        covariates.setdefault(replication["covariate"], {})
    return {"samples": {}, "covariates": covariates}


def check_input_tables():
    """The samples and covariates tables match vitudip/schemas/<table>.schema.yaml, before any job reads them.

    A table not there yet is the demo's, which simulate_cohort writes (a user's missing one is named by
    check_input_paths).
    """
    for name, columns in input_table_columns().items():
        if os.path.exists(config["inputs"][name]):
            validate_table(config["inputs"][name], name, columns)


try:
    # the schema, then each stage's settings built once with the checks between keys (vitudip/study.py)
    config = validate_study(config)
    # The simulate stage writes the demo cohort's files, so they need not exist yet.
    DEMO = {k: os.path.join(config["simulate"]["outdir"], v) for k, v in COHORT_FILES.items()}
    produced = (
        set(DEMO.values()) | {os.path.join(config["simulate"]["outdir"], "geno")}
        if config["simulate"]["enabled"]
        else set()
    )
    check_input_paths(config, produced)
    check_input_tables()
except (ConfigError, ValueError) as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
for warning in study_warnings(config):
    logger.warning(f"WARNING: {warning}")

# Stage scripts import the library from this checkout, whichever environment (or Slurm node) runs them,
# and run on the Python that runs Snakemake (whose packages it has), not on whichever `python` is first on
# PATH; with --use-conda each rule's own environment provides it.
# (Snakemake formats the prefix like a shell command, hence the doubled braces.)
INTERPRETER_PATH = (
    ""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
)
shell.prefix(
    f"set -euo pipefail; {INTERPRETER_PATH}"
    f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

# Scripts are found from the workflow, whatever the working directory (--directory).
SCRIPTS = os.path.join(workflow.basedir, "scripts")
RESULTS = config["results"]
INPUTS = config["inputs"]


def results(*parts):
    """A path under the results folder."""
    return os.path.join(config["results"], *parts)


def script_path(name):
    """A stage script of this checkout, passed to each rule as a param (its shell line reads no globals)."""
    return os.path.join(SCRIPTS, name)


def fileset_prefix(files):
    """The prefix of a genotype fileset given its files (``geno.bed`` ... -> ``geno``)."""
    return os.path.splitext(files[0])[0]


# The study's genotypes: one fileset, or one per chromosome (inputs.genotypes with {chromosome}).
GENOTYPES = GenotypeInput.from_config(config)
# the simulated cohort has its own chromosomes; real data uses gwas.chromosomes
GWAS_CHROMOSOMES = analysed_chromosomes(config)
# the pruned common variants of relatedness, genetic PCs and REGENIE step 1 (genotype_qc)
PRUNED = results("genotypes", "pruned")


def source_genotype_files(chromosome):
    """The input files holding one chromosome, its sample file included (the demo's PLINK 1 set before
    simulate_cohort writes it)."""
    try:
        return GENOTYPES.files(chromosome)
    except FileNotFoundError:
        return [GENOTYPES.prefix(chromosome) + ext for ext in (".bed", ".bim", ".fam")]


def genotype_samples_flag():
    """The --genotype-samples flag of the scripts that read the input genotypes ("" without one)."""
    sample_file = config["inputs"]["genotype_samples"]
    return f"--genotype-samples {shlex.quote(sample_file)}" if sample_file else ""


def chromosome_prefix(chromosome):
    """The analysed samples' genotypes of one chromosome (prepare_genotypes), which every later stage reads."""
    return results("genotypes", f"chr{chromosome}")


def chromosome_files(chromosome):
    return [chromosome_prefix(chromosome) + ext for ext in (".pgen", ".pvar", ".psam")]


def ukb_mfi_files():
    """The UK Biobank INFO tables of the analysed chromosomes (none without genotype_qc.ukb_mfi)."""
    pattern = config["genotype_qc"]["ukb_mfi"]
    return [pattern.replace("{chromosome}", c) for c in GWAS_CHROMOSOMES] if pattern else []


def ukb_mfi_file(chromosome):
    """One chromosome's UK Biobank INFO table (none without genotype_qc.ukb_mfi)."""
    pattern = config["genotype_qc"]["ukb_mfi"]
    return [pattern.replace("{chromosome}", chromosome)] if pattern else []


def info_prefilter_flags():
    """prepare_genotypes' INFO prefilter: genotype_qc's mfi pattern and threshold (none without ukb_mfi)."""
    qc = config["genotype_qc"]
    if not qc["ukb_mfi"]:
        return ""
    return f"--ukb-mfi {shlex.quote(qc['ukb_mfi'])} --min-info {qc['min_info']}"


def gwas_table(name):
    """The GWAS's ``pheno`` or ``covar`` table: the discovery set's with replication.enabled, else every analysed
    subject's (every GWAS, joint test and loci rule reads it through here)."""
    if config["replication"]["enabled"]:
        return results("replication", "discovery", f"{name}.tsv")
    return results("pheno", f"{name}.tsv")


def replication_outputs():
    """The replication stage's tables (none with replication.enabled false)."""
    if not config["replication"]["enabled"]:
        return {}
    return {
        "replication": results("loci", "replication.tsv"),
        "replication_summary": results("loci", "replication_summary.tsv"),
    }


def joint_outputs():
    """The joint test's files that later stages read or the user looks at (none with joint.enabled false)."""
    joint = config["joint"]
    if not joint["enabled"]:
        return {}
    outputs = {
        "joint": results("gwas", "joint", "joint.tsv.gz"),
        "joint_lambda": results("gwas", "joint", "lambda.tsv"),
        "joint_qq": results("gwas", "joint", "qq.png"),
    }
    if joint["calibrate"]:
        outputs.update(
            joint_null=results("gwas", "joint", "null.tsv"), joint_null_qq=results("gwas", "joint", "null_qq.png")
        )
    return outputs


def all_outputs():
    """The inputs of the target rule `all`, the final files of every stage that exists."""
    outputs = [
        results("checks", "inputs.tsv"),
        results("preprocess", "qc.tsv"),
        results("preprocess", "splits.tsv"),
        results("preprocess", "brain_mask.npy"),
        results("embed", "udips.tsv"),
        results("embed", "recon_mse.tsv"),
        results("embed", "scree.png"),
        results("genotypes", "variant_qc.tsv"),
        results("pheno", "exclusions.tsv"),
        results("gwas", "lambda.tsv"),
        results("gwas", "qq.png"),
        *joint_outputs().values(),
        results("loci", "loci_merged.tsv"),
        results("loci", "manhattan.png"),
        *replication_outputs().values(),
    ]
    if config["heritability"]["enabled"]:
        outputs += [results("gwas", "heritability_summary.tsv"), results("gwas", "heritability.png")]
    if config["embed"]["method"] == "vit":
        outputs += [
            results("train", "loss.png"),
            results("train", "reconstruction.png"),
            results("perdi", "regions.tsv"),
            results("perdi", "overview.png"),
            results("report", "summary.tsv"),
        ]
        if config["embed"]["pca_baseline"]:
            outputs.append(results("embed", "pca", "udips.tsv"))
    if config["stability"]["enabled"]:
        outputs.append(results("stability", "stability.tsv"))
    if config["simulate"]["enabled"]:
        outputs += [results("embed", "embedding_vs_truth.tsv"), results("loci", "truth_recovery.tsv")]
        if config["embed"]["method"] == "vit":
            outputs += [results("report", "truth.tsv"), results("report", "truth_summary.tsv")]
    return outputs


# Settings and inputs of the stage rules, from the config.


def stage_settings(*key_sets):
    """The config keys a stage reads, as the JSON its script takes with --settings.

    Each argument is a settings class's CONFIG_KEYS (or the keys a script reads): a top-level key (``loci``)
    or one key of a section (``pheno.inverse_normal``), so a rule does not rerun for settings it does not
    read: a rule's params are among its rerun triggers, so changing any of these keys reruns the rule.
    """
    keys = list(dict.fromkeys(key for key_set in key_sets for key in key_set))
    return json.dumps(stage_values(config, keys), sort_keys=True)


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
    embed = config["embed"]
    tables = {embed["method"]: results("embed", "udips.tsv")}
    if embed["method"] == "vit" and embed["pca_baseline"]:
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


def analysed_tables():
    """Every analysed subject's phenotype and covariate tables (the discovery and replication sets together)."""
    return {"pheno": results("pheno", "pheno.tsv"), "covar": results("pheno", "covar.tsv")}


def heritability_baseline():
    """The PCA baseline's table, whose heritability is estimated beside the UDIPs' (none without the baseline)."""
    tables = compared_embeddings()
    return {"baseline": tables["pca"]} if "pca" in tables and config["embed"]["method"] != "pca" else {}


def gwas_shard_inputs(wildcards):
    inputs = {
        "pheno": gwas_table("pheno"),
        "covar": gwas_table("covar"),
        # the analysed samples of this chromosome (prepare_genotypes)
        "genotypes": chromosome_files(wildcards.chromosome),
        # the variants that pass the genotype QC, the only ones tested
        "variants": results("genotypes", "variants_pass.txt"),
    }
    if config["gwas"]["engine"] == "regenie":
        inputs["step1"] = results("gwas", "regenie_step1")
    return inputs


def train_segment_ends():
    """The epoch after which each training job stops, the last being train.epochs (train_model's)."""
    return segment_ends(config["train"]["epochs"], config["train"]["epochs_per_job"])


def previous_train_segment(epoch):
    """The record of the training job before the one that ends after `epoch` (none for the first job)."""
    earlier = [end for end in train_segment_ends() if end < epoch]
    return [results("train", "segments", f"epoch_{earlier[-1]}.json")] if earlier else []


# Resources: each rule's mem_mb and runtime from its inputs' sizes, by the cost models of vitudip/resources.py.
# A function of ``input`` is evaluated when its job is about to run (its inputs then exist); a retry asks for
# ``attempt`` times as much.

# UDIP dimensions, of the method the workflow embeds with
DIMENSIONS = (
    model_from_config(config).encoder_dim if config["embed"]["method"] == "vit" else config["embed"]["pca_components"]
)
# voxels of the padded grid every image stage reads
GRID_VOXELS = math.prod(config["preprocess"]["pad_to"])


def model_size():
    """What of the configured model sets training's, embedding's and PerDI's costs."""
    return cost.ModelSize.of(model_from_config(config))


def resources_from(request):
    """A rule's mem_mb and runtime from ``request(wildcards, input, threads)``, a :class:`vitudip.resources.Request`
    of the first attempt, times the attempt."""

    def mem_mb(wildcards, input, threads, attempt):
        return request(wildcards, input, threads).retried(attempt).mem_mb

    def runtime(wildcards, input, threads, attempt):
        return request(wildcards, input, threads).retried(attempt).runtime

    return {"mem_mb": mem_mb, "runtime": runtime}


def pvar_of(files):
    """The .pvar of a PLINK 2 fileset given its files."""
    return next(path for path in files if path.endswith(".pvar"))


def simulate_request(wildcards, input, threads):
    sim = config["simulate"]
    voxels = int(182 * 218 * 182 / sim["voxel_mm"] ** 3)
    # msprime at the defaults gives about 2,200 variants per Mb (the tiny study: 4,390 on 2 Mb)
    variants = int(len(sim["genotypes"]["chromosomes"]) * sim["genotypes"]["length_mb"] * 2200)
    return cost.simulate_cohort(sim["n_subjects"], voxels, variants)


def preprocess_request(wildcards, input, threads):
    return cost.preprocess_images(cost.table_rows(input.samples), GRID_VOXELS, threads)


def train_request(wildcards, input, threads):
    """One training job's: at most train.epochs_per_job epochs (its runtime is the limit the job stops before)."""
    train = config["train"]
    epochs = min(train["epochs"], train["epochs_per_job"])
    return cost.train_model(
        cost.table_rows(input.qc),
        epochs,
        train["batch_size"],
        model_size(),
        train["device"] != "cpu",
        train["processes"],
    )


def embed_request(wildcards, input, threads):
    if "model" in input.keys():
        gpu = config["train"]["device"] != "cpu"
        return cost.embed_vit(cost.table_rows(input.qc), config["embed"]["batch_size"], model_size(), gpu)
    return cost.embed_pca(
        cost.table_rows(input.qc), cost.brain_voxels(input.brain_mask), config["embed"]["pca_components"]
    )


def tables_request(wildcards, input, threads):
    """A job over a few tables: its largest input table's rows, each of at most the UDIPs' columns."""
    tables = [path for path in input if os.path.isfile(path) and path.endswith(".tsv")]
    return cost.small_tables(max([cost.table_rows(path) for path in tables], default=0), DIMENSIONS + 2)


def validate_request(wildcards, input, threads):
    """The input tables and genotype sample files, and every genotype fileset's variant table."""
    sample_files = [path for path in input.genotypes if path.endswith((".sample", ".psam", ".fam"))]
    rows = [cost.table_rows(path) for path in [input.samples, input.covariates, *sample_files]]
    variants = [
        cost.genotype_file_variants([path]) for path in input.genotypes if path.endswith((".bgen", ".pvar", ".bim"))
    ]
    return cost.validate_inputs(max(rows), variants)


def prepare_genotypes_request(wildcards, input, threads):
    samples = cost.table_rows(input.selection)
    return cost.prepare_genotypes(samples, samples, cost.genotype_file_variants(input.genotypes), threads)


def genotype_qc_request(wildcards, input, threads):
    variants = sum(cost.variant_rows(pvar) for pvar in input.chromosomes if pvar.endswith(".pvar"))
    return cost.genotype_qc(cost.table_rows(input.selection), variants, threads)


def pheno_request(wildcards, input, threads):
    return cost.prepare_phenotypes(cost.table_rows(input.udips), DIMENSIONS, cost.variant_rows(input.variants))


def regenie_step1_request(wildcards, input, threads):
    return cost.regenie_step1(cost.table_rows(input.pheno), cost.variant_rows(pvar_of(input.genotypes)), DIMENSIONS)


def gwas_shard_request(wildcards, input, threads):
    gwas = config["gwas"]
    return cost.gwas(
        gwas["engine"],
        cost.table_rows(input.pheno),
        cost.variant_rows(pvar_of(input.genotypes)),
        math.ceil(DIMENSIONS / gwas["dimension_batches"]),
        gwas["block_size"],
        threads,
    )


def heritability_request(wildcards, input, threads):
    settings = config["heritability"]
    return cost.heritability(
        cost.table_rows(input.pheno),
        cost.variant_rows(pvar_of(input.genotypes)),
        DIMENSIONS * (2 if "baseline" in input.keys() else 1),
        settings["random_vectors"],
        settings["jackknife_blocks"],
        config["gwas"]["block_size"],
        threads,
    )


def calibrate_joint_request(wildcards, input, threads):
    # the in-process engine on the pruned variants, every dimension at once
    return cost.gwas(
        "torch",
        cost.table_rows(input.pheno),
        cost.variant_rows(pvar_of(input.genotypes)),
        DIMENSIONS,
        config["gwas"]["block_size"],
        threads,
    )


def replication_gwas_request(wildcards, input, threads):
    """The study's engine on the replication set: every dimension, the leads of the largest chromosome's fileset
    (the leads are few, but plink2 and REGENIE read the variant table)."""
    gwas = config["gwas"]
    return cost.gwas(
        gwas["engine"],
        cost.table_rows(input.pheno),
        max(cost.variant_rows(pvar_of([path])) for path in input.genotypes if path.endswith(".pvar")),
        DIMENSIONS,
        gwas["block_size"],
        threads,
    )


def gather_request(wildcards, input, threads):
    return cost.gwas_gather(cost.variant_rows(input.variants), DIMENSIONS)


def joint_request(wildcards, input, threads):
    return cost.joint_test(cost.variant_rows(input.variants), DIMENSIONS, config["joint"]["chunk_size"])


def loci_request(wildcards, input, threads):
    return cost.find_loci(
        cost.table_rows(input.pheno),
        cost.variant_rows(input.variants),
        DIMENSIONS,
        threads,
        config["loci"]["candidate_p"],
    )


def perdi_request(wildcards, input, threads):
    perdi = config["perdi"]
    return cost.perdi_maps(
        min(perdi["n_subjects"], cost.table_rows(input.qc)),
        DIMENSIONS + cost.table_rows(input.loci),
        GRID_VOXELS,
        cost.brain_voxels(input.brain_mask),
        perdi["batch_size"],
        perdi["device"] != "cpu",
    )


# The stability check's second training run (stability.enabled, workflow/rules/stability.smk).


def run2(*parts):
    """A path of the second training run's outputs."""
    return results("stability", "run2", *parts)


def previous_stability_segment(epoch):
    """The second run's record of the training job before the one that ends after `epoch`."""
    return [run2("train", "segments", os.path.basename(path)) for path in previous_train_segment(epoch)]


def stability_gwas_shard_inputs(wildcards):
    """A GWAS shard's inputs, with the second run's phenotypes and covariates (and REGENIE step 1)."""
    inputs = gwas_shard_inputs(wildcards)
    inputs.update(pheno=run2("pheno", "pheno.tsv"), covar=run2("pheno", "covar.tsv"))
    if "step1" in inputs:
        inputs["step1"] = run2("gwas", "regenie_step1")
    return inputs


def untrained_model_request(wildcards, input, threads):
    return cost.untrained_model(os.path.getsize(input.model))


def stability_request(wildcards, input, threads):
    """The stability comparison: the UDIP tables (rows of the first), each of DIMENSIONS columns."""
    return cost.compare_runs(
        cost.table_rows(input.udips[0]),
        DIMENSIONS,
        len(input.udips) + len(input.untrained),
        config["stability"]["permutations"],
    )
