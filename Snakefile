# ViT-UDIP: ViT autoencoder endophenotypes of T1 brain MRI and their genetics.
# Stages live in workflow/rules/<stage>.smk; the config is checked against
# vitudip/schemas/config.schema.yaml before any rule runs (workflow/rules/common.smk).

from snakemake.utils import min_version

# 9.17: earlier 9.x releases run local jobs past --cores (pyproject.toml)
min_version("9.17")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/genotype_qc.smk"
include: "workflow/rules/pheno.smk"
include: "workflow/rules/gwas.smk"
include: "workflow/rules/joint.smk"
include: "workflow/rules/heritability.smk"
include: "workflow/rules/loci.smk"
include: "workflow/rules/replication.smk"
include: "workflow/rules/perdi.smk"
include: "workflow/rules/report.smk"


# a second training run compared with the first: off unless stability.enabled (it doubles training and the GWAS)
if config["stability"]["enabled"]:

    include: "workflow/rules/stability.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
