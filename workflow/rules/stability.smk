# Stability across training runs (stability.enabled): the ViT trained a second time with another seed
# (stability.seed_offset), embedded, and taken through the same phenotype, GWAS and loci rules as the first run,
# under results/stability/run2/; then linear CKA of the two runs' UDIPs (and of the two networks as initialised,
# the untrained reference) and the share of merged loci both runs find: results/stability/stability.tsv.
# The second run's rules are the first run's (`use rule`), so both runs train, embed and test alike; the second
# training resumes from its own checkpoints like the first.

from vitudip.stability.settings import StabilitySettings

STABILITY = StabilitySettings.from_config(config)
# the training settings with the second run's seed (which seeds initialisation and the data order)
STABILITY_TRAIN_SETTINGS = json.dumps(
    {**stage_values(config, TrainSettings.CONFIG_KEYS), "seed": STABILITY.seed_run2}, sort_keys=True
)
RUN_MODELS = {"1": results("train", "model.pt"), "2": run2("train", "model.pt")}
RUN_SEEDS = {"1": STABILITY.seed_run1, "2": STABILITY.seed_run2}


# the preprocessing outputs both runs train on
STABILITY_TRAIN_INPUTS = dict(
    cache=results("preprocess", "cache"),
    qc=results("preprocess", "qc.tsv"),
    splits=results("preprocess", "splits.tsv"),
    brain_mask=results("preprocess", "brain_mask.npy"),
    checks=ancient(results("checks", "inputs.tsv")),
)


use rule train_segment as stability_train_segment with:
    input:
        **STABILITY_TRAIN_INPUTS,
        previous=lambda wildcards: previous_stability_segment(int(wildcards.epoch)),
    output:
        record=run2("train", "segments", "epoch_{epoch}.json"),
    params:
        settings=STABILITY_TRAIN_SETTINGS,
        checkpoints=run2("train", "checkpoints"),
    log:
        results("logs", "stability_train_segment_{epoch}.log"),
    benchmark:
        results("benchmarks", "stability_train_segment_{epoch}.tsv")


use rule train_model as stability_train_model with:
    input:
        **STABILITY_TRAIN_INPUTS,
        previous=previous_stability_segment(config["train"]["epochs"]),
    output:
        model=run2("train", "model.pt"),
        metrics=run2("train", "metrics.tsv"),
        loss_plot=run2("train", "loss.png"),
        reconstruction_plot=run2("train", "reconstruction.png"),
    params:
        settings=STABILITY_TRAIN_SETTINGS,
        checkpoints=run2("train", "checkpoints"),
    log:
        results("logs", "stability_train_model.log"),
    benchmark:
        results("benchmarks", "stability_train_model.tsv")


use rule embed_udips as stability_embed_udips with:
    input:
        **{**embed_inputs("vit"), "model": RUN_MODELS["2"]},
    output:
        udips=run2("embed", "udips.tsv"),
        recon_mse=run2("embed", "recon_mse.tsv"),
        spectrum=run2("embed", "spectrum.tsv"),
        health=run2("embed", "health.tsv"),
    log:
        results("logs", "stability_embed_udips.log"),
    benchmark:
        results("benchmarks", "stability_embed_udips.tsv")


if STABILITY.untrained:

    # the reference: each run's network as initialised, embedded like the trained ones
    rule stability_untrained_model:
        input:
            model=lambda wildcards: RUN_MODELS[wildcards.run],
        output:
            model=results("stability", "untrained", "run{run}", "model.pt"),
        params:
            script=script_path("untrained_model.py"),
            seed=lambda wildcards: RUN_SEEDS[wildcards.run],
        wildcard_constraints:
            run="1|2",
        log:
            results("logs", "stability_untrained_model_run{run}.log"),
        benchmark:
            results("benchmarks", "stability_untrained_model_run{run}.tsv")
        threads: 1
        resources:
            **resources_from(untrained_model_request),
        conda:
            "../../envs/torch.yaml"
        shell:
            "python {params.script:q} --model {input.model:q} --seed {params.seed} --out {output.model:q} "
            "> {log:q} 2>&1"

    use rule embed_udips as stability_embed_untrained with:
        input:
            **{**embed_inputs("vit"), "model": results("stability", "untrained", "run{run}", "model.pt")},
        output:
            udips=results("stability", "untrained", "run{run}", "udips.tsv"),
            recon_mse=results("stability", "untrained", "run{run}", "recon_mse.tsv"),
            spectrum=results("stability", "untrained", "run{run}", "spectrum.tsv"),
            health=results("stability", "untrained", "run{run}", "health.tsv"),
        wildcard_constraints:
            run="1|2",
        log:
            results("logs", "stability_embed_untrained_run{run}.log"),
        benchmark:
            results("benchmarks", "stability_embed_untrained_run{run}.tsv")


if not (config["pheno"]["genetic_pcs"] and config["pheno"]["pcs_from"] == "plink2"):

    localrules:
        stability_prepare_phenotypes,


use rule prepare_phenotypes as stability_prepare_phenotypes with:
    input:
        udips=run2("embed", "udips.tsv"),
        recon_mse=run2("embed", "recon_mse.tsv"),
        covariates=INPUTS["covariates"],
        genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
        qc=results("preprocess", "qc.tsv"),
        sample_qc=results("genotypes", "sample_qc.tsv"),
        variants=results("genotypes", "variants_pass.txt"),
    output:
        pheno=run2("pheno", "pheno.tsv"),
        covar=run2("pheno", "covar.tsv"),
        samples=run2("pheno", "samples.tsv"),
        exclusions=run2("pheno", "exclusions.tsv"),
    log:
        results("logs", "stability_prepare_phenotypes.log"),
    benchmark:
        results("benchmarks", "stability_prepare_phenotypes.tsv")


if GWAS["engine"] == "regenie":

    use rule regenie_step1 as stability_regenie_step1 with:
        input:
            pheno=run2("pheno", "pheno.tsv"),
            covar=run2("pheno", "covar.tsv"),
            genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
            variants=REGENIE["step1_variants"] or [],
            passing=results("genotypes", "variants_pass.txt"),
        output:
            directory(run2("gwas", "regenie_step1")),
        log:
            results("logs", "stability_regenie_step1.log"),
        benchmark:
            results("benchmarks", "stability_regenie_step1.tsv")


use rule gwas_shard as stability_gwas_shard with:
    input:
        unpack(stability_gwas_shard_inputs),
    output:
        directory(run2("gwas", "shards", "chr{chromosome}", "batch{batch}")),
    log:
        results("logs", "stability_gwas_shard", "chr{chromosome}_batch{batch}.log"),
    benchmark:
        results("benchmarks", "stability_gwas_shard", "chr{chromosome}_batch{batch}.tsv")


use rule gwas_gather as stability_gwas_gather with:
    input:
        shards=expand(
            run2("gwas", "shards", "chr{chromosome}", "batch{batch}"),
            chromosome=GWAS_CHROMOSOMES,
            batch=GWAS_BATCHES,
        ),
        covar=run2("pheno", "covar.tsv"),
        variants=results("genotypes", "variants_pass.txt"),
    output:
        sumstats=directory(run2("gwas", "sumstats")),
        lambdas=run2("gwas", "lambda.tsv"),
        qq=run2("gwas", "qq.png"),
    log:
        results("logs", "stability_gwas_gather.log"),
    benchmark:
        results("benchmarks", "stability_gwas_gather.tsv")


# the second run's loci with the first run's settings; without the joint test (which the comparison leaves
# out, the second run having none) or the gene and known-loci annotations (positions are compared)
use rule find_loci as stability_find_loci with:
    input:
        sumstats=run2("gwas", "sumstats"),
        pheno=run2("pheno", "pheno.tsv"),
        ld=LD_FILES,
        variants=results("genotypes", "variants_pass.txt"),
    output:
        ind_sig_snps=run2("loci", "IndSigSNPs.tsv"),
        lead_snps=run2("loci", "leadSNPs.tsv"),
        genomic_risk_loci=run2("loci", "GenomicRiskLoci.tsv"),
        loci_merged=run2("loci", "loci_merged.tsv"),
        thresholds=run2("loci", "thresholds.tsv"),
        manhattan=run2("loci", "manhattan.png"),
        regional=directory(run2("loci", "regional")),
    params:
        tables="",
        joint="",
    log:
        results("logs", "stability_find_loci.log"),
    benchmark:
        results("benchmarks", "stability_find_loci.tsv")


rule compare_training_runs:
    input:
        udips=[results("embed", "udips.tsv"), run2("embed", "udips.tsv")],
        untrained=(
            [results("stability", "untrained", f"run{run}", "udips.tsv") for run in RUN_MODELS]
            if STABILITY.untrained
            else []
        ),
        loci=[results("loci", "GenomicRiskLoci.tsv"), run2("loci", "GenomicRiskLoci.tsv")],
        thresholds=[results("loci", "thresholds.tsv"), run2("loci", "thresholds.tsv")],
        splits=results("preprocess", "splits.tsv"),
    output:
        report(results("stability", "stability.tsv"), caption="../report/stability.rst", category="Stability"),
    params:
        script=script_path("stability.py"),
        settings=stage_settings(StabilitySettings.CONFIG_KEYS),
        untrained=lambda wildcards, input: (
            f"--untrained {' '.join(shlex.quote(path) for path in input.untrained)}" if input.untrained else ""
        ),
    log:
        results("logs", "compare_training_runs.log"),
    benchmark:
        results("benchmarks", "compare_training_runs.tsv")
    threads: 1
    resources:
        **resources_from(stability_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --udips {input.udips:q} --loci {input.loci:q} --thresholds {input.thresholds:q} "
        "{params.untrained} --splits {input.splits:q} --settings {params.settings:q} --out {output:q} > {log:q} 2>&1"
