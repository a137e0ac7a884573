# PerDI brain maps: perturb each UDIP dimension (or only those with genomic risk loci) and each locus's
# direction (its lead variant's betas over every dimension, from the gathered summary statistics), decode,
# map the voxel-wise paired t and mean change on the input grid, rank Harvard-Oxford regions
# (on perdi.rank_by's map), draw panels.
# perdi/atlas/ is not a declared output: it caches the atlas on the input grid across reruns.
# The merged loci table is always read: every locus gets a direction, and with perdi.dimensions loci or
# leads it also says which dimensions to map (and show in the overview).

PERDI = config["perdi"]


rule perdi_maps:
    input:
        model=results("train", "model.pt"),
        udips=results("embed", "udips.tsv"),
        cache=results("preprocess", "cache"),
        qc=results("preprocess", "qc.tsv"),
        brain_mask=results("preprocess", "brain_mask.npy"),
        loci=results("loci", "loci_merged.tsv"),
        sumstats=results("gwas", "sumstats"),
    output:
        maps=directory(results("perdi", "maps")),
        panels=report(
            directory(results("perdi", "panels")),
            patterns=["{name}.png"],
            caption="../report/perdi_panels.rst",
            category="PerDI",
            subcategory="Panels",
        ),
        regions=report(results("perdi", "regions.tsv"), caption="../report/perdi_regions.rst", category="PerDI"),
        overview=report(results("perdi", "overview.png"), caption="../report/perdi.rst", category="PerDI"),
        locus_regions=report(
            results("perdi", "locus_regions.tsv"), caption="../report/perdi_locus_regions.rst", category="PerDI"
        ),
        locus_directions=results("perdi", "locus_directions.tsv"),
    params:
        script=script_path("perdi.py"),
        settings=stage_settings(PerdiSettings.CONFIG_KEYS),
        atlas_cache=results("perdi", "atlas"),
    log:
        results("logs", "perdi_maps.log"),
    benchmark:
        results("benchmarks", "perdi_maps.tsv")
    threads: 4
    resources:
        **resources_from(perdi_request),
        gpu=0 if PERDI["device"] == "cpu" else 1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script:q} --model {input.model:q} --udips {input.udips:q} --cache {input.cache:q} "
        "--qc {input.qc:q} --brain-mask {input.brain_mask:q} --loci {input.loci:q} --sumstats {input.sumstats:q} "
        "--settings {params.settings:q} --atlas-cache {params.atlas_cache:q} --maps {output.maps:q} "
        "--regions {output.regions:q} --panels {output.panels:q} --overview {output.overview:q} "
        "--locus-regions {output.locus_regions:q} --locus-directions {output.locus_directions:q} --threads {threads} "
        "> {log:q} 2>&1"
