"""Lay a simulated cohort out as UK Biobank ships its data, to try the UK Biobank configuration on the demo.

What UK Biobank's files look like, and what is written here (under ``out_dir``):

* ``bulk/<eid>_20252_2_0/T1/T1_unbiased_brain_linear.nii.gz`` (and ``T1_brain_to_MNI.nii.gz``): one folder
  per imaged subject (links to the simulated images), one folder of a participant whose download lacks the
  image, and one folder of another field (20253) that a T1 search must ignore.
* ``imputed/ukb22828_c<N>_b0_v3.bgen`` (+ ``.bgi``): BGEN 1.2, layout 2, zlib, 8 bits, one per chromosome,
  the chromosome field written with two digits ("01"). Its samples are every genotyped participant
  (``genotyped_multiple`` times the imaged ones), in random order, withdrawn participants included.
* ``imputed/ukb<application>_imp_chr1_v3_s<n>.sample``: the one Oxford .sample of the application, named
  apart from the BGENs; withdrawn participants carry negative IDs (-1, -2, ...).
* ``imputed/ukb_mfi_chr<N>_v3.txt``: headerless ``alternate_id rsid position allele1 allele2 MAF
  minor_allele info`` for every BGEN record.
* ``covariates.tsv`` (FID = IID = eid, age, sex as field 31: 0 female / 1 male, centre as field 54 codes),
  ``eids.tsv`` (simulated subject_id -> eid), and the simulated ``known_loci.tsv``, ``genes.tsv`` and
  ``truth/`` (``truth/measures.tsv`` keyed by eid; variant IDs unchanged).

Dosages: the simulated hard calls, softened as well-imputed data are (30 % of genotypes moved toward a
neighbouring genotype by |N(0, soft_sd)|), for the imaged subjects; the other participants' genotypes are
drawn in Hardy-Weinberg equilibrium from each variant's allele frequency. A ``duplicate_share`` of the
variants gain a second record at the same position and rsID with a rare other ALT allele (UK Biobank's
split multi-allelic sites), one variant per chromosome is named ``<chr>:<pos>_<a1>_<a2>`` (no rsID), and
about 2 % get INFO 0.2 in the mfi table (0.95 elsewhere). The planted causal SNPs keep their IDs and calls.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.imaging.ukb import DEFAULT_T1_IMAGE, T1_FIELD, T1_FOLDER
from vitudip.io.atomic import staged_outputs, write_tsv
from vitudip.io.bgen import write_bgen, write_sample_file
from vitudip.io.plink import read_bed, read_bim, read_fam
from vitudip.io.stage_tables import TRUTH_LOCI
from vitudip.simulate.settings import COHORT_FILES

log = logging.getLogger("vitudip.simulate")

#: UK Biobank's file names; ``{chromosome}`` is the chromosome's number without padding.
BGEN_NAME = "ukb22828_c{chromosome}_b0_v3.bgen"
MFI_NAME = "ukb_mfi_chr{chromosome}_v3.txt"
SAMPLE_NAME = "ukb{application}_imp_chr1_v3_s{n}.sample"
#: The other brain image of a UK Biobank T1 folder, linked too so a search must pick the right one.
OTHER_T1_IMAGE = "T1_brain_to_MNI.nii.gz"
#: Field 54 code of the first assessment centre (Cheadle imaging); the next centres count up from it.
FIRST_CENTRE_CODE = 11025
#: eids are drawn from this range: 7 digits, and apart from the simulated ids (1000001, ...).
EID_RANGE = (2_000_000, 6_000_000)
SOFT_SHARE = 0.3
LOW_INFO_SHARE = 0.02
INFO_GOOD, INFO_LOW = 0.95, 0.2
RARE_CARRIER_SHARE = 0.01
#: Variants whose dosages are made at once (bounds the temporaries on large cohorts).
_BLOCK = 512


@dataclass(frozen=True)
class _Cohort:
    """The simulated cohort's imaged subjects, in samples.tsv order, and their genotypes."""

    ids: list[str]
    images: list[Path]
    covariates: pd.DataFrame
    variants: pd.DataFrame
    dosages: np.ndarray
    causal: frozenset[str]


@dataclass(frozen=True)
class _Participants:
    """Every genotyped participant, in BGEN row order, and where the imaged subjects sit among them.

    Attributes:
        sample_ids: the .sample's IDs per BGEN row (eids; negative for the withdrawn).
        sex: PLINK sex codes per BGEN row (1 male, 2 female).
        imaged_rows: the BGEN row of each imaged subject, in cohort order.
        imaged_eids: the eid of each imaged subject, in cohort order.
        spare_eid: the eid of a genotyped participant without an image (for the incomplete bulk folder).
    """

    sample_ids: list[str]
    sex: np.ndarray
    imaged_rows: np.ndarray
    imaged_eids: list[str]
    spare_eid: str


def _read_cohort(cohort_dir: Path) -> _Cohort:
    """The imaged subjects of a simulated cohort folder with their images, covariates and hard calls.

    Args:
        cohort_dir: a folder written by :func:`vitudip.simulate.cohort.simulate_cohort`.

    Returns:
        The cohort; covariates and genotype rows in samples.tsv order.

    Raises:
        ValueError: a subject of samples.tsv missing from the covariates or the .fam.
        FileNotFoundError: a cohort file or image that is not there.
    """
    samples = pd.read_csv(cohort_dir / COHORT_FILES["samples"], sep="\t", dtype=str)
    covariates = pd.read_csv(cohort_dir / COHORT_FILES["covariates"], sep="\t", dtype={"FID": str, "IID": str})
    prefix = cohort_dir / Path(COHORT_FILES["bed"]).with_suffix("")
    fam = read_fam(prefix)
    ids = samples["subject_id"].tolist()
    for name, known in (("covariates.tsv", covariates["IID"]), ("geno.fam", fam["iid"])):
        missing = sorted(set(ids) - set(known))
        if missing:
            raise ValueError(f"{cohort_dir}: subject '{missing[0]}' of samples.tsv is not in {name}")
    images = [Path(p) if Path(p).is_absolute() else cohort_dir / p for p in samples["path"]]
    for image in images:
        if not image.is_file():
            raise FileNotFoundError(f"simulated image not found: {image}")
    rows = pd.Index(fam["iid"]).get_indexer(ids)
    truth = TRUTH_LOCI.read(cohort_dir / COHORT_FILES["truth_loci"])
    covariates = covariates.set_index("IID", drop=False).loc[ids].reset_index(drop=True)
    return _Cohort(ids, images, covariates, read_bim(prefix), read_bed(prefix)[rows],
                   frozenset(truth["variant_id"]))


def _centre_codes(centres: pd.Series) -> np.ndarray:
    """Field 54 codes of the simulated centres: ``centre1`` (or 0) -> 11025, ``centre2`` (or 1) -> 11026, ...

    Raises:
        ValueError: a centre that is neither ``centre<k>`` (k >= 1) nor a non-negative integer.
    """
    codes = []
    for value in centres.astype(str):
        labelled = re.fullmatch(r"centre(\d+)", value)
        if labelled and int(labelled.group(1)) >= 1:
            codes.append(FIRST_CENTRE_CODE + int(labelled.group(1)) - 1)
        elif value.isdigit():
            codes.append(FIRST_CENTRE_CODE + int(value))
        else:
            raise ValueError(f"covariates.tsv: centre '{value}' is neither centre<k> nor a centre index")
    return np.array(codes, dtype=np.int64)


def _draw_participants(cohort: _Cohort, genotyped_multiple: int, withdrawn: int,
                       rng: np.random.Generator) -> _Participants:
    """eids, BGEN row order and sex of the imaged subjects, the other genotyped participants and the withdrawn.

    Args:
        cohort: the simulated cohort.
        genotyped_multiple: genotyped participants per imaged subject.
        withdrawn: participants listed with negative IDs.
        rng: the layout's generator.

    Returns:
        The participants.
    """
    n_imaged = len(cohort.ids)
    n_other = (genotyped_multiple - 1) * n_imaged
    n = n_imaged + n_other + withdrawn
    # one eid more than genotyped: the participant whose bulk download lacks the image
    eids = rng.choice(np.arange(*EID_RANGE), size=n_imaged + n_other + 1, replace=False)
    listed = [str(e) for e in eids[:n_imaged + n_other]] + [str(-k) for k in range(1, withdrawn + 1)]
    male = np.concatenate([cohort.covariates["sex"].to_numpy() == 1, rng.random(n - n_imaged) < 0.5])
    # the file's row of each participant: imaged and others interleaved at random, as in UK Biobank's files
    row_of = rng.permutation(n)
    sample_ids = [""] * n
    for participant, row in enumerate(row_of):
        sample_ids[row] = listed[participant]
    sex = np.empty(n, dtype=np.int64)
    sex[row_of] = np.where(male, 1, 2)
    spare = str(eids[-1]) if n_other == 0 else listed[n_imaged]
    return _Participants(sample_ids, sex, row_of[:n_imaged], listed[:n_imaged], spare)


def _softened(hard: np.ndarray, soft_sd: float, rng: np.random.Generator) -> np.ndarray:
    """Hard calls with a ``SOFT_SHARE`` of them moved toward a neighbouring genotype by |N(0, soft_sd)|.

    Args:
        hard: float ALT counts 0/1/2, NaN = missing.
        soft_sd: the shift's standard deviation.
        rng: the layout's generator.

    Returns:
        float32 dosages in [0, 2], NaN where ``hard`` is.
    """
    out = hard.astype(np.float32)
    moved = rng.random(hard.shape, dtype=np.float32) < SOFT_SHARE
    calls = hard[moved]
    # 0 can only move up and 2 only down; a heterozygote toward either homozygote
    either = np.where(rng.random(calls.size, dtype=np.float32) < 0.5, -1.0, 1.0)
    direction = np.where(calls == 0, 1.0, np.where(calls == 2, -1.0, either))
    shift = np.abs(rng.normal(0.0, soft_sd, calls.size)) * direction
    out[moved] = np.clip(calls + shift, 0.0, 2.0)
    return out


def _dosage_matrix(hard: np.ndarray, participants: _Participants, soft_sd: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(all participants, variants) float32 dosages: the imaged subjects' calls, the others drawn in HWE.

    Args:
        hard: (n_imaged, n_variants) int8 hard calls, -1 = missing, in cohort order.
        participants: who sits in which BGEN row.
        soft_sd: the softening's standard deviation (see :func:`_softened`).
        rng: the layout's generator.

    Returns:
        Dosages in BGEN row order, softened, NaN = missing.
    """
    n = len(participants.sample_ids)
    others = np.setdiff1d(np.arange(n), participants.imaged_rows)
    out = np.empty((n, hard.shape[1]), dtype=np.float32)
    for start in range(0, hard.shape[1], _BLOCK):
        block = slice(start, start + _BLOCK)
        calls = np.where(hard[:, block] < 0, np.nan, hard[:, block]).astype(np.float64)
        freq = np.nan_to_num(np.nanmean(calls, axis=0) / 2) if len(calls) else np.zeros(calls.shape[1])
        full = np.empty((n, calls.shape[1]))
        full[participants.imaged_rows] = calls
        # two alleles drawn apart (HWE); faster than rng.binomial, which samples element by element
        alleles = rng.random((2, others.size, freq.size), dtype=np.float32) < freq.astype(np.float32)
        full[others] = alleles.sum(axis=0)
        out[:, block] = _softened(full, soft_sd, rng)
    return out


@dataclass(frozen=True)
class _Edits:
    """Which variants of a chromosome get a split multi-allelic twin, lose their rsID or get a low INFO."""

    duplicated: np.ndarray
    renamed: int
    low_info: np.ndarray


def _pick_edits(variants: pd.DataFrame, causal: frozenset[str], duplicate_share: float,
                rng: np.random.Generator) -> _Edits:
    """Choose the edited variants of one chromosome among its non-causal ones, each edit on different variants.

    Args:
        variants: the chromosome's variants (id column), in file order.
        causal: IDs of the planted causal SNPs (never edited).
        duplicate_share: share of variants that get a second ALT record (at least 1).
        rng: the layout's generator.

    Returns:
        Row positions of the edits.

    Raises:
        ValueError: the chromosome has too few non-causal variants for one of each edit.
    """
    free = np.flatnonzero(~variants["id"].isin(causal).to_numpy())
    n_dup = max(1, int(round(duplicate_share * len(variants))))
    n_low = max(1, int(round(LOW_INFO_SHARE * len(variants))))
    if free.size < n_dup + 1 + n_low:
        raise ValueError(f"chromosome {variants['chrom'].iloc[0]} has {free.size} non-causal variants, too few "
                         f"for {n_dup} split multi-allelic sites, a variant without rsID and {n_low} of low INFO")
    picked = rng.permutation(free)[: n_dup + 1 + n_low]
    return _Edits(np.sort(picked[:n_dup]), int(picked[n_dup]), np.sort(picked[n_dup + 1:]))


def _second_allele(ref: str, alt: str, rng: np.random.Generator) -> str:
    """A rare ALT allele other than ``ref`` and ``alt`` (a base when both are bases, else an insertion)."""
    bases = [b for b in "ACGT" if b not in (ref, alt)]
    return str(rng.choice(bases)) if len(ref) == len(alt) == 1 and bases else ref + "T"


def _rare_dosages(main: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dosages of a rare second ALT allele: about 1 % heterozygous carriers (at least one), 0 elsewhere.

    Carriers are taken among those with at most one copy of the site's first ALT allele, so that no
    one carries three alleles across the two records.
    """
    eligible = np.flatnonzero(np.nan_to_num(main, nan=2.0) < 1.5)
    rare = np.zeros(main.shape, dtype=np.float32)
    carriers = eligible[rng.random(eligible.size) < RARE_CARRIER_SHARE]
    if carriers.size == 0 and eligible.size:
        carriers = rng.choice(eligible, size=1)
    rare[carriers] = 1.0
    return rare


def _two_digit(chrom: str) -> str:
    """The chromosome as UK Biobank's BGENs write it: "01" .. "09", "10" ..; names (X) as they are."""
    return chrom.zfill(2) if chrom.isdigit() else chrom


def _chromosome_records(variants: pd.DataFrame, dosages: np.ndarray, edits: _Edits,
                        rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """One chromosome's BGEN records and their dosages, with the split multi-allelic twins and the renaming.

    Args:
        variants: the chromosome's variants (chrom, id, pos, ref, alt), in file order.
        dosages: (participants, variants) float32 dosages in BGEN row order.
        edits: the chosen edits.
        rng: the layout's generator.

    Returns:
        Records (chrom, id, pos, ref, alt, info) with each twin right after its variant, and their dosages.
    """
    table = variants[["chrom", "id", "pos", "ref", "alt"]].reset_index(drop=True).copy()
    table["info"] = INFO_GOOD
    table.loc[edits.low_info, "info"] = INFO_LOW
    row = table.loc[edits.renamed]
    # UK Biobank names a variant without rsID chr:pos_a1_a2 in its rsid field
    table.loc[edits.renamed, "id"] = f"{row['chrom']}:{row['pos']}_{row['ref']}_{row['alt']}"
    twins = table.loc[edits.duplicated].copy()
    twins["alt"] = [_second_allele(r, a, rng) for r, a in zip(twins["ref"], twins["alt"])]
    is_twin = np.zeros(len(table), dtype=np.int64)
    is_twin[edits.duplicated] = 1
    # each variant moves down by the twins inserted before it; a twin sits right after its variant
    at = np.arange(len(table)) + np.cumsum(is_twin) - is_twin
    twin_at = at[edits.duplicated] + 1
    out = np.empty((dosages.shape[0], len(table) + len(twins)), dtype=np.float32)
    out[:, at] = dosages
    records = pd.concat([table.set_axis(at), twins.set_axis(twin_at)]).sort_index().reset_index(drop=True)
    for source, target in zip(edits.duplicated, twin_at):
        out[:, target] = _rare_dosages(dosages[:, source], rng)
    records["chrom"] = records["chrom"].map(_two_digit)
    return records, out


def _mfi_table(records: pd.DataFrame, dosages: np.ndarray, chrom: str) -> pd.DataFrame:
    """The mfi rows of a chromosome's BGEN records, MAF over every sample of the file.

    Args:
        records: the BGEN records (id, pos, ref, alt, info).
        dosages: their dosages, every sample.
        chrom: the chromosome's number, as the alternate IDs write it.

    Returns:
        alternate_id rsid position allele1 allele2 MAF minor_allele info, one row per record.
    """
    alt_freq = np.nan_to_num(np.nanmean(dosages, axis=0, dtype=np.float64) / 2)
    alt_minor = alt_freq <= 0.5
    return pd.DataFrame({
        "alternate_id": [f"{chrom}:{p}_{r}_{a}" for p, r, a in zip(records["pos"], records["ref"], records["alt"])],
        "rsid": records["id"].to_numpy(),
        "position": records["pos"].to_numpy(),
        "allele1": records["ref"].to_numpy(),
        "allele2": records["alt"].to_numpy(),
        "MAF": np.where(alt_minor, alt_freq, 1 - alt_freq),
        "minor_allele": np.where(alt_minor, records["alt"], records["ref"]),
        "info": records["info"].to_numpy(),
    })


def _write_imputed(cohort: _Cohort, participants: _Participants, imputed: Path, application: int,
                   duplicate_share: float, soft_sd: float, rng: np.random.Generator) -> Path:
    """Write the per-chromosome BGENs and mfi tables and the application's .sample into ``imputed``.

    Args:
        cohort: the simulated cohort.
        participants: who sits in which BGEN row.
        imputed: an existing folder.
        application: the application number in the .sample's name.
        duplicate_share: share of variants that get a split multi-allelic twin.
        soft_sd: the softening's standard deviation.
        rng: the layout's generator.

    Returns:
        The .sample file.
    """
    sample = imputed / SAMPLE_NAME.format(application=application, n=len(participants.sample_ids))
    write_sample_file(sample, participants.sample_ids, participants.sample_ids, participants.sex)
    chrom_of = cohort.variants["chrom"].to_numpy()
    for chrom in pd.unique(chrom_of):
        columns = np.flatnonzero(chrom_of == chrom)
        variants = cohort.variants.iloc[columns].reset_index(drop=True)
        edits = _pick_edits(variants, cohort.causal, duplicate_share, rng)
        dosages = _dosage_matrix(cohort.dosages[:, columns], participants, soft_sd, rng)
        records, dosages = _chromosome_records(variants, dosages, edits, rng)
        write_bgen(imputed / BGEN_NAME.format(chromosome=chrom), records, dosages, bits=8, index=True)
        _mfi_table(records, dosages, chrom).to_csv(imputed / MFI_NAME.format(chromosome=chrom), sep=" ",
                                                   header=False, index=False, float_format="%.6g")
        log.info("chromosome %s: %d records (%d split multi-allelic) for %d samples", chrom, len(records),
                 edits.duplicated.size, dosages.shape[0])
    return sample


def _write_bulk(cohort: _Cohort, participants: _Participants, bulk: Path) -> None:
    """The imaged subjects' T1 folders (links to the simulated images), an incomplete one and an unrelated one.

    Args:
        cohort: the simulated cohort.
        participants: the imaged subjects' eids and a spare one.
        bulk: the folder to fill (created).
    """
    for eid, image in zip(participants.imaged_eids, cohort.images):
        folder = bulk / f"{eid}_{T1_FIELD}_2_0" / T1_FOLDER
        folder.mkdir(parents=True)
        # absolute targets: the layout folder is staged elsewhere and renamed into place
        for name in (DEFAULT_T1_IMAGE, OTHER_T1_IMAGE):
            (folder / name).symlink_to(image.resolve())
    # an interrupted download: the subject folder is there, its image is not
    (bulk / f"{participants.spare_eid}_{T1_FIELD}_2_0" / T1_FOLDER).mkdir(parents=True)
    # another field's folder (T2 FLAIR), which a search for T1 images skips
    (bulk / f"{participants.imaged_eids[0]}_20253_2_0" / "T2_FLAIR").mkdir(parents=True)


def _write_tables(cohort_dir: Path, cohort: _Cohort, participants: _Participants, out: Path) -> None:
    """covariates.tsv in showcase coding, eids.tsv, and the simulated known loci, genes and truth.

    Args:
        cohort_dir: the simulated cohort's folder.
        cohort: the simulated cohort.
        participants: the imaged subjects' eids.
        out: the layout folder.
    """
    eid_of = dict(zip(cohort.ids, participants.imaged_eids))
    covariates = cohort.covariates.copy()
    covariates["FID"] = covariates["IID"] = participants.imaged_eids
    # field 31 codes sex as the simulation does (0 female, 1 male); field 54 codes the centre
    covariates["sex"] = covariates["sex"].astype(int)
    covariates["centre"] = _centre_codes(covariates["centre"])
    write_tsv(covariates, out / "covariates.tsv")
    write_tsv(pd.DataFrame({"subject_id": cohort.ids, "eid": participants.imaged_eids}), out / "eids.tsv")
    for key in ("known_loci", "genes"):
        if (cohort_dir / COHORT_FILES[key]).is_file():
            shutil.copy2(cohort_dir / COHORT_FILES[key], out / COHORT_FILES[key])
    truth = out / Path(COHORT_FILES["truth_loci"]).parent
    shutil.copytree(cohort_dir / Path(COHORT_FILES["truth_loci"]).parent, truth)
    # the truth's measures are per subject: key them by eid, as every table of the layout is
    measures = pd.read_csv(cohort_dir / COHORT_FILES["truth_measures"], sep="\t", dtype={"subject_id": str})
    measures["subject_id"] = measures["subject_id"].map(eid_of)
    write_tsv(measures.dropna(subset=["subject_id"]), out / COHORT_FILES["truth_measures"])


def _check_arguments(cohort_dir: Path, out_dir: Path, genotyped_multiple: int, withdrawn: int,
                     duplicate_share: float, soft_sd: float) -> None:
    """Refuse arguments the layout cannot honour.

    Raises:
        ValueError: ``out_dir`` is or holds the cohort (it is replaced), or a count or share out of range.
    """
    cohort, out = cohort_dir.resolve(), out_dir.resolve()
    if out == cohort or out in cohort.parents:
        raise ValueError(f"the layout folder {out_dir} would replace the cohort {cohort_dir}")
    if genotyped_multiple < 1 or withdrawn < 0:
        raise ValueError(f"genotyped_multiple must be >= 1 and withdrawn >= 0, not {genotyped_multiple}, {withdrawn}")
    if not 0 <= duplicate_share < 0.5 or not 0 <= soft_sd <= 0.2:
        raise ValueError(f"duplicate_share must lie in [0, 0.5) and soft_sd in [0, 0.2], not {duplicate_share}, "
                         f"{soft_sd}")


def write_ukb_layout(cohort_dir: Path, out_dir: Path, genotyped_multiple: int = 10, withdrawn: int = 2,
                     duplicate_share: float = 0.005, soft_sd: float = 0.05, seed: int = 0,
                     application: int = 12345) -> dict[str, Path]:
    """Write a simulated cohort's images, genotypes and covariates in UK Biobank's layout (see the module).

    The folder is staged beside ``out_dir`` and renamed into place, replacing an older one.

    Args:
        cohort_dir: a simulated cohort (samples.tsv, covariates.tsv, geno.bed/.bim/.fam, truth/).
        out_dir: the layout folder to write.
        genotyped_multiple: genotyped participants in the BGENs per imaged subject.
        withdrawn: participants with negative IDs in the .sample (their genotypes stay in the BGENs).
        duplicate_share: share of each chromosome's variants given a split multi-allelic twin (at least 1).
        soft_sd: standard deviation of the softening of the hard calls.
        seed: the layout's seed (eids, row order, other participants, edits).
        application: the application number in the .sample's name.

    Returns:
        ``bulk``, ``imputed`` (folders), ``bgen`` and ``mfi`` (paths with ``{chromosome}`` for the number),
        ``sample``, ``covariates``, ``eids``, ``known_loci``, ``genes`` and ``truth`` (folder).

    Raises:
        ValueError: arguments out of range, or a cohort whose files do not agree.
        FileNotFoundError: a cohort file that is not there.
    """
    cohort_dir, out_dir = Path(cohort_dir), Path(out_dir)
    _check_arguments(cohort_dir, out_dir, genotyped_multiple, withdrawn, duplicate_share, soft_sd)
    rng = np.random.default_rng([seed, 7])
    cohort = _read_cohort(cohort_dir)
    participants = _draw_participants(cohort, genotyped_multiple, withdrawn, rng)
    with staged_outputs({"out": out_dir}) as staged:
        out = staged["out"]
        (out / "imputed").mkdir(parents=True)
        _write_bulk(cohort, participants, out / "bulk")
        sample = _write_imputed(cohort, participants, out / "imputed", application, duplicate_share, soft_sd, rng)
        _write_tables(cohort_dir, cohort, participants, out)
    log.info("UK Biobank layout of %s written to %s: %d imaged of %d genotyped participants", cohort_dir, out_dir,
             len(cohort.ids), len(participants.sample_ids))
    return {
        "bulk": out_dir / "bulk", "imputed": out_dir / "imputed",
        "bgen": out_dir / "imputed" / BGEN_NAME, "mfi": out_dir / "imputed" / MFI_NAME,
        "sample": out_dir / "imputed" / sample.name, "covariates": out_dir / "covariates.tsv",
        "eids": out_dir / "eids.tsv", "known_loci": out_dir / COHORT_FILES["known_loci"],
        "genes": out_dir / COHORT_FILES["genes"], "truth": out_dir / Path(COHORT_FILES["truth_loci"]).parent,
    }
