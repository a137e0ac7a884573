# The simulated demo cohort (only when simulate.enabled).

if config["simulate"]["enabled"]:

    rule simulate_cohort:
        output:
            images=directory(DEMO["images"]),
            samples=DEMO["samples"],
            covariates=DEMO["covariates"],
            bed=DEMO["bed"],
            bim=DEMO["bim"],
            fam=DEMO["fam"],
            truth_loci=DEMO["truth_loci"],
            truth_regions=DEMO["truth_regions"],
            truth_measures=DEMO["truth_measures"],
            known_loci=DEMO["known_loci"],
            genes=DEMO["genes"],
        params:
            script=script_path("simulate.py"),
            outdir=lambda wildcards, output: os.path.dirname(output.samples),
            settings=stage_settings(SimulateSettings.CONFIG_KEYS),
        log:
            results("logs", "simulate_cohort.log"),
        benchmark:
            results("benchmarks", "simulate_cohort.tsv")
        threads: 8
        resources:
            **resources_from(simulate_request),
        conda:
            "../../envs/imaging.yaml"
        shell:
            "python {params.script:q} --settings {params.settings:q} "
            "--outdir {params.outdir:q} --threads {threads} > {log:q} 2>&1"
