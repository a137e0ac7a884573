# The checks of the inputs the stages after training read, which need no model: the covariates and their
# levels, the genotype samples against the imaged subjects, gwas.chromosomes against the genotype files,
# pheno.min_samples, every chromosome's fileset (same samples, not truncated, variant IDs unique across
# chromosomes) and loci.ld_reference's .bed (not truncated). Training waits for them, so a mistake there stops the run in its first minutes, not after
# training. Only tables, headers and variant tables are read, never genotypes; every variant table is, so on
# UK Biobank it is a job of its own (minutes, a few GB), not a local rule on the submitting host.


rule validate_inputs:
    input:
        samples=INPUTS["samples"],
        covariates=INPUTS["covariates"],
        # every chromosome's fileset: their samples, sizes and variant IDs are checked
        genotypes=list(
            dict.fromkeys(path for chromosome in GWAS_CHROMOSOMES for path in source_genotype_files(chromosome))
        ),
        keep=config["genotype_qc"]["keep"] or [],
        ld_reference=(
            multiext(config["loci"]["ld_reference"], ".bed", ".bim", ".fam") if config["loci"]["ld_reference"] else []
        ),
    output:
        results("checks", "inputs.tsv"),
    params:
        script=script_path("validate_inputs.py"),
        # functions, so that the pattern's {chromosome} is not taken for a wildcard
        genotypes=lambda wildcards: GENOTYPES.pattern,
        sample_file=lambda wildcards: genotype_samples_flag(),
        keep=lambda wildcards, input: f"--keep {shlex.quote(input.keep)}" if input.keep else "",
        ld_reference=(
            f"--ld-reference {shlex.quote(config['loci']['ld_reference'])}" if config["loci"]["ld_reference"] else ""
        ),
        chromosomes=" ".join(shlex.quote(c) for c in GWAS_CHROMOSOMES),
        settings=stage_settings(INPUT_CHECK_KEYS),
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
        "{params.keep} {params.ld_reference} --settings {params.settings:q} --out {output:q} > {log:q} 2>&1"
