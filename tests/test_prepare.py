"""The analysed samples' per-chromosome genotypes: the sample selection, BGEN and PLINK input, bad input."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pandas as pd
import pgenlib
import pytest

from vitudip.config import genotype_input_problems, validate_config
from vitudip.genetics.prepare import prepare_chromosome, select_samples
from vitudip.io.bgen import write_bgen, write_sample_file
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.stage_tables import SAMPLE_SELECTION

needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")

N_GENOTYPED, N_IMAGED, N_VARIANTS = 400, 40, 30


def _dosages(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """Soft ALT dosages: hard calls moved a little toward a neighbour."""
    calls = rng.binomial(2, rng.uniform(0.1, 0.5, m), size=(n, m)).astype(float)
    return np.clip(calls + rng.normal(0, 0.05, calls.shape) * (rng.random(calls.shape) < 0.3), 0, 2)


def _variants(chromosome: str, m: int) -> pd.DataFrame:
    ids = [f"rs{chromosome}{i:04d}" for i in range(m)]
    ids[5] = ids[4]  # a multi-allelic site split in two records that share one rsID
    return pd.DataFrame({"chrom": chromosome.zfill(2), "id": ids, "pos": 1000 + 100 * np.arange(m),
                         "ref": "A", "alt": ["C" if i != 5 else "T" for i in range(m)]})


@pytest.fixture
def ukb_like(tmp_path):
    """Two chromosome BGENs ("01", "02") of 400 genotyped samples, 2 withdrawn, and one .sample named apart."""
    rng = np.random.default_rng(3)
    iids = [str(1000000 + i) for i in range(N_GENOTYPED)]
    iids[7], iids[300] = "-1", "-2"
    write_sample_file(tmp_path / "ukb123_imp_chr1_v3_s400.sample", iids, iids, sex=rng.integers(1, 3, N_GENOTYPED))
    dosages = {}
    for chromosome in ("1", "2"):
        dosages[chromosome] = _dosages(rng, N_GENOTYPED, N_VARIANTS)
        write_bgen(tmp_path / f"ukb22828_c{chromosome}_b0_v3.bgen", _variants(chromosome, N_VARIANTS),
                   dosages[chromosome])
    imaged = set(rng.choice([i for i in iids if not i.startswith("-")], N_IMAGED, replace=False)) | {"-1"}
    genotypes = GenotypeInput(str(tmp_path / "ukb22828_c{chromosome}_b0_v3"),
                              str(tmp_path / "ukb123_imp_chr1_v3_s400.sample"))
    return {"folder": tmp_path, "iids": iids, "dosages": dosages, "imaged": imaged, "genotypes": genotypes}


def test_only_the_imaged_samples_are_decoded_into_each_chromosome_fileset(ukb_like):
    folder, genotypes = ukb_like["folder"], ukb_like["genotypes"]
    selection = select_samples(genotypes, "1", ukb_like["imaged"], None, folder / "selection.tsv")
    assert selection.loc[selection["IID"] == "-1", "reason"].item() == "withdrawn (negative ID)"
    assert (selection["reason"] == "").sum() == N_IMAGED
    assert SAMPLE_SELECTION.read(folder / "selection.tsv")["IID"].tolist() == ukb_like["iids"]
    rows = np.flatnonzero(selection["reason"].to_numpy() == "")
    for chromosome in ("1", "2"):
        counts = prepare_chromosome(genotypes, chromosome, folder / "selection.tsv", folder / f"chr{chromosome}")
        assert counts == {"samples": N_IMAGED, "variants": N_VARIANTS, "renamed": 2}
        psam = pd.read_csv(folder / f"chr{chromosome}.psam", sep="\t", dtype=str)
        assert psam["IID"].tolist() == [ukb_like["iids"][r] for r in rows]
        pvar = pd.read_csv(folder / f"chr{chromosome}.pvar", sep="\t", dtype=str)
        # "01" is chromosome 1; the two records sharing an rsID get <chrom>:<pos>_<ref>_<alt> keys
        assert set(pvar["#CHROM"]) == {chromosome} and pvar["ID"].is_unique
        assert pvar["ID"].iloc[4:6].tolist() == [f"{chromosome}:1400_A_C", f"{chromosome}:1500_A_T"]
        reader = pgenlib.PgenReader(bytes(folder / f"chr{chromosome}.pgen"))
        read = np.empty((N_VARIANTS, N_IMAGED), np.float32)
        reader.read_dosages_list(np.arange(N_VARIANTS, dtype=np.uint32), read)
        # 8-bit probabilities, then PGEN's 1/16384 grid
        np.testing.assert_allclose(read.T, ukb_like["dosages"][chromosome][rows], atol=1 / 255 + 1e-4)


def test_records_below_the_info_threshold_are_skipped_before_decoding(ukb_like, monkeypatch):
    """With UK Biobank's mfi tables, a record QC's INFO filter would drop is never decoded; the rest are unchanged."""
    from vitudip.genetics.prepare import InfoPrefilter
    from vitudip.io.bgen import BgenFile

    folder, genotypes = ukb_like["folder"], ukb_like["genotypes"]
    selection = select_samples(genotypes, "1", ukb_like["imaged"], None, folder / "selection.tsv")
    rows = np.flatnonzero(selection["reason"].to_numpy() == "")
    variants = _variants("1", N_VARIANTS)
    info = np.full(N_VARIANTS, 0.95)
    info[[2, 5, 17]] = [0.1, 0.2, 0.29]  # 5 is the second record of the split multi-allelic site
    info[9] = 0.3  # at the threshold: kept, as QC keeps it
    mfi = pd.DataFrame({"alternate_id": variants["id"], "rsid": variants["id"], "position": variants["pos"],
                        "allele1": variants["ref"], "allele2": variants["alt"], "maf": 0.2,
                        "minor_allele": variants["alt"], "info": info}).drop(index=[20])  # 20: not in the table
    mfi.to_csv(folder / "ukb_mfi_chr1_v3.txt", sep=" ", header=False, index=False)
    decoded = []
    read = BgenFile.read_dosages
    monkeypatch.setattr(BgenFile, "read_dosages", lambda self, index, rows: decoded.extend(index) or read(self, index,
                                                                                                         rows))
    prefilter = InfoPrefilter(str(folder / "ukb_mfi_chr{chromosome}_v3.txt"), 0.3)
    counts = prepare_chromosome(genotypes, "1", folder / "selection.tsv", folder / "chr1", prefilter=prefilter)
    kept = np.setdiff1d(np.arange(N_VARIANTS), [2, 5, 17])
    assert counts["variants"] == N_VARIANTS - 3 and sorted(decoded) == kept.tolist()
    lines = (folder / "chr1.pvar").read_text().splitlines()
    assert lines[0] == f"##vitudip_info_prefilter=3 of {N_VARIANTS} records below INFO 0.3 in " \
                       f"{folder / 'ukb_mfi_chr1_v3.txt'} not decoded"
    pvar = pd.read_csv(folder / "chr1.pvar", sep="\t", dtype=str, skiprows=1)
    assert pvar["POS"].astype(int).tolist() == variants["pos"].to_numpy()[kept].tolist()
    dosages = np.empty((kept.size, N_IMAGED), np.float32)
    pgenlib.PgenReader(bytes(folder / "chr1.pgen")).read_dosages_list(np.arange(kept.size, dtype=np.uint32), dosages)
    np.testing.assert_allclose(dosages.T, ukb_like["dosages"]["1"][rows][:, kept], atol=1 / 255 + 1e-4)


def test_no_analysed_subject_is_refused_naming_the_sample_file(ukb_like):
    with pytest.raises(ValueError, match=r"no sample of .*ukb123_imp_chr1_v3_s400.sample is analysed \(400 samples; "
                                         r"not analysed: no image 398, withdrawn"):
        select_samples(ukb_like["genotypes"], "1", {"5", "6"}, None, ukb_like["folder"] / "selection.tsv")


def _config(default_config: dict, genotypes: GenotypeInput, chromosomes: list[str]) -> dict:
    config = copy.deepcopy(default_config)
    config["inputs"].update(genotypes=genotypes.pattern, genotype_samples=genotypes.sample_file)
    config["simulate"]["enabled"] = False
    config["gwas"]["chromosomes"] = chromosomes
    return validate_config(config)


def test_bad_genotype_input_is_named_at_start(ukb_like, default_config):
    folder, genotypes = ukb_like["folder"], ukb_like["genotypes"]
    assert genotype_input_problems(_config(default_config, genotypes, ["1", "2"])) == []
    # a chromosome file missing from the pattern
    problems = genotype_input_problems(_config(default_config, genotypes, ["1", "2", "3"]))
    assert len(problems) == 1 and "chromosome 3" in problems[0] and "ukb22828_c3_b0_v3.bgen" in problems[0]
    # a .sample of another sample count
    short = folder / "short.sample"
    write_sample_file(short, ukb_like["iids"][:-5], ukb_like["iids"][:-5])
    problems = genotype_input_problems(_config(default_config, GenotypeInput(genotypes.pattern, str(short)), ["1"]))
    assert len(problems) == 1 and f"holds {N_GENOTYPED} samples but {short} lists {N_GENOTYPED - 5}" in problems[0]
    # a layout the reader does not take: BGEN 1.1's layout 1 in the header flags
    bgen = folder / "ukb22828_c2_b0_v3.bgen"
    data = bytearray(bgen.read_bytes())
    flags = int.from_bytes(data[20:24], "little")
    data[20:24] = ((flags & ~(0xF << 2)) | (1 << 2)).to_bytes(4, "little")
    bgen.write_bytes(bytes(data))
    problems = genotype_input_problems(_config(default_config, genotypes, ["1", "2"]))
    assert len(problems) == 1 and str(bgen) in problems[0] and "layout 1" in problems[0]


def test_a_pattern_chromosome_file_of_other_samples_is_refused(ukb_like):
    folder, genotypes = ukb_like["folder"], ukb_like["genotypes"]
    select_samples(genotypes, "1", ukb_like["imaged"], None, folder / "selection.tsv")
    other = GenotypeInput(genotypes.pattern, None)
    shuffled = list(reversed(ukb_like["iids"]))
    write_sample_file(folder / "ukb22828_c2_b0_v3.sample", shuffled, shuffled)
    with pytest.raises(ValueError, match="not the 400 samples of .* in the same order"):
        prepare_chromosome(other, "2", folder / "selection.tsv", folder / "chr2")


@needs_plink2
def test_plink_input_is_subset_by_plink2_keeping_dosages(ukb_like, tmp_path):
    """The same genotypes as a PLINK 2 fileset of every chromosome: subset by plink2, equal to the BGEN route."""
    import subprocess

    folder = ukb_like["folder"]
    bgen, sample = f"{folder}/ukb22828_c1_b0_v3.bgen", ukb_like["genotypes"].sample_file
    subprocess.run(["plink2", "--bgen", bgen, "ref-first", "--sample", sample, "--make-pgen", "--out",
                    str(tmp_path / "all")], check=True, capture_output=True)
    plink = GenotypeInput(str(tmp_path / "all"))
    select_samples(plink, "1", ukb_like["imaged"], None, tmp_path / "selection.tsv")
    prepare_chromosome(plink, "1", tmp_path / "selection.tsv", tmp_path / "chr1")
    select_samples(ukb_like["genotypes"], "1", ukb_like["imaged"], None, folder / "selection.tsv")
    prepare_chromosome(ukb_like["genotypes"], "1", folder / "selection.tsv", folder / "chr1")
    ours, theirs = (pgenlib.PgenReader(bytes(p / "chr1.pgen")) for p in (folder, tmp_path))
    a, b = (np.empty((N_VARIANTS, N_IMAGED), np.float32) for _ in range(2))
    ours.read_dosages_list(np.arange(N_VARIANTS, dtype=np.uint32), a)
    theirs.read_dosages_list(np.arange(N_VARIANTS, dtype=np.uint32), b)
    np.testing.assert_allclose(a, b, atol=2e-4)
    ids = [pd.read_csv(p / "chr1.pvar", sep="\t", dtype=str, comment=None)["ID"].tolist() for p in (folder, tmp_path)]
    assert ids[0] == ids[1]


def test_field_31_sex_of_the_covariates_is_checked_against_the_sample_file(ukb_like):
    folder, genotypes = ukb_like["folder"], ukb_like["genotypes"]
    sample_sex = pd.read_csv(genotypes.sample_file, sep=" ", skiprows=[1], dtype=str)["sex"].astype(int)
    iids = pd.Index(ukb_like["iids"])
    field_31 = pd.Series(np.where(sample_sex == 1, 1, 0), index=iids)  # UK Biobank: 0 female, 1 male
    selection = select_samples(genotypes, "1", ukb_like["imaged"], None, folder / "s.tsv", field_31, "cov sex")
    assert selection["SEX"].tolist() == sample_sex.tolist()
    # read as 0 = male, it disagrees with the .sample for every sample: refused, never silently misread
    with pytest.raises(ValueError, match=r"sex differs between .*\.sample and cov sex for 400 of 400"):
        select_samples(genotypes, "1", ukb_like["imaged"], None, folder / "s.tsv", 1 - field_31, "cov sex")
    # a .sample without sex takes the covariates'
    write_sample_file(folder / "nosex.sample", ukb_like["iids"], ukb_like["iids"])
    selection = select_samples(GenotypeInput(genotypes.pattern, str(folder / "nosex.sample")), "1",
                               ukb_like["imaged"], None, folder / "s.tsv", field_31, "cov sex")
    assert selection["SEX"].tolist() == sample_sex.tolist()


@needs_plink2
@pytest.mark.parametrize("source", ["bgen", "pgen"])
def test_soft_dosages_are_called_genotypes_for_the_call_rates(tmp_path, default_config, source):
    """Imputed dosages far from a hard call are not missing: neither call-rate filter removes them, from a BGEN
    (decoded by prepare_genotypes) or a dosage PGEN (subset by plink2)."""
    from vitudip.genetics.genotype_qc import genotype_qc
    from vitudip.genetics.settings import QcSettings
    from vitudip.io.stage_tables import SAMPLE_QC, VARIANT_QC

    rng = np.random.default_rng(5)
    n, m = 60, 200
    calls = rng.binomial(2, 0.4, size=(n, m)).astype(float)
    # about 20 % of genotypes more than 0.1 from a hard call: a missing hard call at plink2's threshold
    dosages = np.clip(calls + rng.normal(0, 0.3, calls.shape) * (rng.random(calls.shape) < 0.3), 0, 2)
    iids = [str(i + 1) for i in range(n)]
    variants = pd.DataFrame({"chrom": "01", "id": [f"rs{i}" for i in range(m)], "pos": 100 * np.arange(1, m + 1),
                             "ref": "A", "alt": "G"})
    if source == "bgen":
        write_sample_file(tmp_path / "g.sample", iids, iids)
        write_bgen(tmp_path / "g.bgen", variants, dosages)
    else:
        (tmp_path / "g.psam").write_text("#IID\tSEX\n" + "".join(f"{iid}\t{1 + i % 2}\n" for i, iid in enumerate(iids)))
        variants.rename(columns={"chrom": "#CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})[
            ["#CHROM", "POS", "ID", "REF", "ALT"]].to_csv(tmp_path / "g.pvar", sep="\t", index=False)
        with pgenlib.PgenWriter(bytes(tmp_path / "g.pgen"), n, m, False, dosage_present=True) as writer:
            writer.append_dosages_batch(np.ascontiguousarray(dosages.T.astype(np.float32)))
    genotypes = GenotypeInput(str(tmp_path / "g"))
    select_samples(genotypes, "1", set(iids), None, tmp_path / "selection.tsv")
    prepare_chromosome(genotypes, "1", tmp_path / "selection.tsv", tmp_path / "chr1")
    settings = QcSettings.from_config(default_config)
    out = {"samples": tmp_path / "sample_qc.tsv", "variants": tmp_path / "variant_qc.tsv",
           "passing": tmp_path / "pass.txt", "pruned": tmp_path / "pruned"}
    genotype_qc([tmp_path / "chr1"], tmp_path / "selection.tsv", settings, out)
    table = VARIANT_QC.read(out["variants"]).set_index("chromosome")
    assert table.at["all", "removed_call_rate"] == 0 and table.at["all", "passing"] > m / 2
    assert not SAMPLE_QC.read(out["samples"])["reason"].str.startswith("genotype call rate").any()
