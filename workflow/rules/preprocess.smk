# Image checks, z-scoring, padding and the memory-mappable training cache.


rule preprocess_images:
    input:
        samples=INPUTS["samples"],
        # the demo's images are a folder output of simulate_cohort; real images are listed in the samples table
        images=[DEMO["images"]] if config["simulate"]["enabled"] else [],
    output:
        qc=results("preprocess", "qc.tsv"),
        cache=directory(results("preprocess", "cache")),
        brain_mask=results("preprocess", "brain_mask.npy"),
        splits=results("preprocess", "splits.tsv"),
    params:
        script=script_path("preprocess.py"),
        settings=stage_settings(PreprocessSettings.CONFIG_KEYS),
    log:
        results("logs", "preprocess_images.log"),
    benchmark:
        results("benchmarks", "preprocess_images.tsv")
    threads: 16
    resources:
        **resources_from(preprocess_request),
    conda:
        "../../envs/imaging.yaml"
    shell:
        "python {params.script:q} --samples {input.samples:q} --qc {output.qc:q} --cache {output.cache:q} "
        "--brain-mask {output.brain_mask:q} --splits {output.splits:q} --settings {params.settings:q} --threads {threads} "
        "> {log:q} 2>&1"
