"""Each job's memory and time follow its data (vitudip/resources.py), and every job of the tiny study stays
within the memory its rule declares."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from vitudip import resources as cost
from vitudip.embed.pca import BATCH_SUBJECTS, embed_pca
from vitudip.genetics.prepare import PREPARE_BLOCK
from vitudip.train.trainer import MODE_FIT_SUBJECTS

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _job_block(rule: str, benchmark: str, mem_mb: int, local: bool = False) -> str:
    return (f"[Sun Dec  6 06:16:36 2026]\n{'localrule' if local else 'rule'} {rule}:\n"
            f"    input: a.tsv\n    output: b.tsv\n    jobid: 3\n    benchmark: {benchmark}\n"
            f"    threads: 2\n    resources: tmpdir=/tmp, mem_mb={mem_mb}, mem_mib=953, runtime=10\n"
            f"Shell command: python x.py > log 2>&1\n")


def _benchmark(path: Path, max_rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + f"1.0\t0:00:01\t{max_rss}\t2000\t50\t60\t0\t0\t10\t0.5\n")


def test_the_checker_finds_a_job_above_its_declared_memory(tmp_path):
    log = (_job_block("gwas_shard", "bench/gwas_shard/chr1_batch0.tsv", 1000)
           + _job_block("find_loci", "bench/find_loci.tsv", 1000, local=True)
           # a retried job: the last block is the attempt that wrote the benchmark
           + _job_block("find_loci", "bench/find_loci.tsv", 2000, local=True) + "Finished jobid: 3\n")
    _benchmark(tmp_path / "bench/gwas_shard/chr1_batch0.tsv", 1500.5)
    _benchmark(tmp_path / "bench/find_loci.tsv", 1500.5)
    jobs = cost.job_memory(log, tmp_path)
    assert [(j.rule, j.mem_mb, j.max_rss) for j in jobs] == [("find_loci", 2000, 1500.5),
                                                              ("gwas_shard", 1000, 1500.5)]
    assert [j.rule for j in jobs if j.max_rss > j.mem_mb] == ["gwas_shard"]


def test_a_benchmark_file_without_max_rss_is_named(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text(BENCH_HEADER + "1.0\t0:00:01\tNA\t2000\t50\t60\t0\t0\t10\t0.5\n")
    with pytest.raises(ValueError, match=r"b\.tsv, line 2: max_rss 'NA'"):
        cost.read_max_rss(path)


@pytest.mark.slow
def test_every_job_of_the_tiny_study_fits_its_declared_memory(tiny_run):
    assert tiny_run.run.returncode == 0, tiny_run.output[-3000:]
    jobs = cost.job_memory(tiny_run.output, tiny_run.workdir)
    benchmarks = sorted(p for p in (tiny_run.results / "benchmarks").rglob("*.tsv"))
    # every job that wrote a benchmark declared its memory (all rules but `all` have one)
    assert len(jobs) == len(benchmarks) and len(jobs) >= 20, [j.benchmark for j in jobs]
    over = [f"{j.rule} ({j.benchmark}): max_rss {j.max_rss:.0f} MB > mem_mb {j.mem_mb}"
            for j in jobs if j.max_rss > j.mem_mb]
    assert not over, over


def test_a_retry_asks_for_more_within_the_floors_and_caps():
    first = cost.Request(mem_mb=3000, runtime=50)
    assert first.retried(1) == first and first.retried(3) == cost.Request(9000, 150)
    assert cost.Request(10, 1).retried(1) == cost.Request(cost.FLOOR_MB, cost.FLOOR_MIN)
    assert cost.Request(900_000, 6000).retried(2) == cost.Request(cost.CAP_MB, cost.CAP_MIN)


def test_requests_grow_with_subjects_variants_and_dimensions():
    small = cost.gwas("torch", 1000, 10_000, 16, 4096, 2)
    assert cost.gwas("torch", 40_000, 10_000, 16, 4096, 2).mem_mb > small.mem_mb
    assert cost.gwas("torch", 40_000, 500_000, 128, 4096, 2).runtime > small.runtime
    assert cost.gwas("plink2", 40_000, 500_000, 128, 4096, 2).runtime > \
        cost.gwas("torch", 40_000, 500_000, 128, 4096, 2).runtime
    # the streamed stages: memory by the chunk and the dimensions, not the variants; time by the rows
    assert cost.gwas_gather(10_000_000, 128).mem_mb == cost.gwas_gather(100_000, 128).mem_mb
    assert cost.gwas_gather(10_000_000, 128).mem_mb > cost.gwas_gather(10_000_000, 16).mem_mb
    assert cost.gwas_gather(10_000_000, 128).runtime > cost.gwas_gather(100_000, 128).runtime
    assert cost.joint_test(10_000_000, 128, 200_000).mem_mb == cost.joint_test(1000, 128, 200_000).mem_mb
    # the loci scan keeps each test's rows below candidate_p: memory by variants x dimensions x candidate_p
    loci = cost.find_loci(40_000, 10_000_000, 128, 2, 0.05).mem_mb
    assert loci > cost.find_loci(40_000, 10_000_000, 16, 2, 0.05).mem_mb
    assert loci > cost.find_loci(40_000, 10_000_000, 128, 2, 0.01).mem_mb
    assert loci > cost.find_loci(40_000, 1_000_000, 128, 2, 0.05).mem_mb
    model = cost.ModelSize(voxels=182 * 224 * 182, tokens=2366, dimensions=128, heads=8, depth=12, modes=128,
                           pool_from_modes=True)
    assert cost.train_model(45_000, 8, 8, model, True).runtime > cost.train_model(45_000, 4, 8, model, True).runtime
    # the PCA baseline streams: memory by voxels and components, not by subjects
    assert cost.embed_pca(40_000, 2_300_000, 128).mem_mb < 1.01 * cost.embed_pca(400, 2_300_000, 128).mem_mb
    assert cost.embed_pca(400, 2_300_000, 128).mem_mb > 2 * cost.embed_pca(400, 1_000_000, 128).mem_mb


def test_full_study_requests_fit_a_64_gb_node_where_the_stage_streams():
    asks = cost.full_study_requests()
    streamed = ("preprocess_images", "train_model", "embed_udips", "embed_pca_baseline", "prepare_genotypes",
                "genotype_qc",
                "prepare_phenotypes", "gwas_shard", "gwas_gather", "joint_test", "calibrate_joint", "find_loci",
                "perdi_maps", "estimate_heritability")
    assert {rule: asks[rule].mem_mb for rule in streamed if asks[rule].mem_mb > 64_000} == {}


def test_size_readers(tmp_path):
    pvar = tmp_path / "chr1.pvar"
    pvar.write_text("##fileformat=PVARv1.0\n#CHROM\tPOS\tID\tREF\tALT\n1\t10\ta\tA\tG\n1\t20\tb\tC\tT")
    table = tmp_path / "pheno.tsv"
    table.write_text("FID\tIID\n1\t1\n2\t2\n3\t3\n")
    mask = np.zeros((4, 5, 6), bool)
    mask[1:3, 1:3, 1:3] = True
    np.save(tmp_path / "mask.npy", mask)
    assert cost.variant_rows(pvar) == 2 and cost.table_rows(table) == 3
    assert cost.brain_voxels(tmp_path / "mask.npy") == 8
    assert cost.genotype_file_variants([str(tmp_path / "chr1.pgen"), str(pvar)]) == 2
    table.write_text("FID\tIID\n1\t1\n")  # rewritten: counted again
    assert cost.table_rows(table) == 1


def test_constants_mirror_the_stages_they_model():
    assert cost.MODE_FIT_SUBJECTS == MODE_FIT_SUBJECTS
    assert cost.PCA_FIT_SUBJECTS == inspect.signature(embed_pca).parameters["max_fit_subjects"].default
    assert cost.PCA_BATCH_SUBJECTS == BATCH_SUBJECTS
    assert cost.PREPARE_BLOCK == PREPARE_BLOCK


def test_the_pipeline_after_training_fits_a_day_at_full_size():
    """The issue's goal: at 45,000 x 10 M x 128, the chain after training within 24 h with the shards in parallel."""
    requests = cost.full_study_requests()
    limits, rates = cost.post_training_hours(requests)
    assert limits < 24 and rates == pytest.approx(limits / cost.TIME_HEADROOM)
    assert limits >= requests["gwas_gather"].runtime / 60 + requests["find_loci"].runtime / 60
