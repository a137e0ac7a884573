#!/usr/bin/env python
"""Peak memory of the stages that read GWAS-SSF files, against variants x dimensions, before and after streaming.

Writes synthetic summary statistics (one shard per chromosome, ``--dims`` dimensions) at each size of
``--variants``, then runs each stage in a fresh subprocess and reads its peak resident memory
(``VmHWM`` of /proc/self/status): the gather (λGC, QQ, BGZF files), the joint test over the
gathered files, and the loci scan over them. With ``--before GIT_REF`` the same stages run again on that
commit's ``vitudip`` (extracted with ``git archive`` into a temporary folder), on the same files, in the
same run. Prints each stage's peak per size and the fitted growth in MB per million variant-dimensions.
``joint_summary`` is the joint step's λGC, counts and QQ sketches of a written joint file (two of the
dimensions' joint test): it grows with variants alone.

    PYTHONPATH=$PWD python bench/sumstats_memory.py --variants 100000 200000 400000 --dims 8 --before main
    PYTHONPATH=$PWD python bench/sumstats_memory.py --variants 500000 1000000 2000000 --dims 2 --before main \
        --stages loci_scan joint_summary
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.sumstats import SumstatsWriter, variant_texts

ROOT = Path(__file__).resolve().parents[1]

#: One stage, run in a subprocess: reads argv[1] (the data folder) and prints its peak RSS in MB.
STAGES = {
    "gwas_gather": """
        from vitudip.genetics.gather import gather_sumstats
        shards = sorted(str(p) for p in (data / "shards").iterdir())
        gather_sumstats(shards, out / "sumstats", out / "lambda.tsv", out / "qq.png", threads=1)
    """,
    "joint_test": """
        import numpy as np
        from vitudip.genetics.joint_stats import JointTest
        from vitudip.genetics.joint_sumstats import joint_from_sumstats
        files = sorted((data / "gathered").glob("*.tsv.gz"))
        names = [f.name[:-7] for f in files]
        test = JointTest.from_correlation(np.eye(len(names)), names)
        joint_from_sumstats(files, test, out / "joint.tsv.gz", chunk_size=50_000, progress=False)
    """,
    "loci_scan": """
        from vitudip.loci.scan import scan_sumstats, sumstats_files
        scan_sumstats(sumstats_files(data / "gathered"), 0.05, threads=1, progress=False)
    """,
    # λGC, counts and QQ sketches of a written joint file: read whole before, in chunks after
    "joint_summary": """
        import inspect
        import numpy as np
        from vitudip.genetics import joint_stage
        from vitudip.genetics.joint_stats import JointTest
        test = JointTest.from_correlation(np.eye(2), ["a", "b"])
        if "summary" in inspect.signature(joint_stage.lambda_table).parameters:
            from vitudip.genetics.joint_table import JointSummary
            joint_stage.lambda_table(joint_stage.summarise_joint(JointSummary.of_file(data / "joint.tsv.gz")), test)
        else:
            joint_stage.summarise_joint(data / "joint.tsv.gz")
            joint_stage.lambda_table(data / "joint.tsv.gz", test)
    """,
}

#: VmHWM, not ru_maxrss: Linux keeps a process's ru_maxrss across exec, so a child would report the
#: parent's peak whenever that is larger; VmHWM belongs to the new address space.
_RUNNER = """
import re, sys, tempfile
from pathlib import Path
data = Path(sys.argv[1])
with tempfile.TemporaryDirectory(dir=data) as folder:
    out = Path(folder)
{body}
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024)
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    parser.add_argument("--dims", type=int, default=8)
    parser.add_argument("--chromosomes", type=int, default=2, help="shards (one chromosome each)")
    parser.add_argument("--before", help="git ref whose vitudip runs the same stages (e.g. main)")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    return parser.parse_args(argv)


def write_study(folder: Path, n_variants: int, dims: int, chromosomes: int, rng: np.random.Generator) -> None:
    """One shard per chromosome with ``dims`` GWAS-SSF files, and the same files gathered (for joint and loci)."""
    per = n_variants // chromosomes
    for c in range(1, chromosomes + 1):
        variants = pd.DataFrame({"chromosome": c, "base_pair_location": np.arange(per) * 37 + 1000,
                                 "effect_allele": "A", "other_allele": "G",
                                 "variant_id": [f"rs{c}{i}" for i in range(per)]})
        texts = variant_texts(variants)
        for d in range(dims):
            p = rng.uniform(size=per)
            p[rng.integers(0, per, per // 1000)] = np.nan  # a few untested variants, as the engines leave them
            beta = rng.normal(0, 0.01, per)
            with SumstatsWriter(folder / "shards" / f"chr{c}" / f"udip_{d:03d}.tsv.gz") as writer:
                writer.write_statistics(texts, beta, np.full(per, 0.01), np.full(per, 0.3), p, 40_000)


def run_stage(name: str, data: Path, pythonpath: Path) -> float:
    """Peak RSS (MB) of one stage in a fresh interpreter on ``pythonpath``'s vitudip."""
    code = _RUNNER.format(body=textwrap.indent(textwrap.dedent(STAGES[name]), "    "))
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    # run from the code's folder: ``python -c`` puts the working folder first on sys.path
    run = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, env=env,
                         cwd=pythonpath)
    if run.returncode:
        raise RuntimeError(f"{name} failed on {pythonpath}:\n{run.stderr[-3000:]}")
    return float(run.stdout.split()[-1])


def growth(sizes: list[float], peaks: list[float]) -> float:
    """Least-squares slope of peak MB per million variant-dimensions."""
    return float(np.polyfit(np.asarray(sizes) / 1e6, peaks, 1)[0])


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        codes = {"after": ROOT}
        if args.before:
            old = Path(tmp) / "before"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "vitudip"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            codes = {"before": old, **codes}
        peaks: dict[tuple[str, str], list[float]] = {}
        sizes = []
        for n in args.variants:
            data = Path(tmp) / f"v{n}"
            write_study(data, n, args.dims, args.chromosomes, rng)
            # the joint test and the loci scan read gathered files, the joint summary a joint file: written once
            # with the current code
            subprocess.run([sys.executable, "-c", textwrap.dedent("""
                import sys
                from pathlib import Path
                import numpy as np
                from vitudip.genetics.gather import gather_sumstats
                from vitudip.genetics.joint_stats import JointTest
                from vitudip.genetics.joint_sumstats import joint_from_sumstats
                data = Path(sys.argv[1])
                gather_sumstats(sorted(str(p) for p in (data / "shards").iterdir()), data / "gathered",
                                data / "lambda.tsv", data / "qq.png")
                files = sorted((data / "gathered").glob("*.tsv.gz"))[:2]
                joint_from_sumstats(files, JointTest.from_correlation(np.eye(2), [f.name[:-7] for f in files]),
                                    data / "joint.tsv.gz", progress=False)
            """), str(data)], check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
            sizes.append(n * args.dims)
            for stage in args.stages:
                for code, path in codes.items():
                    peak = run_stage(stage, data, path)
                    peaks.setdefault((stage, code), []).append(peak)
                    print(f"{stage:12s} {code:6s} {n:>9,d} variants x {args.dims} dims: peak {peak:8.1f} MB",
                          flush=True)
    print(f"\npeak RSS growth, MB per million variant-dimensions ({', '.join(f'{s / 1e6:g} M' for s in sizes)}):")
    for stage in args.stages:
        line = "  ".join(f"{code} {growth(sizes, peaks[(stage, code)]):7.1f}" for code in codes)
        print(f"  {stage:12s} {line}")
    print(json.dumps({f"{s}/{c}": v for (s, c), v in peaks.items()}))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
