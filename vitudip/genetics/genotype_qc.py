"""Genotype QC before any GWAS: which samples and variants every engine analyses.

plink2 computes the statistics (``--missing``, ``--freq counts``, ``--hardy``,
``--king-cutoff``); this module applies the thresholds and counts what each
removes, so the counts are exact and stated in one order.

Samples (``sample_qc.tsv``, one row per genotype sample, the first reason that applies):
not in the samples table ("no image"), not in the keep list, genotype call rate below
``1 - max_sample_missing``; then, among the rest, one of each pair with KING kinship
>= ``king_cutoff`` (``plink2 --king-cutoff``), status ``related``: the pheno stage drops
them for the linear engines and keeps them for REGENIE, which models relatedness.

Variants (``variant_qc.tsv``, ``variants_pass.txt``), over the samples that pass, each
filter counting only the variants it newly removes, in this order: call rate, MAF,
minor-allele count, imputation INFO, Hardy–Weinberg p. INFO comes from the .pvar's
INFO column (``INFO=``, or minimac's ``R2=``) or from UK Biobank ``ukb_mfi`` tables;
an input without INFO skips the INFO filter with a logged note unless ``require_info``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitudip.external_tools import run_tool
from vitudip.genetics.genotypes import GenotypeFiles, check_variant_ids, find_genotypes
from vitudip.genetics.settings import QcSettings
from vitudip.io.atomic import staged_outputs
from vitudip.io.stage_tables import SAMPLE_QC, VARIANT_QC

log = logging.getLogger("vitudip.genotype_qc")

#: Columns of a UK Biobank ``ukb_mfi_chr*_v3.txt`` table (headerless, whitespace-separated).
MFI_COLUMNS = ("alternate_id", "rsid", "position", "allele1", "allele2", "maf", "minor_allele", "info")
#: The INFO-column keys that hold imputation quality: IMPUTE/BGEN INFO, minimac R².
INFO_KEYS = re.compile(r"(?:^|;)(?:INFO|R2)=([^;]+)")


# --------------------------------------------------------------------------- plink2


def plink2_on(genotypes: GenotypeFiles, step: str, args: list[str], out: Path, threads: int) -> None:
    """Run plink2 on the fileset with ``args``, writing ``<out>.*``.

    Args:
        genotypes: the fileset read.
        step: what the run is for; the error adds the fileset's prefix.
        args: plink2's flags besides the input, --threads and --out.
        out: plink2 --out prefix.
        threads: plink2 --threads.

    Raises:
        ToolError: plink2 is missing or failed, with its log's tail.
    """
    command = ["plink2", *genotypes.plink2_args(), *args, "--threads", str(threads), "--out", os.fspath(out)]
    run_tool(command, f"{step} on {genotypes.prefix}", log, Path(f"{out}.log"))


def _read_plink(path: Path) -> pd.DataFrame:
    """A plink2 report (tab-separated, header with a leading #), IDs as text."""
    table = pd.read_csv(path, sep="\t", dtype={"#CHROM": str, "ID": str, "#FID": str, "FID": str, "IID": str,
                                                "#IID": str}, keep_default_na=False, na_values=["NA", "nan"])
    return table.rename(columns={"#CHROM": "CHROM", "#FID": "FID", "#IID": "IID"})


def _write_ids(samples: pd.DataFrame, path: Path) -> Path:
    samples[["FID", "IID"]].to_csv(path, sep="\t", index=False, header=False)
    return path


# --------------------------------------------------------------------------- samples


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


def sample_reasons(genotypes: GenotypeFiles, samples: pd.DataFrame, imaged: set[str], settings: QcSettings,
                   work: Path, threads: int) -> dict[str, str]:
    """IID -> reason for samples dropped before the variant QC: no image, keep list, call rate."""
    reasons = {iid: "no image" for iid in samples["IID"] if iid not in imaged}
    if settings.keep is not None:
        keep = read_keep_list(settings.keep, samples["IID"])
        reasons.update({iid: f"not in keep list {settings.keep}" for iid in samples["IID"]
                        if iid not in keep and iid not in reasons})
    candidates = samples[~samples["IID"].isin(reasons)]
    if candidates.empty:
        raise ValueError(f"no genotype sample of {genotypes.sample_file} is in the samples table and keep list")
    plink2_on(genotypes, "sample call rates", ["--keep", os.fspath(_write_ids(candidates, work / "candidates.txt")),
                                                "--missing", "sample-only"], work / "samples", threads)
    smiss = _read_plink(work / "samples.smiss")
    limit = 1 - settings.max_sample_missing
    for iid, missing in zip(smiss["IID"], smiss["F_MISS"].astype(float)):
        if missing > settings.max_sample_missing:
            reasons[iid] = f"genotype call rate {1 - missing:.3g} < {limit:g}"
    return reasons


def related_reasons(genotypes: GenotypeFiles, passing: pd.DataFrame, variants: Path, cutoff: float,
                    work: Path, threads: int) -> dict[str, str]:
    """IID -> "related ... to <IID>" for the samples ``plink2 --king-cutoff`` removes from ``passing``.

    The relative named is one the sample stays related to among those kept, else its closest one.
    """
    out = work / "king"
    plink2_on(genotypes, "KING relatedness", ["--keep", os.fspath(_write_ids(passing, work / "passing.txt")),
                                              "--extract", os.fspath(variants), "--king-cutoff", f"{cutoff:g}",
                                              "--make-king-table", "--king-table-filter", f"{cutoff:g}"], out, threads)
    removed = set(_read_plink(Path(f"{out}.king.cutoff.out.id"))["IID"])
    pairs = pd.read_csv(f"{out}.kin0", sep="\t", dtype=str, keep_default_na=False)
    pairs = pairs.rename(columns={"#FID1": "FID1", "#IID1": "IID1"}).astype({"KINSHIP": float})
    pairs = pairs.sort_values("KINSHIP", ascending=False)
    reasons = {}
    for iid in sorted(removed):
        mine = pairs[(pairs["IID1"] == iid) | (pairs["IID2"] == iid)]
        others = np.where(mine["IID1"] == iid, mine["IID2"], mine["IID1"])
        kept = [other for other in others if other not in removed]
        relative = kept[0] if kept else others[0]
        kinship = float(mine["KINSHIP"].to_numpy()[list(others).index(relative)])
        reasons[iid] = f"related (KING kinship {kinship:.3f} >= {cutoff:g}) to {relative}"
    return reasons


# --------------------------------------------------------------------------- variants


def _pvar_info(path: Path) -> pd.Series | None:
    """Imputation INFO per variant from a .pvar's INFO column (NaN where absent), or None without one."""
    with open(path) as handle:
        skip = 0
        for line in handle:
            if not line.startswith("##"):
                header = line.rstrip("\n").split("\t")
                break
            skip += 1
    if "INFO" not in header:
        return None
    info = pd.read_csv(path, sep="\t", skiprows=skip, usecols=["ID", "INFO"], dtype=str, keep_default_na=False)
    values = pd.to_numeric(info["INFO"].str.extract(INFO_KEYS, expand=False), errors="coerce")
    if values.isna().all():
        return None
    return pd.Series(values.to_numpy(), index=info["ID"].to_numpy())


def _allele_pair(table: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """The table with columns a <= b: its two alleles in sorted order (the mfi's allele1 need not be REF)."""
    x, y = table[first].astype(str), table[second].astype(str)
    return table.assign(a=x.where(x <= y, y), b=y.where(x <= y, x))


def _mfi_info(pattern: str, variants: pd.DataFrame) -> pd.Series:
    """INFO per variant ID from UK Biobank mfi tables, matched on chromosome, position and both alleles."""
    keys = _allele_pair(variants, "REF", "ALT")
    found = []
    for chrom, group in keys.groupby("CHROM", sort=False):
        path = pattern.format(chromosome=chrom)
        mfi = pd.read_csv(path, sep=r"\s+", header=None, names=list(MFI_COLUMNS),
                          dtype={"allele1": str, "allele2": str})
        if not pd.api.types.is_numeric_dtype(mfi["info"]) or not pd.api.types.is_integer_dtype(mfi["position"]):
            raise ValueError(f"ukb_mfi table {path} is not a headerless mfi table ({' '.join(MFI_COLUMNS)}): "
                             "its position or info column is not numeric")
        mfi = _allele_pair(mfi, "allele1", "allele2")
        merged = group.merge(mfi[["position", "a", "b", "info"]].drop_duplicates(["position", "a", "b"]),
                             left_on=["POS", "a", "b"], right_on=["position", "a", "b"], how="left")
        found.append(pd.Series(merged["info"].to_numpy(), index=group["ID"].to_numpy()))
    return pd.concat(found)


def variant_info(genotypes: GenotypeFiles, variants: pd.DataFrame, settings: QcSettings) -> pd.Series | None:
    """Imputation INFO by variant ID (NaN: none for that variant), or None when the input carries none.

    Raises:
        ValueError: ``require_info`` and no INFO source, naming the variant file.
    """
    if settings.ukb_mfi is not None:
        return _mfi_info(settings.ukb_mfi, variants)
    info = _pvar_info(Path(genotypes.variant_file)) if genotypes.format == "pgen" else None
    if info is None and settings.require_info:
        raise ValueError(f"genotype_qc.require_info is true but {genotypes.variant_file} carries no imputation INFO "
                         "(an INFO column with INFO= or R2= per variant) and genotype_qc.ukb_mfi is not set")
    if info is None:
        log.info("INFO filter skipped: %s carries no imputation INFO (INFO= or R2=) and genotype_qc.ukb_mfi is "
                 "not set (hard calls)", genotypes.variant_file)
    return info


def _alt_counts(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Total and largest ALT allele count per variant from plink2's ALT_CTS (comma-separated when multi-allelic)."""
    parts = cells.astype(str).str.split(",", expand=True).apply(pd.to_numeric, errors="coerce").fillna(0)
    return parts.sum(axis=1).to_numpy(float), parts.max(axis=1).to_numpy(float)


def variant_statistics(genotypes: GenotypeFiles, passing: pd.DataFrame, work: Path, threads: int) -> pd.DataFrame:
    """Per variant over the passing samples: CHROM, POS, ID, REF, ALT, missing share, MAF, MAC and HWE p."""
    out = work / "variants"
    plink2_on(genotypes, "variant QC statistics", ["--keep", os.fspath(_write_ids(passing, work / "passing.txt")),
                                                   "--freq", "counts", "cols=chrom,pos,ref,alt,altfreq,nobs",
                                                   "--hardy", "--missing", "variant-only"], out, threads)
    table = _read_plink(Path(f"{out}.acount"))
    if genotypes.format == "bgen":  # its variants are known only from plink2's report
        check_variant_ids(table.rename(columns={"CHROM": "chrom", "ID": "id", "POS": "pos"}), genotypes.variant_file)
    observed = table["OBS_CT"].to_numpy(float)
    alt_total, alt_largest = _alt_counts(table["ALT_CTS"])
    # the minor allele is every allele but the most common one
    mac = observed - np.maximum(observed - alt_total, alt_largest)
    table["MAC"] = mac
    table["MAF"] = np.divide(mac, observed, out=np.zeros_like(mac), where=observed > 0)
    vmiss = _read_plink(Path(f"{out}.vmiss")).set_index("ID")
    table["F_MISS"] = vmiss["F_MISS"].reindex(table["ID"]).to_numpy(float)
    # chrX's test is on females (.hardy.x); variants with no test (haploid chromosomes) keep p NaN and pass
    hardy = [_read_plink(p)[["ID", "P"]] for p in (Path(f"{out}.hardy"), Path(f"{out}.hardy.x")) if p.is_file()]
    p = pd.concat(hardy).set_index("ID")["P"] if hardy else pd.Series(dtype=float)
    table["HWE_P"] = p.reindex(table["ID"]).to_numpy(float)
    return table


def apply_variant_filters(stats: pd.DataFrame, info: pd.Series | None,
                          settings: QcSettings) -> tuple[np.ndarray, pd.DataFrame]:
    """Which variants pass, and the counts per chromosome of what each filter newly removes.

    Returns:
        (boolean mask over ``stats`` rows, the VARIANT_QC table with a last row ``all``).
    """
    failing = {
        "call_rate": stats["F_MISS"].to_numpy(float) > settings.max_variant_missing,
        "maf": stats["MAF"].to_numpy(float) < settings.min_maf,
        "mac": stats["MAC"].to_numpy(float) < settings.min_mac,
        # a variant without an INFO value (a typed one beside imputed ones) passes
        "info": (np.zeros(len(stats), bool) if info is None
                 else info.reindex(stats["ID"]).to_numpy(float) < settings.min_info),
        "hwe": stats["HWE_P"].to_numpy(float) < settings.hwe_p,
    }
    remaining = np.ones(len(stats), bool)
    removed = {}
    for name, fails in failing.items():
        removed[name] = remaining & fails
        remaining &= ~fails
    chrom = stats["CHROM"].to_numpy()
    rows = []
    for label, rows_of in [*((c, chrom == c) for c in pd.unique(chrom)), ("all", np.ones(len(stats), bool))]:
        row = {"chromosome": label, "variants": int(rows_of.sum())}
        row.update({f"removed_{name}": int((mask & rows_of).sum()) for name, mask in removed.items()})
        row["passing"] = int((remaining & rows_of).sum())
        rows.append(row)
    return remaining, pd.DataFrame(rows, columns=list(VARIANT_QC.required))


# --------------------------------------------------------------------------- the stage


def genotype_qc(genotype_prefix: str | os.PathLike, imaged: set[str], settings: QcSettings,
                out: dict[str, str | os.PathLike], threads: int = 1) -> dict[str, Any]:
    """Write ``sample_qc.tsv``, ``variant_qc.tsv`` and ``variants_pass.txt`` (atomically, together).

    Args:
        genotype_prefix: PLINK 1, PLINK 2 or BGEN fileset.
        imaged: subject IDs of the samples table (QC runs on the genotyped subjects with an image).
        settings: thresholds.
        out: paths for "samples", "variants" and "passing".
        threads: plink2 --threads.

    Returns:
        Summary: samples by status, variants in and passing.
    """
    genotypes = find_genotypes(genotype_prefix)
    # every engine's --extract and every later stage key variants by ID (BGEN's: variant_statistics)
    variants = genotypes.variants()
    if variants is not None:
        check_variant_ids(variants, genotypes.variant_file)
    samples = genotypes.samples()
    with tempfile.TemporaryDirectory(prefix="vitudip-qc-") as tmp:
        work = Path(tmp)
        reasons = sample_reasons(genotypes, samples, imaged, settings, work, threads)
        passing = samples[~samples["IID"].isin(reasons)]
        if passing.empty:
            raise ValueError(f"no sample of {genotypes.sample_file} passes the sample QC: {_counts(reasons)}")
        stats = variant_statistics(genotypes, passing, work, threads)
        info = variant_info(genotypes, stats, settings)
        kept, table = apply_variant_filters(stats, info, settings)
        if not kept.any():
            raise ValueError(f"no variant of {genotypes.variant_file} passes the variant QC:\n"
                             f"{table.to_string(index=False)}")
        ids = work / "variants_pass.txt"
        stats.loc[kept, ["ID"]].to_csv(ids, header=False, index=False)
        related = {}
        if settings.king_cutoff is not None:
            related = related_reasons(genotypes, passing, ids, settings.king_cutoff, work, threads)
        status = ["excluded" if iid in reasons else "related" if iid in related else "ok" for iid in samples["IID"]]
        sample_table = samples.assign(status=status,
                                      reason=[reasons.get(iid, related.get(iid, "")) for iid in samples["IID"]])
        with staged_outputs(out) as staged:
            SAMPLE_QC.write(sample_table, staged["samples"])
            VARIANT_QC.write(table, staged["variants"])
            stats.loc[kept, ["ID"]].to_csv(staged["passing"], header=False, index=False)
    for iid, reason in related.items():
        log.info("sample %s: %s", iid, reason)
    log.info("samples: %s; related: %d (king_cutoff %s)", _counts(reasons) or "none dropped", len(related),
             settings.king_cutoff)
    log.info("variants removed per filter, in order:\n%s", table.to_string(index=False))
    return {"samples": pd.Series(status).value_counts().to_dict(), "variants": int(len(stats)),
            "passing": int(kept.sum())}


def _counts(reasons: dict[str, str]) -> str:
    """``no image 3, genotype call rate ... 1`` by reason kind (the text before any number)."""
    kinds = pd.Series([re.split(r" \d|\(|<", r)[0].strip() for r in reasons.values()], dtype=str)
    return ", ".join(f"{kind} {n}" for kind, n in kinds.value_counts().items())
