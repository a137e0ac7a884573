# The checks of the inputs the stages after training read, which need no model: the covariates and their
# levels, the genotype samples against the imaged subjects, gwas.chromosomes against the genotype files, and
# pheno.min_samples. Training waits for them, so a mistake there stops the run in its first minutes, not after
# training. Only tables, headers and the variant table's chromosome column are read: seconds on UK Biobank.


localrules:
    validate_inputs,


rule validate_inputs:
    input:
        samples=INPUTS["samples"],
        covariates=INPUTS["covariates"],
        genotypes=source_genotype_files(GWAS_CHROMOSOMES[0]),
        keep=config["genotype_qc"]["keep"] or [],
    output:
        results("checks", "inputs.tsv"),
    params:
        script=script_path("validate_inputs.py"),
        # functions, so that the pattern's {chromosome} is not taken for a wildcard
        genotypes=lambda wildcards: GENOTYPES.pattern,
        sample_file=lambda wildcards: genotype_samples_flag(),
        keep=lambda wildcards, input: f"--keep {shlex.quote(input.keep)}" if input.keep else "",
        chromosomes=" ".join(shlex.quote(c) for c in GWAS_CHROMOSOMES),
        settings=stage_settings(PhenoSettings.CONFIG_KEYS),
    log:
        results("logs", "validate_inputs.log"),
    benchmark:
        results("benchmarks", "validate_inputs.tsv")
    # before the other jobs that are ready with it (preprocessing: hours on UK Biobank), where cores are few
    priority: 50
    resources:
        **resources_from(validate_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --genotypes {params.genotypes:q} {params.sample_file} "
        "--chromosomes {params.chromosomes} --samples {input.samples:q} --covariates {input.covariates:q} "
        "{params.keep} --settings {params.settings:q} --out {output:q} > {log:q} 2>&1"
