# FUMA-style genomic risk loci of every UDIP dimension, merged across dimensions, named by genes and
# marked novel against known loci; the Manhattan plot and one regional plot per merged locus.
# With joint.enabled the joint test's p is clumped as one more test, `joint`, and every merged locus says
# which tests reached it. LD comes from the analysed samples' genotypes, per chromosome, unless
# loci.ld_reference names a PLINK 1 reference panel.

LOCI = config["loci"]
LD_FILES = (
    multiext(LOCI["ld_reference"], ".bed", ".bim", ".fam")
    if LOCI["ld_reference"]
    else [path for chromosome in GWAS_CHROMOSOMES for path in chromosome_files(chromosome)]
)
# optional tables, with the script flag each one goes to
LOCI_TABLES = {
    name: path
    for name, path in (
        ("known_loci", INPUTS.get("known_loci")),
        ("genes", INPUTS.get("genes")),
        ("truth", DEMO["truth_loci"] if config["simulate"]["enabled"] else None),
    )
    if path
}
# the joint test's loci are clumped like a dimension's, and only once its null is checked (calibrate_joint)
LOCI_JOINT = {name: path for name, path in joint_outputs().items() if name in ("joint", "joint_null")}
LOCI_TRUTH = (
    {"truth_recovery": results("loci", "truth_recovery.tsv"), "truth_summary": results("loci", "truth_summary.tsv")}
    if "truth" in LOCI_TABLES
    else {}
)


rule find_loci:
    input:
        **LOCI_TABLES,
        **LOCI_JOINT,
        sumstats=results("gwas", "sumstats"),
        pheno=gwas_table("pheno"),
        ld=LD_FILES,
        # the tested variants, which size the request
        variants=results("genotypes", "variants_pass.txt"),
    output:
        **LOCI_TRUTH,
        ind_sig_snps=results("loci", "IndSigSNPs.tsv"),
        lead_snps=results("loci", "leadSNPs.tsv"),
        genomic_risk_loci=results("loci", "GenomicRiskLoci.tsv"),
        loci_merged=report(results("loci", "loci_merged.tsv"), caption="../report/loci_merged.rst", category="Loci"),
        thresholds=results("loci", "thresholds.tsv"),
        manhattan=report(results("loci", "manhattan.png"), caption="../report/manhattan.rst", category="Loci"),
        regional=report(
            directory(results("loci", "regional")),
            patterns=["{name}.png"],
            caption="../report/regional.rst",
            category="Loci",
            subcategory="Regional plots",
        ),
    params:
        script=script_path("loci.py"),
        # the LD filesets: the analysed samples' chromosomes, or loci.ld_reference
        ld=lambda wildcards, input: sorted({os.path.splitext(path)[0] for path in input.ld}),
        out_dir=lambda wildcards, output: os.path.dirname(output.loci_merged),
        settings=stage_settings(LociSettings.CONFIG_KEYS),
        tables=lambda wildcards, input: " ".join(
            f"--{name.replace('_', '-')} {shlex.quote(getattr(input, name))}" for name in LOCI_TABLES
        ),
        joint=lambda wildcards, input: f"--joint {shlex.quote(input.joint)}" if "joint" in LOCI_JOINT else "",
    log:
        results("logs", "find_loci.log"),
    benchmark:
        results("benchmarks", "find_loci.tsv")
    threads: 2
    resources:
        **resources_from(loci_request),
    conda:
        "../../envs/genetics.yaml"
    shell:
        "python {params.script:q} --sumstats {input.sumstats:q} --ld-genotypes {params.ld:q} --pheno {input.pheno:q} "
        "{params.tables} {params.joint} --settings {params.settings:q} --out-dir {params.out_dir:q} --threads {threads} > {log:q} 2>&1"
