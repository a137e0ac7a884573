# Image checks, z-scoring, padding and the memory-mappable training cache.


def preprocess_args():
    """Command-line options of scripts/preprocess.py from the config's preprocess section."""
    p = config["preprocess"]
    s = p["splits"]
    args = [
        f"--input-voxel-mm {p['input_voxel_mm']}",
        f"--downsample {p['downsample']}",
        "--pad-to " + " ".join(str(n) for n in p["pad_to"]),
        f"--on-bad-image {p['on_bad_image']}",
        f"--split-fractions {s['train']} {s['val']} {s['test']}",
        f"--seed {config['seed']}",
    ]
    if not p["check_affine"]:
        args.append("--no-affine-check")
    if s["file"]:
        args.append(f"--splits-file {shlex.quote(s['file'])}")
    return " ".join(args)


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
        args=preprocess_args(),
    log:
        results("logs", "preprocess_images.log"),
    benchmark:
        results("benchmarks", "preprocess_images.tsv")
    threads: 16
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "python {SCRIPTS:q}/preprocess.py --samples {input.samples:q} --qc {output.qc:q} --cache {output.cache:q} "
        "--brain-mask {output.brain_mask:q} --splits {output.splits:q} {params.args} --threads {threads} "
        "> {log:q} 2>&1"
