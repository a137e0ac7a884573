# The study summary: each merged locus, the dimensions reaching it and their top PerDI regions, and the
# locus direction's own; on the simulated demo, each planted effect scored end to end (SNP found, PerDI top
# regions = planted region).
# Only with ViT-UDIPs: PerDI needs the decoder. Cheap, so it runs on the submitting host.

if EMBED["method"] == "vit":

    localrules:
        summarise_study,

    # the demo's truth scoring: its inputs, and its outputs
    DEMO_TRUTH = config["simulate"]["enabled"]
    REPORT_TRUTH_INPUTS = (
        {"truth_recovery": results("loci", "truth_recovery.tsv"), "truth_regions": DEMO["truth_regions"]}
        if DEMO_TRUTH
        else {}
    )
    REPORT_TRUTH_OUTPUTS = (
        {
            "truth": report(
                results("report", "truth.tsv"), caption="../report/truth.rst", category="Simulated truth"
            ),
            "truth_summary": report(
                results("report", "truth_summary.tsv"),
                caption="../report/truth_summary.rst",
                category="Simulated truth",
            ),
        }
        if DEMO_TRUTH
        else {}
    )
    # which loci replicated (replication.enabled), for summary.tsv and the truth tables
    REPORT_REPLICATION_INPUTS = {k: v for k, v in replication_outputs().items() if k == "replication"}

    rule summarise_study:
        input:
            **REPORT_TRUTH_INPUTS,
            **({"heritability": results("gwas", "heritability.tsv")} if config["heritability"]["enabled"] else {}),
            **REPORT_REPLICATION_INPUTS,
            loci=results("loci", "loci_merged.tsv"),
            regions=results("perdi", "regions.tsv"),
            locus_regions=results("perdi", "locus_regions.tsv"),
        output:
            **REPORT_TRUTH_OUTPUTS,
            summary=report(results("report", "summary.tsv"), caption="../report/summary.rst", category="Summary"),
        params:
            script=script_path("report.py"),
            truth=lambda wildcards, input, output: (
                f"--truth-recovery {shlex.quote(input.truth_recovery)} "
                f"--truth-regions {shlex.quote(input.truth_regions)} --truth {shlex.quote(output.truth)} "
                f"--truth-summary {shlex.quote(output.truth_summary)}"
                if DEMO_TRUTH
                else ""
            ),
            heritability=lambda wildcards, input: (
                f"--heritability {shlex.quote(input.heritability)}" if "heritability" in input.keys() else ""
            ),
            replication=lambda wildcards, input: (
                f"--replication {shlex.quote(input.replication)}" if "replication" in input.keys() else ""
            ),
        log:
            results("logs", "summarise_study.log"),
        benchmark:
            results("benchmarks", "summarise_study.tsv")
        threads: 1
        resources:
            **resources_from(tables_request),
        conda:
            "../../envs/genetics.yaml"
        shell:
            "python {params.script:q} --loci {input.loci:q} --regions {input.regions:q} "
            "--locus-regions {input.locus_regions:q} {params.heritability} --summary {output.summary:q} {params.truth} "
            "{params.replication} "
            "> {log:q} 2>&1"
