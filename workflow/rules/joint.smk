# Joint association of every variant with all dimensions (joint_test), from the gathered GWAS-SSF files
# whatever the engine, and its calibration (calibrate_joint): one GWAS of the subjects permuted against
# their genotypes by the in-process engine, which computes the joint tests block by block (no files),
# failing with the reason in its log when λGC of either joint test is above joint.null_lambda_limit.
# The permuted GWAS runs on the pruned common variants (genotype_qc): λGC needs nearly independent
# variants, not all of them, and the check then costs a small share of the GWAS.

JOINT = config["joint"]

if JOINT["enabled"]:

    rule joint_test:
        input:
            sumstats=results("gwas", "sumstats"),
            pheno=gwas_table("pheno"),
            covar=gwas_table("covar"),
            # the analysed samples (any fileset of them: the pruned one is the smallest)
            genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
            # the tested variants, which size the request
            variants=results("genotypes", "variants_pass.txt"),
        output:
            joint=results("gwas", "joint", "joint.tsv.gz"),
            lambdas=results("gwas", "joint", "lambda.tsv"),
            qq=report(results("gwas", "joint", "qq.png"), caption="../report/joint_qq.rst", category="GWAS"),
        params:
            script=script_path("joint.py"),
            prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
            settings=stage_settings(JointSettings.CONFIG_KEYS),
        log:
            results("logs", "joint_test.log"),
        benchmark:
            results("benchmarks", "joint_test.tsv")
        threads: 1
        resources:
            # chunk_size variants x dimensions x 40 bytes, plus the table of min-P's null
            **resources_from(joint_request),
        conda:
            "../../envs/genetics.yaml"
        shell:
            "python {params.script:q} --sumstats {input.sumstats:q} --genotypes {params.prefix:q} "
            "--pheno {input.pheno:q} --covar {input.covar:q} --joint {output.joint:q} --lambda {output.lambdas:q} "
            "--qq {output.qq:q} --settings {params.settings:q} > {log:q} 2>&1"

    if JOINT["calibrate"]:

        rule calibrate_joint:
            input:
                pheno=gwas_table("pheno"),
                covar=gwas_table("covar"),
                # λGC wants nearly independent variants: the pruned common ones, not every passing one
                genotypes=multiext(PRUNED, ".pgen", ".pvar", ".psam"),
                variants=results("genotypes", "variants_pass.txt"),
            output:
                null=results("gwas", "joint", "null.tsv"),
                qq=report(results("gwas", "joint", "null_qq.png"), caption="../report/joint_null.rst", category="GWAS"),
            params:
                script=script_path("joint_null.py"),
                prefix=lambda wildcards, input: fileset_prefix(input.genotypes),
                settings=stage_settings(JointSettings.CONFIG_KEYS, InProcessGwasSettings.CONFIG_KEYS),
            log:
                results("logs", "calibrate_joint.log"),
            benchmark:
                results("benchmarks", "calibrate_joint.tsv")
            threads: GWAS["threads"]
            resources:
                # the in-process engine streams blocks: the phenotypes and one block of genotypes
                **resources_from(calibrate_joint_request),
                gpu=1 if GWAS["device"] == "cuda" else 0,
            conda:
                "../../envs/genetics.yaml"
            shell:
                "python {params.script:q} --genotypes {params.prefix:q} --pheno {input.pheno:q} "
                "--covar {input.covar:q} --null {output.null:q} --qq {output.qq:q} --settings {params.settings:q} "
                "--extract {input.variants:q} --threads {threads} > {log:q} 2>&1"
