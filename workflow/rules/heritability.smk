# SNP heritability of every dimension (and of the PCA baseline's beside it) and genetic correlation of every pair
# (estimate_heritability): randomized Haseman–Elston regression, one pass over the genotype blocks for all
# phenotypes at once, on every analysed subject's phenotype and covariate tables (analysed_tables: with replication
# on, the discovery and replication sets together, as h² is the trait's and more subjects narrow its SE) and the
# pruned common variants (genotype_qc), without the samples the genotype QC marks related.

if config["heritability"]["enabled"]:

    rule estimate_heritability:
        input:
            **analysed_tables(),
            **heritability_baseline(),
            genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
            sample_qc=results("genotypes", "sample_qc.tsv"),
        output:
            heritability=report(
                results("gwas", "heritability.tsv"), caption="../report/heritability.rst", category="Heritability"
            ),
            correlation=results("gwas", "genetic_correlation.tsv"),
            summary=report(
                results("gwas", "heritability_summary.tsv"),
                caption="../report/heritability_summary.rst",
                category="Heritability",
            ),
            figure=report(
                results("gwas", "heritability.png"),
                caption="../report/heritability_figure.rst",
                category="Heritability",
            ),
        params:
            script=script_path("heritability.py"),
            prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
            settings=stage_settings(HeritabilitySettings.CONFIG_KEYS),
            method=config["embed"]["method"],
            baseline=lambda wildcards, input: (
                f"--baseline {shlex.quote(input.baseline)}" if "baseline" in input.keys() else ""
            ),
        log:
            results("logs", "estimate_heritability.log"),
        benchmark:
            results("benchmarks", "estimate_heritability.tsv")
        threads: GWAS["threads"]
        resources:
            # a block of genotypes, the phenotypes, and n x random vectors per jackknife block
            **resources_from(heritability_request),
            gpu=1 if GWAS["device"] == "cuda" else 0,
        conda:
            "../../envs/genetics.yaml"
        shell:
            "python {params.script:q} --genotypes {params.prefix:q} --pheno {input.pheno:q} --covar {input.covar:q} "
            "--method {params.method} {params.baseline} --sample-qc {input.sample_qc:q} --settings {params.settings:q} "
            "--heritability {output.heritability:q} --correlation {output.correlation:q} "
            "--summary {output.summary:q} --figure {output.figure:q} --threads {threads} > {log:q} 2>&1"
