# Genotype QC before every GWAS: the samples (keep list, call rate, KING relatedness) and the variants (call
# rate, MAF, MAC, INFO, HWE) every engine, the genetic PCs and calibrate_joint use. plink2 computes the
# statistics; the stage applies the thresholds and counts what each removes.


rule genotype_qc:
    input:
        genotypes=genotype_files(INPUTS["genotypes"]),
        samples=INPUTS["samples"],
        keep=config["genotype_qc"]["keep"] or [],
    output:
        samples=results("genotypes", "sample_qc.tsv"),
        variants=results("genotypes", "variant_qc.tsv"),
        passing=results("genotypes", "variants_pass.txt"),
    params:
        script=script_path("genotype_qc.py"),
        prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
        settings=stage_settings(QcSettings.CONFIG_KEYS),
    log:
        results("logs", "genotype_qc.log"),
    benchmark:
        results("benchmarks", "genotype_qc.tsv")
    threads: 4
    resources:
        # plink2 streams the genotypes; KING's pairwise pass grows with the square of the samples
        mem_mb=lambda wildcards, attempt: attempt * 8000,
        runtime=lambda wildcards, attempt: attempt * 240,
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --genotypes {params.prefix:q} --samples {input.samples:q} "
        "--settings {params.settings:q} --threads {threads} --sample-qc {output.samples:q} "
        "--variant-qc {output.variants:q} --variants-pass {output.passing:q} > {log:q} 2>&1"
