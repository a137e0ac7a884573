# The genotypes every genetics stage reads, then their QC.
# select_samples reads the genotype sample file once: which samples are analysed (not withdrawn, with an
# image, in the keep list). prepare_genotypes writes each chromosome's analysed samples as a PLINK 2
# fileset (dosages kept, variant IDs unique), decoding only those samples. genotype_qc then filters
# samples (call rate, KING relatedness) and variants (call rate, MAF, MAC, INFO, HWE), and writes the
# pruned common variants that relatedness, the genetic PCs and REGENIE step 1 read.


localrules:
    select_samples,


rule select_samples:
    input:
        genotypes=source_genotype_files(GWAS_CHROMOSOMES[0]),
        samples=INPUTS["samples"],
        covariates=INPUTS["covariates"],
        keep=config["genotype_qc"]["keep"] or [],
    output:
        results("genotypes", "sample_selection.tsv"),
    params:
        script=script_path("select_samples.py"),
        # functions, so that the pattern's {chromosome} is not taken for a wildcard
        genotypes=lambda wildcards: GENOTYPES.pattern,
        sample_file=lambda wildcards: genotype_samples_flag(),
        keep=lambda wildcards, input: f"--keep {shlex.quote(input.keep)}" if input.keep else "",
        chromosome=GWAS_CHROMOSOMES[0],
    log:
        results("logs", "select_samples.log"),
    benchmark:
        results("benchmarks", "select_samples.tsv")
    resources:
        **resources_from(tables_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --genotypes {params.genotypes:q} {params.sample_file} "
        "--chromosome {params.chromosome:q} --samples {input.samples:q} --covariates {input.covariates:q} {params.keep} "
        "--out {output:q} > {log:q} 2>&1"


rule prepare_genotypes:
    input:
        genotypes=lambda wildcards: source_genotype_files(wildcards.chromosome),
        selection=results("genotypes", "sample_selection.tsv"),
        mfi=lambda wildcards: ukb_mfi_file(wildcards.chromosome),
    output:
        multiext(results("genotypes", "chr{chromosome}"), ".pgen", ".pvar", ".psam"),
    params:
        script=script_path("prepare_genotypes.py"),
        genotypes=lambda wildcards: GENOTYPES.pattern,
        sample_file=lambda wildcards: genotype_samples_flag(),
        out_prefix=lambda wildcards, output: fileset_prefix(output),
        # QC's INFO filter would drop these records: a BGEN's are skipped before decoding
        prefilter=lambda wildcards: info_prefilter_flags(),
    wildcard_constraints:
        chromosome=r"[^/.]+",
    log:
        results("logs", "prepare_genotypes", "chr{chromosome}.log"),
    benchmark:
        results("benchmarks", "prepare_genotypes", "chr{chromosome}.tsv")
    threads: 4
    resources:
        **resources_from(prepare_genotypes_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --genotypes {params.genotypes:q} {params.sample_file} "
        "--chromosome {wildcards.chromosome:q} --selection {input.selection:q} --out-prefix {params.out_prefix:q} "
        "--threads {threads} {params.prefilter} > {log:q} 2>&1"


rule genotype_qc:
    input:
        chromosomes=[chromosome_files(chromosome) for chromosome in GWAS_CHROMOSOMES],
        selection=results("genotypes", "sample_selection.tsv"),
        mfi=ukb_mfi_files(),
    output:
        samples=results("genotypes", "sample_qc.tsv"),
        variants=results("genotypes", "variant_qc.tsv"),
        passing=results("genotypes", "variants_pass.txt"),
        pruned=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
    params:
        script=script_path("genotype_qc.py"),
        chromosomes=lambda wildcards, input: list(dict.fromkeys(os.path.splitext(p)[0] for p in input.chromosomes)),
        pruned=lambda wildcards, output: fileset_prefix(output.pruned),
        # a function: the ukb_mfi pattern's {chromosome} is no wildcard
        settings=lambda wildcards: stage_settings(QcSettings.CONFIG_KEYS),
    log:
        results("logs", "genotype_qc.log"),
    benchmark:
        results("benchmarks", "genotype_qc.tsv")
    threads: 4
    resources:
        # plink2 streams the genotypes; KING's pairwise pass grows with the square of the samples
        **resources_from(genotype_qc_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --chromosomes {params.chromosomes:q} --selection {input.selection:q} "
        "--settings {params.settings:q} --threads {threads} --sample-qc {output.samples:q} "
        "--variant-qc {output.variants:q} --variants-pass {output.passing:q} --pruned {params.pruned:q} > {log:q} 2>&1"
