"""The input checks run before training (vitudip/validate.py, the validate_inputs rule): each late mistake stops
there with a message naming the file, key or an example ID."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vitudip.config import section_defaults
from vitudip.genetics.genotypes import GenotypeFiles, check_variant_ids
from vitudip.genetics.settings import PhenoSettings
from vitudip.io.bgen import write_bgen, write_sample_file
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.stage_tables import INPUT_CHECKS
from vitudip.validate import validate_inputs

from tiny_study import ROOT, snakemake

SUBJECTS = [f"00{i}" for i in range(10, 40)]


def pheno(**overrides) -> PhenoSettings:
    return PhenoSettings.from_config({"pheno": {**section_defaults("pheno"), "min_samples": 5, **overrides}})


def write_study(folder: Path, covariate_ids=None, ages=None, sexes=None, centres=None, chromosomes=("1", "2"),
                genotype_ids=None) -> dict:
    """A samples table, a covariates table and a PLINK 1 fileset (its .bed's genotypes are never read)."""
    samples = folder / "samples.tsv"
    samples.write_text("subject_id\tpath\n" + "".join(f"{s}\t{s}.nii.gz\n" for s in SUBJECTS))
    ids = covariate_ids or SUBJECTS
    ages = ages or [50 + i for i in range(len(ids))]
    sexes = sexes or [i % 2 for i in range(len(ids))]
    centres = centres or [f"c{i % 3}" for i in range(len(ids))]
    covariates = folder / "covariates.tsv"
    covariates.write_text("IID\tage\tsex\tcentre\n" + "".join(
        f"{iid}\t{age}\t{sex}\t{centre}\n" for iid, age, sex, centre in zip(ids, ages, sexes, centres)))
    prefix = folder / "geno"
    (folder / "geno.fam").write_text("".join(f"{s}\t{s}\t0\t0\t0\t-9\n" for s in genotype_ids or SUBJECTS))
    (folder / "geno.bim").write_text("".join(f"{c}\trs{c}_{i}\t0\t{100 * (i + 1)}\tA\tG\n"
                                             for c in chromosomes for i in range(3)))
    n_samples, n_variants = len(genotype_ids or SUBJECTS), 3 * len(chromosomes)
    (folder / "geno.bed").write_bytes(b"\x6c\x1b\x01" + bytes(n_variants * -(-n_samples // 4)))
    return {"samples_path": str(samples), "covariates_path": str(covariates),
            "genotypes": GenotypeInput(str(prefix)), "out": folder / "inputs.tsv"}


def splits(**overrides) -> dict:
    return {**section_defaults("preprocess")["splits"], **overrides}


def run(study: dict, settings: PhenoSettings | None = None, chromosomes=("1", "2"), split=None, batch_size=8):
    return validate_inputs(study["samples_path"], study["covariates_path"], study["genotypes"], list(chromosomes),
                           None, settings or pheno(), split or splits(), batch_size, study["out"])


def test_valid_inputs_write_what_was_checked_with_counts(tmp_path):
    study = write_study(tmp_path)
    run(study, pheno(categorical=["centre"]))
    table = INPUT_CHECKS.read(study["out"]).set_index("check")
    assert table.loc["subjects", "count"] == 30
    assert table.loc["genotype samples", "count"] == 30
    assert table.loc["chromosomes", "count"] == 2
    assert table.loc["pheno.min_samples", "count"] == 30
    assert table.loc["covariate levels", "count"] == 3


def test_covariate_ids_without_their_leading_zeros_are_named(tmp_path):
    study = write_study(tmp_path, covariate_ids=[s.lstrip("0") for s in SUBJECTS])
    with pytest.raises(ValueError, match=r"covariates\.tsv: IID '10' matches subject_id '0010' .*leading zeros"):
        run(study)
    assert not study["out"].exists()


def test_covariates_of_other_subjects_are_named_with_an_example(tmp_path):
    study = write_study(tmp_path, covariate_ids=[f"X{i}" for i in range(30)])
    with pytest.raises(ValueError, match=r"none of its 30 IIDs .* \(e\.g\. 'X0' against '0010'\)"):
        run(study)


@pytest.mark.parametrize(("column", "kwargs", "settings", "message"), [
    ("centre", {"centres": ["A"] * 30}, {"categorical": ["centre"]}, r"categorical covariate 'centre' has a single "
                                                                     r"level 'A'"),
    ("age", {"ages": [60] * 30}, {}, r"covariate 'age' is constant \(60"),
    ("sex", {"sexes": [1] * 30}, {}, r"covariate 'sex' is constant \(1"),
])
def test_a_covariate_that_does_not_vary_is_one_error_naming_the_file_and_column(tmp_path, column, kwargs, settings,
                                                                                message):
    study = write_study(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=r"covariates file .*covariates\.tsv: " + message):
        run(study, pheno(**settings))


def test_genotype_samples_that_match_no_subject_are_named(tmp_path):
    study = write_study(tmp_path, genotype_ids=[s.lstrip("0") for s in SUBJECTS])
    with pytest.raises(ValueError, match=r"no sample of .*geno\.fam is analysed .*IID '10' matches subject_id "
                                         r"'0010' only once leading zeros"):
        run(study)


def test_a_bgen_sample_file_whose_ids_match_no_subject_is_named(tmp_path):
    study = write_study(tmp_path)
    variants = pd.DataFrame({"chrom": ["01", "02"], "id": ["a", "b"], "pos": [1, 2], "ref": "A", "alt": "G"})
    write_bgen(tmp_path / "ukb.bgen", variants, np.zeros((30, 2)))
    write_sample_file(tmp_path / "ukb.sample", [f"9{i}" for i in range(30)], [f"9{i}" for i in range(30)])
    study["genotypes"] = GenotypeInput(str(tmp_path / "ukb"))
    with pytest.raises(ValueError, match=r"no sample of .*ukb\.sample is analysed \(30 samples; not analysed: no "
                                         r"image 30\)"):
        run(study)
    write_sample_file(tmp_path / "ukb.sample", SUBJECTS, SUBJECTS)
    run(study)
    assert INPUT_CHECKS.read(study["out"]).set_index("check").loc["genotype samples", "file"].endswith("ukb.sample")


def test_chromosomes_the_genotype_file_lacks_name_the_key_and_the_file(tmp_path):
    study = write_study(tmp_path, chromosomes=("1", "2"))
    with pytest.raises(ValueError, match=r"config key 'gwas\.chromosomes' lists 3, 15, but .*geno\.bim has no "
                                         r"variant on them \(it holds chromosome\(s\) 1, 2\)"):
        run(study, chromosomes=("1", "2", "3", "15"))


def test_a_truncated_bed_is_named_with_its_size(tmp_path):
    study = write_study(tmp_path)
    bed = tmp_path / "geno.bed"
    bed.write_bytes(bed.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"geno\.bed has 46 bytes but 6 variants x 30 samples need 51 bytes"):
        run(study)


def per_chromosome_study(folder: Path, fam_ids: dict[str, list[str]] | None = None) -> dict:
    """The study with one PLINK 1 fileset per chromosome, geno_1 and geno_2 (their .fam: ``fam_ids``)."""
    folder.mkdir(exist_ok=True)
    study = write_study(folder)
    for chromosome in ("1", "2"):
        (folder / chromosome).mkdir()
        write_study(folder / chromosome, chromosomes=(chromosome,), genotype_ids=(fam_ids or {}).get(chromosome))
        for ext in (".bed", ".bim", ".fam"):
            shutil.move(folder / chromosome / f"geno{ext}", folder / f"geno_{chromosome}{ext}")
    study["genotypes"] = GenotypeInput(str(folder / "geno_{chromosome}"))
    return study


def test_every_chromosome_s_fileset_lists_the_same_samples_in_the_same_order(tmp_path):
    run(per_chromosome_study(tmp_path))
    swapped = [SUBJECTS[1], SUBJECTS[0], *SUBJECTS[2:]]
    with pytest.raises(ValueError, match=r"geno_2\.fam lists 30 samples, .*geno_1\.fam 30: not the same samples in "
                                         r"the same order \(sample 1 is '0011' there and '0010' in .*geno_1\.fam\)"):
        run(per_chromosome_study(tmp_path / "swapped", {"2": swapped}))
    with pytest.raises(ValueError, match=r"geno_2\.fam lists 29 samples.*sample 30 is '\(none\)' there"):
        run(per_chromosome_study(tmp_path / "fewer", {"2": SUBJECTS[:29]}))


def write_pgen(prefix: Path, chromosomes=("1", "2"), ids=None) -> None:
    """A PLINK 2 fileset of the 30 subjects, three variants a chromosome, with dosages."""
    import pgenlib

    ids = ids or [f"rs{c}_{i}" for c in chromosomes for i in range(3)]
    prefix.with_suffix(".psam").write_text("#IID\tSEX\n" + "".join(f"{s}\t1\n" for s in SUBJECTS))
    prefix.with_suffix(".pvar").write_text("##fileformat=PVARv1.0\n#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"{c}\t{100 * (i + 1)}\t{ids[3 * k + i]}\tA\tG\n" for k, c in enumerate(chromosomes) for i in range(3)))
    dosages = np.random.default_rng(0).uniform(0, 2, (3 * len(chromosomes), len(SUBJECTS))).astype(np.float32)
    with pgenlib.PgenWriter(bytes(prefix.with_suffix(".pgen")), len(SUBJECTS), len(dosages), False,
                            dosage_present=True) as writer:
        writer.append_dosages_batch(dosages)


def test_a_truncated_pgen_is_named_with_its_size(tmp_path):
    study = write_study(tmp_path)
    study["genotypes"] = GenotypeInput(str(tmp_path / "plink2"))
    write_pgen(tmp_path / "plink2")
    run(study)
    pgen = tmp_path / "plink2.pgen"
    pgen.write_bytes(pgen.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"plink2\.pgen \(\d+ bytes\) cannot be read as the genotypes of the 30 "
                                         r"samples of .*plink2\.psam and the 6 variants of .*plink2\.pvar: "
                                         r".*truncated"):
        run(study)


def test_a_truncated_bgen_is_named(tmp_path):
    study = write_study(tmp_path)
    variants = pd.DataFrame({"chrom": ["01"] * 3 + ["02"] * 3, "id": [f"v{i}" for i in range(6)],
                             "pos": [1, 2, 3, 1, 2, 3], "ref": "A", "alt": "G"})
    write_bgen(tmp_path / "ukb.bgen", variants, np.ones((30, 6)))
    write_sample_file(tmp_path / "ukb.sample", SUBJECTS, SUBJECTS)
    study["genotypes"] = GenotypeInput(str(tmp_path / "ukb"))
    run(study)
    bgen = tmp_path / "ukb.bgen"
    bgen.write_bytes(bgen.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"ukb\.bgen: truncated: .*past the end of the file"):
        run(study)


def test_a_variant_id_on_two_chromosomes_is_named_with_its_line_and_a_command_for_the_format(tmp_path):
    # '.' and repeats within a chromosome are made <chrom>:<pos>_<ref>_<alt> by prepare_genotypes: they pass
    study = write_study(tmp_path)
    study["genotypes"] = GenotypeInput(str(tmp_path / "plink2"))
    write_pgen(tmp_path / "plink2", ids=[".", ".", "rs9", "rs1", "rs1", "2:100_A_G"])
    run(study)
    # the same rsID on chromosomes 1 and 2 would reach the GWAS files, loci and LD lookups as one variant
    write_pgen(tmp_path / "plink2", ids=["rs1", "rs2", "rs3", "rs4", "rs2", "rs6"])
    with pytest.raises(ValueError) as caught:
        run(study)
    message = str(caught.value)
    assert re.search(r"plink2\.pvar line 7: variant ID 'rs2' \(2:200\) is also the ID of a variant on chromosome 1 "
                     r"\(.*plink2\.pvar; 1 IDs of chromosome 2 are\)", message), message
    assert f"plink2 --pfile {tmp_path / 'plink2'} --set-all-var-ids" in message
    # a BGEN's: the command reads the .bgen with its .sample
    variants = pd.DataFrame({"chrom": ["01"] * 3 + ["02"] * 3, "id": ["a", "b", "c", "d", "a", "f"],
                             "pos": [1, 2, 3, 1, 2, 3], "ref": "A", "alt": "G"})
    write_bgen(tmp_path / "ukb.bgen", variants, np.ones((30, 6)))
    write_sample_file(tmp_path / "ukb.sample", SUBJECTS, SUBJECTS)
    study["genotypes"] = GenotypeInput(str(tmp_path / "ukb"))
    with pytest.raises(ValueError) as caught:
        run(study)
    message = str(caught.value)
    assert "ukb.bgen variant 5: variant ID 'a' (2:2) is also the ID of a variant on chromosome 1" in message
    assert (f"plink2 --bgen {tmp_path / 'ukb.bgen'} ref-first --sample {tmp_path / 'ukb.sample'} "
            "--set-all-var-ids") in message and "--pfile" not in message


def test_ids_whose_hashes_collide_are_compared_themselves(tmp_path, monkeypatch):
    # every ID hashed alike: the IDs of chromosome 2 all look seen on chromosome 1 until compared
    study = write_study(tmp_path)
    monkeypatch.setattr(pd.util, "hash_pandas_object", lambda ids, index: pd.Series(np.zeros(len(ids), np.uint64)))
    run(study)
    assert INPUT_CHECKS.read(study["out"]).set_index("check").loc["genotype filesets", "count"] == 1


def test_a_repeated_variant_id_of_a_bgen_is_told_a_command_that_reads_a_bgen():
    variants = pd.DataFrame({"chrom": ["1", "1"], "id": ["a", "a"], "pos": [1, 2], "ref": "A", "alt": "G"})
    with pytest.raises(ValueError) as caught:
        check_variant_ids(variants, "ukb_c1.bgen", "ukb.sample")
    message = str(caught.value)
    assert message.startswith("ukb_c1.bgen variant 1: variant ID 'a' (1:1) is not unique")
    assert "plink2 --bgen ukb_c1.bgen ref-first --sample ukb.sample --set-all-var-ids" in message
    assert "--pfile" not in message


def test_a_truncated_ld_reference_is_named_before_training(tmp_path):
    study = write_study(tmp_path)
    (tmp_path / "panel").mkdir()
    write_study(tmp_path / "panel")
    panel = str(tmp_path / "panel" / "geno")
    validate_inputs(study["samples_path"], study["covariates_path"], study["genotypes"], ["1", "2"], None, pheno(),
                    splits(), 8, study["out"], ld_reference=panel)
    assert INPUT_CHECKS.read(study["out"]).set_index("check").loc["LD reference", "file"] == f"{panel}.bed"
    bed = tmp_path / "panel" / "geno.bed"
    bed.write_bytes(bed.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"panel/geno\.bed has 46 bytes but 6 variants x 30 samples need 51 bytes"):
        validate_inputs(study["samples_path"], study["covariates_path"], study["genotypes"], ["1", "2"], None,
                        pheno(), splits(), 8, study["out"], ld_reference=panel)


def test_the_chromosomes_of_a_pvar_and_a_bgen_are_read(tmp_path):
    (tmp_path / "a.pvar").write_text("##fileformat=PVARv1.0\n#CHROM\tPOS\tID\tREF\tALT\n"
                                     "chr1\t10\tx\tA\tG\n01\t20\ty\tA\tG\nX\t30\tz\tA\tG\n")
    assert GenotypeFiles(str(tmp_path / "a"), "pgen").chromosomes() == {"1", "X"}
    variants = pd.DataFrame({"chrom": ["01", "02", "02"], "id": ["a", "b", "c"], "pos": [1, 2, 3],
                             "ref": ["A"] * 3, "alt": ["G"] * 3})
    for index in (True, False):
        write_bgen(tmp_path / "b.bgen", variants, np.zeros((4, 3)), index=index)
        assert GenotypeFiles(str(tmp_path / "b"), "bgen").chromosomes() == {"1", "2"}


def test_a_train_split_smaller_than_a_batch_names_the_keys_and_counts(tmp_path):
    study = write_study(tmp_path)
    run(study, split=splits(train=0.3, val=0.35, test=0.35), batch_size=9)
    with pytest.raises(ValueError, match=r"config key 'preprocess\.splits\.train' \(0\.2\) gives the train split 6 of "
                                         r"the 30 subjects of .*samples\.tsv, before image QC removes any, fewer than "
                                         r"config key 'train\.batch_size' \(8\)"):
        run(study, split=splits(train=0.2, val=0.4, test=0.4))
    # a splits file: its train subjects of the samples table count
    table = tmp_path / "splits.tsv"
    table.write_text("subject_id\tsplit\n" + "".join(f"{s}\t{'train' if i < 5 else 'val'}\n"
                                                      for i, s in enumerate(SUBJECTS)) + "0999\ttrain\n")
    with pytest.raises(ValueError, match=r"the splits file .*splits\.tsv \(config key 'preprocess\.splits\.file'\) "
                                         r"puts 5 subjects of .*samples\.tsv in the train split, fewer than"):
        run(study, split=splits(file=str(table)))
    run(study, split=splits(file=str(table)), batch_size=5)


def test_min_samples_above_the_subjects_that_can_be_analysed(tmp_path):
    study = write_study(tmp_path, genotype_ids=SUBJECTS[:12])
    with pytest.raises(ValueError, match=r"config key 'pheno\.min_samples' is 20 but at most 12 subjects can be "
                                         r"analysed \(in the samples table 30 -> with genotypes 12"):
        run(study, pheno(min_samples=20))


def test_a_dry_run_plans_the_input_checks_before_training(tmp_path):
    shutil.copytree(ROOT / ".test", tmp_path / ".test", ignore=shutil.ignore_patterns("results"))
    result = snakemake(tmp_path, "--dag", configfile=tmp_path / ".test" / "config.yaml")
    assert result.returncode == 0, result.stderr
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)", result.stdout, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, flags=re.M)
    before_training = {labels[u] for u, v in edges if labels[v] == "train_model"}
    assert "validate_inputs" in before_training


def test_a_late_mistake_stops_the_workflow_before_any_image_or_training_job(tmp_path):
    study = write_study(tmp_path, covariate_ids=[s.lstrip("0") for s in SUBJECTS])
    config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    config["inputs"].update(samples=study["samples_path"], covariates=study["covariates_path"],
                            genotypes=str(tmp_path / "geno"), known_loci=None, genes=None)
    config["results"] = str(tmp_path / "results")
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "--cores", "1", "train_model", configfile=path)
    assert run.returncode != 0
    log = (tmp_path / "results" / "logs" / "validate_inputs.log").read_text()
    assert "IID '10' matches subject_id '0010'" in log
    # the checks ran first, and nothing after them
    assert not (tmp_path / "results" / "preprocess").exists()
    assert not (tmp_path / "results" / "train").exists()
