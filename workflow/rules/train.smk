# Train the ViT autoencoder on the preprocessing cache.
# checkpoints/ is not a declared output: Snakemake deletes outputs before a job
# runs, and a rerun must find checkpoints/last.pt to resume from it.


rule train_model:
    input:
        cache=results("preprocess", "cache"),
        qc=results("preprocess", "qc.tsv"),
        splits=results("preprocess", "splits.tsv"),
        brain_mask=results("preprocess", "brain_mask.npy"),
    output:
        model=results("train", "model.pt"),
        metrics=results("train", "metrics.tsv"),
        loss_plot=report(results("train", "loss.png"), caption="../report/loss.rst", category="Training"),
        reconstruction_plot=report(
            results("train", "reconstruction.png"), caption="../report/reconstruction.rst", category="Training"
        ),
    params:
        script=script_path("train.py"),
        settings=stage_settings(TrainSettings.CONFIG_KEYS),
        checkpoints=results("train", "checkpoints"),
    log:
        results("logs", "train_model.log"),
    benchmark:
        results("benchmarks", "train_model.tsv")
    # a fixed request, so that a Slurm job does not ask for every CPU of the submitting host
    threads: 8
    resources:
        **resources_from(train_request),
        gpu=0 if config["train"]["device"] == "cpu" else 1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script:q} --cache {input.cache:q} --qc {input.qc:q} --splits {input.splits:q} "
        "--brain-mask {input.brain_mask:q} --settings {params.settings:q} --checkpoints {params.checkpoints:q} --model {output.model:q} "
        "--metrics {output.metrics:q} --loss-plot {output.loss_plot:q} "
        "--reconstruction-plot {output.reconstruction_plot:q} --threads {threads} > {log:q} 2>&1"
