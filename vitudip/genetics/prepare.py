"""The analysed samples' genotypes, one PLINK 2 fileset per chromosome, which every later stage reads.

UK Biobank's imputed BGENs hold all ~487,000 genotyped participants; ~40,000 have a T1. Two steps
keep every later read to the analysed samples:

* :func:`select_samples` reads the genotype sample file once and says, for every sample, whether it is
  analysed: not withdrawn (UK Biobank writes withdrawn participants as negative IDs), in the samples
  table (has an image), in the keep list.
* :func:`prepare_chromosome` writes one chromosome's selected samples as ``chr<c>.pgen/.pvar/.psam``,
  dosages kept. A BGEN is decoded by :class:`vitudip.io.bgen.BgenFile`, which turns only the selected
  rows into dosages (plink2 would first import every sample into a temporary PGEN); PLINK 1 and 2
  input is subset by plink2 ``--keep``, which reads only what it keeps. Variant IDs are made unique
  there: UK Biobank splits multi-allelic sites into records sharing one rsID, and every later stage
  keys variants by ID.

Hard calls of the written dosages are pgenlib's and plink2's default: a call when the dosage is within
0.1 of an integer, else missing (HWE, KING and the LD of the loci read hard calls; every GWAS engine
reads the dosages).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.external_tools import run_tool
from vitudip.genetics.genotype_qc import mfi_info
from vitudip.genetics.genotypes import GenotypeFiles, find_genotypes, read_pvar
from vitudip.genetics.sex import check_sex_agreement, plink_sex_codes
from vitudip.io.atomic import staged_outputs
from vitudip.io.chromosomes import canonical_chromosome, require_chromosome
from vitudip.io.genotype_files import GenotypeInput
from vitudip.io.stage_tables import SAMPLE_SELECTION
from vitudip.io.tables import match_without_zeros

log = logging.getLogger("vitudip.prepare")

#: Variants decoded and written per step (a block of samples x this many float32 dosages in memory).
PREPARE_BLOCK = 1024
#: pgenlib's code for a missing dosage.
PGEN_MISSING = -9.0


def read_keep_list(path: str | os.PathLike, genotyped: pd.Series) -> set[str]:
    """The IIDs of a keep list (one per line, or FID IID: the last field is read), checked against the samples.

    Raises:
        ValueError: no IID of the list is a genotype sample (a wrong file or ID type).
    """
    with open(path) as handle:
        ids = {line.split()[-1] for line in handle if line.strip() and not line.startswith("#")}
    known = set(genotyped)
    unmatched = sorted(ids - known)
    if ids and len(unmatched) == len(ids):
        raise ValueError(f"keep list {path}: none of its {len(ids)} IIDs is a genotype sample "
                         f"(e.g. '{unmatched[0]}'); it must hold the genotype files' IIDs")
    if unmatched:
        log.warning("keep list %s: %d of its %d IIDs match no genotype sample (e.g. '%s'); they are ignored",
                    path, len(unmatched), len(ids), unmatched[0])
    return ids & known


def selection_reasons(samples: pd.DataFrame, imaged: set[str], keep: set[str] | None,
                      keep_path: str | None) -> list[str]:
    """Why each genotype sample is not analysed ("" when it is), the first reason that applies."""
    reasons = []
    for iid in samples["IID"]:
        if iid.startswith("-"):
            reasons.append("withdrawn (negative ID)")
        elif iid not in imaged:
            reasons.append("no image")
        elif keep is not None and iid not in keep:
            reasons.append(f"not in keep list {keep_path}")
        else:
            reasons.append("")
    return reasons


def genotype_sex(files: GenotypeFiles, samples: pd.DataFrame, covariate_sex: pd.Series | None,
                 covariates_source: str) -> np.ndarray:
    """Sex of every genotype sample (PLINK codes): the genotype files', checked against the covariates' where
    both know it, or the covariates' where the genotype files carry none (plink2 and every engine use it on X)."""
    sex = files.sexes()
    if covariate_sex is None:
        return sex
    codes, _ = plink_sex_codes(covariate_sex, covariates_source)
    from_covariates = pd.Series(codes, index=covariate_sex.index).reindex(samples["IID"]).fillna(0)
    from_covariates = from_covariates.to_numpy(np.int64)
    if not np.isin(sex, (1, 2)).any():
        log.info("%s carries no sex: the covariates' is used (on chromosome X)", files.sample_file)
        return from_covariates
    check_sex_agreement(sex, from_covariates, list(samples["IID"]), files.sample_file, covariates_source)
    return sex


def selected_samples(files: GenotypeFiles, imaged: set[str], keep_path: str | None) -> pd.DataFrame:
    """Every sample of a genotype fileset (FID, IID) with why it is not analysed ("" when it is).

    Args:
        files: the fileset whose sample file lists the samples.
        imaged: subject IDs of the samples table.
        keep_path: file of the IIDs to analyse, or None for all.

    Raises:
        ValueError: no sample is selected, naming the sample file, the counts, and an ID that matches a subject
            only once leading zeros are stripped.
    """
    samples = files.samples()
    keep = None if keep_path is None else read_keep_list(keep_path, samples["IID"])
    table = samples.assign(reason=selection_reasons(samples, imaged, keep, keep_path))
    if (table["reason"] == "").any():
        return table
    zeros = match_without_zeros(list(samples["IID"]), sorted(imaged))
    hint = (f"; IID '{zeros[0]}' matches subject_id '{zeros[1]}' only once leading zeros are stripped: write the "
            "IDs alike in both" if zeros else "")
    raise ValueError(f"no sample of {files.sample_file} is analysed ({len(table)} samples; not analysed: "
                     f"{_reason_summary(table)}): the samples table's subject_id must be the genotype files' IIDs"
                     f"{hint}")


def _reason_summary(table: pd.DataFrame) -> str:
    """How many samples are not analysed for each kind of reason."""
    kinds = table.loc[table["reason"] != "", "reason"].str.replace(r"^(not in keep list) .*$", r"\1", regex=True)
    return ", ".join(f"{reason} {n}" for reason, n in kinds.value_counts().items()) or "none"


def select_samples(genotypes: GenotypeInput, chromosome: str, imaged: set[str], keep_path: str | None,
                   out: str | os.PathLike, covariate_sex: pd.Series | None = None,
                   covariates_source: str = "the covariates") -> pd.DataFrame:
    """Write ``sample_selection.tsv``: every genotype sample, its sex and why it is not analysed.

    Args:
        genotypes: the study's genotype input.
        chromosome: a chromosome whose fileset lists the samples (every chromosome's must list the same).
        imaged: subject IDs of the samples table.
        keep_path: file of the IIDs to analyse, or None for all.
        out: the table to write.
        covariate_sex: the covariates' sex column indexed by IID (PLINK or UK Biobank field-31 codes), or None.
        covariates_source: where that column comes from, for messages.

    Raises:
        ValueError: what :func:`selected_samples` refuses, or a sex coding that fits no known one or disagrees
            with the genotype files'.
    """
    files = find_genotypes(genotypes.prefix(chromosome), genotypes.sample_file)
    table = selected_samples(files, imaged, keep_path)
    sex = genotype_sex(files, table, covariate_sex, covariates_source)
    table = table.drop(columns="reason").assign(SEX=sex, reason=table["reason"])
    SAMPLE_SELECTION.write(table, out)
    log.info("%d of the %d samples of %s selected; not analysed: %s", int((table["reason"] == "").sum()),
             len(table), files.sample_file, _reason_summary(table))
    return table


def unique_variant_ids(variants: pd.DataFrame) -> tuple[pd.Series, int]:
    """Variant IDs made unique: a missing (``.``) or repeated ID becomes ``<chrom>:<pos>_<ref>_<alt>``.

    UK Biobank names a variant without rsID that way, and splits a multi-allelic site into records that
    share one rsID; each then gets its own key and is filtered by the usual rules.

    Args:
        variants: chrom, id, pos, ref, alt, in file order.

    Returns:
        (the new IDs, how many were replaced).
    """
    ids = variants["id"].astype(str)
    bad = ids.isin([".", ""]) | ids.duplicated(keep=False)
    keys = (variants["chrom"].astype(str) + ":" + variants["pos"].astype(str) + "_" + variants["ref"].astype(str)
            + "_" + variants["alt"].astype(str))
    ids = ids.where(~bad, keys)
    # identical records (same position and alleles twice) still collide: number them
    repeat = ids.groupby(ids).cumcount()
    ids = ids.where(repeat == 0, ids + "_" + (repeat + 1).astype(str))
    return ids, int(bad.sum())


def _selected(selection_path: str | os.PathLike, files: GenotypeFiles) -> pd.DataFrame:
    """The selection table, checked against this chromosome's sample file (same samples, same order)."""
    selection = SAMPLE_SELECTION.read(selection_path)
    samples = files.samples()
    same = len(samples) == len(selection) and (samples["IID"].to_numpy() == selection["IID"].to_numpy()).all()
    if not same:
        raise ValueError(f"{files.sample_file} lists {len(samples)} samples, not the {len(selection)} samples of "
                         f"{selection_path} in the same order: every chromosome's genotypes must list the same "
                         "samples (set inputs.genotype_samples for one .sample shared by every chromosome's BGEN)")
    return selection.assign(row=np.arange(len(selection)))[selection["reason"] == ""]


def _write_sample_table(selected: pd.DataFrame, path: Path) -> None:
    selected[["FID", "IID", "SEX"]].rename(columns={"FID": "#FID"}).to_csv(path, sep="\t", index=False)


def _write_variant_table(variants: pd.DataFrame, path: Path, header: list[str]) -> None:
    table = variants.rename(columns={"chrom": "#CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})
    with open(path, "w") as handle:
        handle.writelines(f"##{line}\n" for line in header)
        table[["#CHROM", "POS", "ID", "REF", "ALT"]].to_csv(handle, sep="\t", index=False)


@dataclass(frozen=True)
class InfoPrefilter:
    """BGEN records that genotype QC's INFO filter would remove, skipped before they are decoded.

    UK Biobank's mfi tables give every record's INFO without decoding it, and decoding (zlib over every
    genotyped sample) is the preparation's cost: a record below ``min_info`` is never written, so QC's own
    INFO filter, which reads the same tables with the same threshold, removes nothing more.

    Attributes:
        ukb_mfi: the mfi tables' path with ``{chromosome}`` (``genotype_qc.ukb_mfi``).
        min_info: ``genotype_qc.min_info``.
    """

    ukb_mfi: str
    min_info: float

    def kept(self, variants: pd.DataFrame) -> np.ndarray:
        """Which records to decode: INFO at least ``min_info``, or not in the mfi table (QC then decides).

        Args:
            variants: chrom, pos, id (unique), ref, alt of one chromosome's records.
        """
        table = variants.rename(columns={"chrom": "CHROM", "pos": "POS", "id": "ID", "ref": "REF", "alt": "ALT"})
        info = mfi_info(self.ukb_mfi, table).reindex(table["ID"]).to_numpy(float)
        return ~(info < self.min_info)


def _chromosome_variants(variants: pd.DataFrame, chromosome: str, per_chromosome: bool,
                         path: str) -> np.ndarray:
    """Rows of the variant table on ``chromosome`` (all of a per-chromosome file, which must hold only it)."""
    wanted = require_chromosome(chromosome, "config key 'gwas.chromosomes'")
    on = (variants["chrom"] == wanted).to_numpy()
    if per_chromosome and not on.all():
        other = variants.loc[~on, "chrom"].iloc[0]
        raise ValueError(f"{path} is chromosome {chromosome}'s file but holds variants of chromosome {other}")
    if not on.any():
        raise ValueError(f"{path} has no variant on chromosome {chromosome} (config key 'gwas.chromosomes')")
    return np.flatnonzero(on)


def _prepare_bgen(files: GenotypeFiles, chromosome: str, per_chromosome: bool, selected: pd.DataFrame,
                  staged: dict[str, Path], threads: int, prefilter: InfoPrefilter | None) -> dict[str, int]:
    """Decode the selected rows of one chromosome's BGEN into a dosage PGEN, a block of variants at a time
    (records below the prefilter's INFO skipped undecoded, their count on a ``##`` line of the .pvar)."""
    import pgenlib

    from vitudip.genetics.dosages import BgenReader

    rows = selected["row"].to_numpy(np.int64)
    with BgenReader(files, threads=threads) as bgen:
        index = _chromosome_variants(bgen.variants, chromosome, per_chromosome, bgen.variant_file)
        table = bgen.variants.iloc[index].reset_index(drop=True)
        table["id"], renamed = unique_variant_ids(table)
        header = []
        if prefilter is not None:
            kept = prefilter.kept(table)
            line = (f"vitudip_info_prefilter={int((~kept).sum())} of {len(table)} records below INFO "
                    f"{prefilter.min_info:g} in {prefilter.ukb_mfi.format(chromosome=chromosome)} not decoded")
            log.info("chromosome %s: %s", chromosome, line.split("=", 1)[1])
            header.append(line)
            index, table = index[kept], table[kept].reset_index(drop=True)
        started = time.perf_counter()
        with pgenlib.PgenWriter(bytes(staged["pgen"]), len(rows), len(index), False, dosage_present=True) as writer:
            for done, start in enumerate(range(0, len(index), PREPARE_BLOCK)):
                block = bgen.read_block(index[start:start + PREPARE_BLOCK], rows)
                block[np.isnan(block)] = PGEN_MISSING
                writer.append_dosages_batch(np.ascontiguousarray(block.T))
                if done % 100 == 0:
                    log.info("chromosome %s: %d of %d variants written", chromosome, start + block.shape[1],
                             len(index))
        seconds = time.perf_counter() - started
        n_samples = len(bgen.samples)
    _write_variant_table(table, staged["pvar"], header)
    _write_sample_table(selected, staged["psam"])
    log.info("decoded %d of the %d samples of %s at %.3f ms per variant", len(rows), n_samples, bgen.variant_file,
             1000 * seconds / max(len(index), 1))
    return {"variants": len(index), "renamed": renamed}


def _prepare_plink(files: GenotypeFiles, chromosome: str, per_chromosome: bool, selected: pd.DataFrame,
                   staged: dict[str, Path], threads: int) -> dict[str, int]:
    """Subset a PLINK 1 or 2 fileset with plink2 --keep (samples in selection order), then make IDs unique."""
    work = staged["pgen"].with_suffix("")
    keep = work.parent / "keep.txt"
    selected[["FID", "IID"]].to_csv(keep, sep="\t", index=False, header=False)
    only = [] if per_chromosome else ["--chr", str(chromosome)]
    command = ["plink2", *files.plink2_args(), "--keep", os.fspath(keep), "--indiv-sort", "f", os.fspath(keep),
               *only, "--make-pgen", "--threads", str(threads), "--out", os.fspath(work)]
    run_tool(command, f"analysed samples of chromosome {chromosome} on {files.prefix}", log, Path(f"{work}.log"))
    header, body = _split_pvar(staged["pvar"])
    variants = read_pvar(staged["pvar"])
    body["ID"], renamed = unique_variant_ids(variants)
    if files.format == "pgen":
        # plink2 drops or rewrites an INFO column its header does not declare: carry the input's own
        source = _split_pvar(Path(files.variant_file))[1]
        if "INFO" in source.columns:
            wanted = require_chromosome(chromosome, "gwas.chromosomes")
            on = slice(None) if per_chromosome else source["#CHROM"].map(canonical_chromosome) == wanted
            body["INFO"] = source.loc[on, "INFO"].to_numpy()
    with open(staged["pvar"], "w") as handle:
        handle.writelines(header)
        body.to_csv(handle, sep="\t", index=False)
    return {"variants": len(body), "renamed": renamed}


def _split_pvar(path: Path) -> tuple[list[str], pd.DataFrame]:
    """A .pvar's ``##`` lines and its table (every column as text)."""
    with open(path) as handle:
        header = []
        for line in handle:
            if not line.startswith("##"):
                break
            header.append(line)
    body = pd.read_csv(path, sep="\t", skiprows=len(header), dtype=str, keep_default_na=False)
    return header, body


def prepare_chromosome(genotypes: GenotypeInput, chromosome: str, selection_path: str | os.PathLike,
                       out_prefix: str | os.PathLike, threads: int = 1,
                       prefilter: InfoPrefilter | None = None) -> dict[str, int]:
    """Write one chromosome's selected samples as ``<out_prefix>.pgen/.pvar/.psam`` (atomically, together).

    Args:
        genotypes: the study's genotype input (one fileset, or one per chromosome).
        chromosome: the chromosome, as ``gwas.chromosomes`` writes it.
        selection_path: ``genotypes/sample_selection.tsv`` (:func:`select_samples`).
        out_prefix: the prefix to write.
        threads: threads decoding BGEN blocks, or plink2's.
        prefilter: skip a BGEN's records below this INFO before decoding them (None: decode every record; a
            PLINK input is copied whole either way).

    Returns:
        Counts: samples, variants, and IDs made unique.

    Raises:
        FileNotFoundError: the chromosome's files are missing (named).
        ValueError: the sample file does not list the selection's samples, or the chromosome has no variant.
    """
    files = find_genotypes(genotypes.prefix(chromosome), genotypes.sample_file)
    selected = _selected(selection_path, files)
    targets = {ext: f"{out_prefix}.{ext}" for ext in ("pgen", "pvar", "psam")}
    with staged_outputs(targets) as staged:
        if files.format == "bgen":
            counts = _prepare_bgen(files, chromosome, genotypes.per_chromosome, selected, staged, threads, prefilter)
        else:
            counts = _prepare_plink(files, chromosome, genotypes.per_chromosome, selected, staged, threads)
    log.info("chromosome %s: %d variants of %d samples written to %s.pgen; %d variant IDs were missing or repeated "
             "and became <chrom>:<pos>_<ref>_<alt>", chromosome, counts["variants"], len(selected), out_prefix,
             counts["renamed"])
    return {"samples": len(selected), **counts}
