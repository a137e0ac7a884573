# Phenotype and covariate tables for the GWAS: UDIPs, covariates, genotype samples and image QC joined by ID.


def pheno_args():
    p = config["pheno"]
    args = [f"--min-samples {p['min_samples']}", f"--genetic-pcs {p['genetic_pcs']}", f"--pcs-from {p['pcs_from']}"]
    for flag, key in (("--covariate", "covariates"), ("--categorical", "categorical"), ("--derived", "derived")):
        if p[key]:
            args.append(flag + " " + " ".join(shlex.quote(c) for c in p[key]))
    if p["centre_age"]:
        args.append("--centre-age")
    if p["inverse_normal"]:
        args.append("--inverse-normal")
    return " ".join(args)


rule prepare_phenotypes:
    input:
        udips=results("embed", "udips.tsv"),
        covariates=INPUTS["covariates"],
        genotypes=genotype_files(INPUTS["genotypes"]),
        qc=results("preprocess", "qc.tsv"),
    output:
        pheno=results("pheno", "pheno.tsv"),
        covar=results("pheno", "covar.tsv"),
        samples=results("pheno", "samples.tsv"),
        exclusions=results("pheno", "exclusions.tsv"),
    params:
        prefix=INPUTS["genotypes"],
        args=pheno_args(),
    log:
        results("logs", "prepare_phenotypes.log"),
    benchmark:
        results("benchmarks", "prepare_phenotypes.tsv")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {SCRIPTS:q}/pheno.py --udips {input.udips:q} --covariates {input.covariates:q} "
        "--genotypes {params.prefix:q} --qc {input.qc:q} {params.args} --threads {threads} "
        "--pheno {output.pheno:q} --covar {output.covar:q} --samples {output.samples:q} "
        "--exclusions {output.exclusions:q} > {log:q} 2>&1"
