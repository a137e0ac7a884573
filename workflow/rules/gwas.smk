# GWAS of every UDIP: one job per chromosome shard, then one gather.

GWAS = config["gwas"]
# the simulated cohort has its own chromosomes; real data uses gwas.chromosomes
GWAS_CHROMOSOMES = [
    str(c) for c in (config["simulate"]["genotypes"]["chromosomes"] if config["simulate"]["enabled"] else GWAS["chromosomes"])
]


rule gwas_shard:
    input:
        pheno=results("pheno", "pheno.tsv"),
        covar=results("pheno", "covar.tsv"),
        genotypes=genotype_files(INPUTS["genotypes"]),
    output:
        directory(results("gwas", "shards", "chr{chromosome}")),
    params:
        prefix=INPUTS["genotypes"],
        engine=GWAS["engine"],
        block_size=GWAS["block_size"],
        device=GWAS["device"],
    log:
        results("logs", "gwas_shard", "chr{chromosome}.log"),
    benchmark:
        results("benchmarks", "gwas_shard", "chr{chromosome}.tsv")
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {SCRIPTS:q}/gwas.py --engine {params.engine} --genotypes {params.prefix:q} --pheno {input.pheno:q} "
        "--covar {input.covar:q} --chromosomes {wildcards.chromosome} --out-dir {output:q} --threads {threads} "
        "--block-size {params.block_size} --device {params.device} > {log:q} 2>&1"


rule gwas_gather:
    input:
        expand(results("gwas", "shards", "chr{chromosome}"), chromosome=GWAS_CHROMOSOMES),
    output:
        sumstats=directory(results("gwas", "sumstats")),
        lambdas=results("gwas", "lambda.tsv"),
        qq=report(results("gwas", "qq.png"), caption="../report/qq.rst", category="GWAS"),
    log:
        results("logs", "gwas_gather.log"),
    benchmark:
        results("benchmarks", "gwas_gather.tsv")
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {SCRIPTS:q}/gwas_gather.py --shards {input:q} --out-dir {output.sumstats:q} "
        "--lambda {output.lambdas:q} --qq {output.qq:q} > {log:q} 2>&1"
