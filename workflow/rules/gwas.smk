# GWAS of every UDIP: one job per shard (chromosome x dimension batch), then one gather.
# Each shard reads its chromosome's analysed samples (prepare_genotypes); regenie runs its step 1 once,
# on the pruned common variants (genotype_qc), before the shards.

GWAS = config["gwas"]
REGENIE = GWAS["regenie"]
GWAS_BATCHES = [str(b) for b in range(GWAS["dimension_batches"])]
GWAS_ENV = "../../envs/regenie.yaml" if GWAS["engine"] == "regenie" else "../../envs/genetics.yaml"


rule regenie_step1:
    input:
        pheno=gwas_table("pheno"),
        covar=gwas_table("covar"),
        genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
        variants=REGENIE["step1_variants"] or [],
        passing=results("genotypes", "variants_pass.txt"),
    output:
        directory(results("gwas", "regenie_step1")),
    params:
        script=script_path("regenie_step1.py"),
        prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
        settings=stage_settings(REGENIE_STEP1_KEYS),
    log:
        results("logs", "regenie_step1.log"),
    benchmark:
        results("benchmarks", "regenie_step1.tsv")
    threads: 8
    resources:
        **resources_from(regenie_step1_request),
    conda:
        "../../envs/regenie.yaml"
    shell:
        "python {params.script:q} --genotypes {params.prefix:q} --pheno {input.pheno:q} "
        "--covar {input.covar:q} --out-dir {output:q} --settings {params.settings:q} --extract {input.passing:q} "
        "--threads {threads} > {log:q} 2>&1"


rule gwas_shard:
    input:
        unpack(gwas_shard_inputs),
    output:
        directory(results("gwas", "shards", "chr{chromosome}", "batch{batch}")),
    params:
        script=script_path("gwas.py"),
        prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
        settings=stage_settings(ShardSettings.CONFIG_KEYS),
        pred=lambda wildcards, input: (
            f"--pred {shlex.quote(os.path.join(input.step1, 'step1_pred.list'))}"
            if GWAS["engine"] == "regenie"
            else ""
        ),
    wildcard_constraints:
        chromosome=r"[^/]+",
        batch=r"\d+",
    log:
        results("logs", "gwas_shard", "chr{chromosome}_batch{batch}.log"),
    benchmark:
        results("benchmarks", "gwas_shard", "chr{chromosome}_batch{batch}.tsv")
    threads: GWAS["threads"]
    resources:
        # a block of the chromosome's variants and the batch's phenotypes; x attempt on each retry
        **resources_from(gwas_shard_request),
        # the torch engine asks for a GPU only when told to use one (auto takes what the node has)
        gpu=1 if GWAS["engine"] == "torch" and GWAS["device"] == "cuda" else 0,
    conda:
        GWAS_ENV
    shell:
        "python {params.script:q} --genotypes {params.prefix:q} --pheno {input.pheno:q} --covar {input.covar:q} "
        "--settings {params.settings:q} --chromosomes {wildcards.chromosome} --dimension-batch {wildcards.batch} "
        "--out-dir {output:q} --threads {threads} {params.pred} --extract {input.variants:q} "
        "--memory-mb {resources.mem_mb} > {log:q} 2>&1"


rule gwas_gather:
    input:
        shards=expand(
            results("gwas", "shards", "chr{chromosome}", "batch{batch}"),
            chromosome=GWAS_CHROMOSOMES,
            batch=GWAS_BATCHES,
        ),
        covar=gwas_table("covar"),
        # the tested variants, which size the request
        variants=results("genotypes", "variants_pass.txt"),
    output:
        sumstats=directory(results("gwas", "sumstats")),
        lambdas=results("gwas", "lambda.tsv"),
        qq=report(results("gwas", "qq.png"), caption="../report/qq.rst", category="GWAS"),
    params:
        script=script_path("gwas_gather.py"),
        # the metadata's study description and assembly (a function: its "{dimension}" is no wildcard)
        settings=lambda wildcards: stage_settings(CATALOG_KEYS),
    log:
        results("logs", "gwas_gather.log"),
    benchmark:
        results("benchmarks", "gwas_gather.tsv")
    threads: 2
    resources:
        # bounded by a chunk per dimension; time by the rows written
        **resources_from(gather_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --shards {input.shards:q} --covar {input.covar:q} --settings {params.settings:q} "
        "--out-dir {output.sumstats:q} --lambda {output.lambdas:q} --qq {output.qq:q} --threads {threads} > {log:q} 2>&1"
