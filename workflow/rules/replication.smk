# Discovery and replication (replication.enabled): split_replication divides the analysed subjects; every GWAS,
# joint test and loci rule then reads the discovery set's tables (gwas_table in common.smk); replication_gwas
# tests each discovery locus's lead variant on every dimension in the replication set with the same engine, and
# replicate_loci says which loci replicated (loci/replication.tsv).

REPLICATION = config["replication"]

if REPLICATION["enabled"]:

    localrules:
        split_replication,
        replicate_loci,

    rule split_replication:
        input:
            pheno=results("pheno", "pheno.tsv"),
            covar=results("pheno", "covar.tsv"),
            # the covariates file's split column (split covariate) or the list of replication IIDs (split file)
            covariates=INPUTS["covariates"] if REPLICATION["split"] == "covariate" else [],
            ids=REPLICATION["file"] if REPLICATION["split"] == "file" else [],
        output:
            split=results("replication", "split.tsv"),
            summary=results("replication", "split_summary.tsv"),
            discovery_pheno=results("replication", "discovery", "pheno.tsv"),
            discovery_covar=results("replication", "discovery", "covar.tsv"),
            replication_pheno=results("replication", "replication", "pheno.tsv"),
            replication_covar=results("replication", "replication", "covar.tsv"),
        params:
            script=script_path("split_replication.py"),
            settings=stage_settings(ReplicationSettings.CONFIG_KEYS),
            out_dir=lambda wildcards, output: os.path.dirname(output.split),
            covariates=lambda wildcards, input: (
                f"--covariates {shlex.quote(input.covariates)}" if REPLICATION["split"] == "covariate" else ""
            ),
        log:
            results("logs", "split_replication.log"),
        benchmark:
            results("benchmarks", "split_replication.tsv")
        threads: 1
        resources:
            **resources_from(tables_request),
        conda:
            "../../envs/genetics.yaml"
        shell:
            "python {params.script:q} --pheno {input.pheno:q} --covar {input.covar:q} {params.covariates} "
            "--settings {params.settings:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"

    if GWAS["engine"] == "regenie":

        use rule regenie_step1 as regenie_step1_replication with:
            input:
                pheno=results("replication", "replication", "pheno.tsv"),
                covar=results("replication", "replication", "covar.tsv"),
                genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
                variants=REGENIE["step1_variants"] or [],
                passing=results("genotypes", "variants_pass.txt"),
            output:
                directory(results("replication", "regenie_step1")),
            log:
                results("logs", "regenie_step1_replication.log"),
            benchmark:
                results("benchmarks", "regenie_step1_replication.tsv")

    rule replication_gwas:
        input:
            pheno=results("replication", "replication", "pheno.tsv"),
            covar=results("replication", "replication", "covar.tsv"),
            loci=results("loci", "loci_merged.tsv"),
            genotypes=[path for chromosome in GWAS_CHROMOSOMES for path in chromosome_files(chromosome)],
            step1=results("replication", "regenie_step1") if GWAS["engine"] == "regenie" else [],
        output:
            directory(results("replication", "gwas")),
        params:
            script=script_path("replication_gwas.py"),
            settings=stage_settings(ShardSettings.CONFIG_KEYS),
            genotypes=" ".join(shlex.quote(f"{c}={chromosome_prefix(c)}") for c in GWAS_CHROMOSOMES),
            pred=lambda wildcards, input: (
                f"--pred {shlex.quote(os.path.join(input.step1, 'step1_pred.list'))}"
                if GWAS["engine"] == "regenie"
                else ""
            ),
        log:
            results("logs", "replication_gwas.log"),
        benchmark:
            results("benchmarks", "replication_gwas.tsv")
        threads: GWAS["threads"]
        resources:
            **resources_from(replication_gwas_request),
            gpu=1 if GWAS["engine"] == "torch" and GWAS["device"] == "cuda" else 0,
        conda:
            GWAS_ENV
        shell:
            "python {params.script:q} --genotypes {params.genotypes} --pheno {input.pheno:q} --covar {input.covar:q} "
            "--loci {input.loci:q} --settings {params.settings:q} --out-dir {output:q} --threads {threads} "
            "{params.pred} --memory-mb {resources.mem_mb} > {log:q} 2>&1"

    rule replicate_loci:
        input:
            loci=results("loci", "loci_merged.tsv"),
            sumstats=results("gwas", "sumstats"),
            replication_gwas=results("replication", "gwas"),
            split_summary=results("replication", "split_summary.tsv"),
            pheno=results("replication", "replication", "pheno.tsv"),
            covar=results("replication", "replication", "covar.tsv"),
            # the analysed samples (the joint test's phenotype correlation is over them)
            genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
        output:
            table=report(results("loci", "replication.tsv"), caption="../report/replication.rst", category="Loci"),
            summary=report(
                results("loci", "replication_summary.tsv"),
                caption="../report/replication.rst",
                category="Loci",
            ),
        params:
            script=script_path("replicate_loci.py"),
            settings=stage_settings(ReplicationSettings.CONFIG_KEYS, JointSettings.CONFIG_KEYS),
            joint=lambda wildcards, input: (
                f"--joint --genotypes {shlex.quote(fileset_prefix(input.genotypes))} "
                f"--pheno {shlex.quote(input.pheno)} --covar {shlex.quote(input.covar)}"
                if JOINT["enabled"]
                else ""
            ),
        log:
            results("logs", "replicate_loci.log"),
        benchmark:
            results("benchmarks", "replicate_loci.tsv")
        threads: 1
        resources:
            **resources_from(tables_request),
        conda:
            "../../envs/genetics.yaml"
        shell:
            "python {params.script:q} --loci {input.loci:q} --sumstats {input.sumstats:q} "
            "--replication-gwas {input.replication_gwas:q} --split-summary {input.split_summary:q} "
            "--settings {params.settings:q} {params.joint} --table {output.table:q} --summary {output.summary:q} "
            "> {log:q} 2>&1"
