# Phenotype and covariate tables for the GWAS: UDIPs, covariates, genotype samples and image QC joined by ID.
# A join of tables, so it runs on the submitting host, unless it computes genetic PCs with plink2.

if not (config["pheno"]["genetic_pcs"] and config["pheno"]["pcs_from"] == "plink2"):

    localrules:
        prepare_phenotypes,


rule prepare_phenotypes:
    input:
        udips=results("embed", "udips.tsv"),
        recon_mse=results("embed", "recon_mse.tsv"),
        covariates=INPUTS["covariates"],
        # the analysed samples and the pruned common variants the genetic PCs are computed on
        genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
        qc=results("preprocess", "qc.tsv"),
        sample_qc=results("genotypes", "sample_qc.tsv"),
        variants=results("genotypes", "variants_pass.txt"),
    output:
        pheno=results("pheno", "pheno.tsv"),
        covar=results("pheno", "covar.tsv"),
        samples=results("pheno", "samples.tsv"),
        exclusions=results("pheno", "exclusions.tsv"),
    params:
        script=script_path("pheno.py"),
        prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
        settings=stage_settings(PhenoSettings.CONFIG_KEYS),
        # regenie models relatedness and keeps relatives; the linear engines need unrelated samples
        related="keep" if config["gwas"]["engine"] == "regenie" else "drop",
    log:
        results("logs", "prepare_phenotypes.log"),
    benchmark:
        results("benchmarks", "prepare_phenotypes.tsv")
    threads: 1
    resources:
        **resources_from(pheno_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --udips {input.udips:q} --covariates {input.covariates:q} "
        "--genotypes {params.prefix:q} --qc {input.qc:q} --recon-mse {input.recon_mse:q} --settings {params.settings:q} "
        "--sample-qc {input.sample_qc:q} --variants {input.variants:q} --related {params.related} --threads {threads} "
        "--pheno {output.pheno:q} --covar {output.covar:q} --samples {output.samples:q} "
        "--exclusions {output.exclusions:q} > {log:q} 2>&1"
