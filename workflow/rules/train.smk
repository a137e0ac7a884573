# Train the ViT autoencoder on the preprocessing cache, as a chain of jobs of train.epochs_per_job epochs:
# train_segment jobs up to each segment's last epoch, then train_model, which trains the last epochs and
# writes the model. Each job resumes from checkpoints/last.pt, and stops cleanly before its rule's runtime
# when the next epoch would not fit (in a Slurm job), so a job killed or stopped loses no finished epoch.
# checkpoints/ is not a declared output: Snakemake deletes outputs before a job runs, and a rerun must find
# checkpoints/last.pt to resume from it. The logs are appended to, so that each job's (and retry's) line
# saying where it started and stopped stays. With train.processes > 1, each job runs that many processes, one per
# GPU of its node (torchrun, torch DistributedDataParallel).

TRAIN_PROCESSES = config["train"]["processes"]
# torchrun on Snakemake's interpreter; --standalone: a rendezvous on the job's own node
TRAIN_LAUNCHER = (
    f"-m torch.distributed.run --standalone --nproc-per-node {TRAIN_PROCESSES}" if TRAIN_PROCESSES > 1 else ""
)


rule train_segment:
    input:
        cache=results("preprocess", "cache"),
        qc=results("preprocess", "qc.tsv"),
        splits=results("preprocess", "splits.tsv"),
        brain_mask=results("preprocess", "brain_mask.npy"),
        previous=lambda wildcards: previous_train_segment(int(wildcards.epoch)),
        # the input checks (validate_inputs) pass first; their table's time does not retrain a model
        checks=ancient(results("checks", "inputs.tsv")),
    output:
        record=results("train", "segments", "epoch_{epoch}.json"),
    params:
        script=script_path("train_segment.py"),
        launcher=TRAIN_LAUNCHER,
        settings=stage_settings(TrainSettings.CONFIG_KEYS),
        checkpoints=results("train", "checkpoints"),
    wildcard_constraints:
        epoch=r"\d+",
    log:
        results("logs", "train_segment_{epoch}.log"),
    benchmark:
        results("benchmarks", "train_segment_{epoch}.tsv")
    threads: 8 * TRAIN_PROCESSES
    resources:
        **resources_from(train_request),
        gpu=0 if config["train"]["device"] == "cpu" else TRAIN_PROCESSES,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.launcher} {params.script:q} --cache {input.cache:q} --qc {input.qc:q} --splits {input.splits:q} "
        "--brain-mask {input.brain_mask:q} --settings {params.settings:q} --checkpoints {params.checkpoints:q} "
        "--until {wildcards.epoch} --record {output.record:q} --time-limit-minutes {resources.runtime} "
        "--threads {threads} >> {log:q} 2>&1"


rule train_model:
    input:
        cache=results("preprocess", "cache"),
        qc=results("preprocess", "qc.tsv"),
        splits=results("preprocess", "splits.tsv"),
        brain_mask=results("preprocess", "brain_mask.npy"),
        previous=previous_train_segment(config["train"]["epochs"]),
        checks=ancient(results("checks", "inputs.tsv")),
    output:
        model=results("train", "model.pt"),
        metrics=results("train", "metrics.tsv"),
        loss_plot=report(results("train", "loss.png"), caption="../report/loss.rst", category="Training"),
        reconstruction_plot=report(
            results("train", "reconstruction.png"), caption="../report/reconstruction.rst", category="Training"
        ),
    params:
        script=script_path("train.py"),
        launcher=TRAIN_LAUNCHER,
        settings=stage_settings(TrainSettings.CONFIG_KEYS),
        checkpoints=results("train", "checkpoints"),
    log:
        results("logs", "train_model.log"),
    benchmark:
        results("benchmarks", "train_model.tsv")
    # a fixed request, so that a Slurm job does not ask for every CPU of the submitting host
    threads: 8 * TRAIN_PROCESSES
    resources:
        **resources_from(train_request),
        gpu=0 if config["train"]["device"] == "cpu" else TRAIN_PROCESSES,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.launcher} {params.script:q} --cache {input.cache:q} --qc {input.qc:q} --splits {input.splits:q} "
        "--brain-mask {input.brain_mask:q} --settings {params.settings:q} --checkpoints {params.checkpoints:q} --model {output.model:q} "
        "--metrics {output.metrics:q} --loss-plot {output.loss_plot:q} "
        "--reconstruction-plot {output.reconstruction_plot:q} --time-limit-minutes {resources.runtime} "
        "--threads {threads} >> {log:q} 2>&1"
