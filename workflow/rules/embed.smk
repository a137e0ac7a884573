# Endophenotypes per subject: ViT-UDIPs (or the PCA baseline), and on the demo how much truth each carries.

EMBED = config["embed"]


EMBED_PARAMS = dict(
    script=script_path("embed.py"),
    # the model only for vit
    model=lambda wildcards, input: f"--model {shlex.quote(input.model)}" if "model" in input.keys() else "",
    settings=stage_settings(EmbedSettings.CONFIG_KEYS),
)
EMBED_SHELL = (
    "python {params.script:q} --method {params.method} {params.model} --cache {input.cache:q} "
    "--qc {input.qc:q} --splits {input.splits:q} --brain-mask {input.brain_mask:q} --settings {params.settings:q} "
    "--udips {output.udips:q} --recon-mse {output.recon_mse:q} "
    "--spectrum {output.spectrum:q} --health {output.health:q} --threads {threads} > {log:q} 2>&1"
)


rule embed_udips:
    input:
        **embed_inputs(EMBED["method"]),
    output:
        udips=results("embed", "udips.tsv"),
        recon_mse=results("embed", "recon_mse.tsv"),
        spectrum=results("embed", "spectrum.tsv"),
        health=results("embed", "health.tsv"),
    params:
        **EMBED_PARAMS,
        method=EMBED["method"],
    log:
        results("logs", "embed_udips.log"),
    benchmark:
        results("benchmarks", "embed_udips.tsv")
    threads: 8
    resources:
        **resources_from(embed_request),
        # the encoder runs where train.device says (embed has no device key)
        gpu=1 if EMBED["method"] == "vit" and config["train"]["device"] != "cpu" else 0,
    conda:
        "../../envs/torch.yaml"
    shell:
        EMBED_SHELL


if EMBED["method"] == "vit" and EMBED["pca_baseline"]:

    rule embed_pca_baseline:
        input:
            **embed_inputs("pca"),
        output:
            udips=results("embed", "pca", "udips.tsv"),
            recon_mse=results("embed", "pca", "recon_mse.tsv"),
            spectrum=results("embed", "pca", "spectrum.tsv"),
            health=results("embed", "pca", "health.tsv"),
        params:
            **EMBED_PARAMS,
            method="pca",
        log:
            results("logs", "embed_pca_baseline.log"),
        benchmark:
            results("benchmarks", "embed_pca_baseline.tsv")
        threads: 8
        resources:
            **resources_from(embed_request),
        conda:
            "../../envs/torch.yaml"
        shell:
            EMBED_SHELL


if config["simulate"]["enabled"]:

    # correlations of a few tables: on the submitting host
    localrules:
        embedding_vs_truth,

    rule embedding_vs_truth:
        input:
            measures=DEMO["truth_measures"],
            truth_loci=DEMO["truth_loci"],
            udips=list(compared_embeddings().values()),
        output:
            report(
                results("embed", "embedding_vs_truth.tsv"),
                caption="../report/embedding_vs_truth.rst",
                category="Embedding",
            ),
        params:
            script=script_path("embedding_vs_truth.py"),
            embeddings=" ".join(f"--embedding {m} {shlex.quote(p)}" for m, p in compared_embeddings().items()),
        log:
            results("logs", "embedding_vs_truth.log"),
        benchmark:
            results("benchmarks", "embedding_vs_truth.tsv")
        threads: 1
        resources:
            **resources_from(tables_request),
        conda:
            "../../envs/torch.yaml"
        shell:
            "python {params.script:q} --measures {input.measures:q} "
            "--truth-loci {input.truth_loci:q} {params.embeddings} --out {output:q} > {log:q} 2>&1"


localrules:
    plot_embedding_spectrum,


rule plot_embedding_spectrum:
    input:
        **embedding_health_inputs(),
    output:
        report(results("embed", "scree.png"), caption="../report/scree.rst", category="Embedding"),
    params:
        script=script_path("embedding_spectrum.py"),
        embeddings=lambda wildcards, input: " ".join(
            f"--embedding {name} {shlex.quote(input[name + '_spectrum'])} {shlex.quote(input[name + '_health'])}"
            for name in compared_embeddings()
        ),
    log:
        results("logs", "plot_embedding_spectrum.log"),
    benchmark:
        results("benchmarks", "plot_embedding_spectrum.tsv")
    threads: 1
    resources:
        **resources_from(tables_request),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script:q} {params.embeddings} --out {output:q} > {log:q} 2>&1"
