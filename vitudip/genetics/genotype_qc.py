"""Genotype QC before any GWAS: which samples and variants every engine analyses.

It reads the per-chromosome filesets of the selected samples (:mod:`vitudip.genetics.prepare`).
plink2 computes the statistics (``--freq counts``, ``--hardy``, ``--missing``, ``--indep-pairwise``,
``--king-cutoff``); this module applies the thresholds and counts what each removes, so the counts are
exact and stated in one order.

Variants first (``variant_qc.tsv``, ``variants_pass.txt``), over the selected samples, each filter
counting only the variants it newly removes, in this order: call rate (of dosages, as the samples'
below), MAF, minor-allele count,
imputation INFO, Hardy–Weinberg p. INFO comes from the .pvar's INFO column (``INFO=``, or minimac's
``R2=``) or from UK Biobank ``ukb_mfi`` tables; an input without INFO skips the INFO filter with a
logged note unless ``require_info``.

Samples then (``sample_qc.tsv``, one row per genotype sample, the first reason that applies): not
selected (withdrawn, no image, keep list: ``sample_selection.tsv``); call rate below
``1 - max_sample_missing`` over the passing variants, a genotype counting as called when it has a
dosage (plink2's ``fmissdosage``: for imputed data, a missing hard call at plink2's 0.1 threshold
measures imputation certainty, not the sample); then, among the rest, one of each pair with KING
kinship >= ``king_cutoff``, status ``related``: the pheno stage drops them for the linear engines and
keeps them for REGENIE, which models relatedness.

Relatedness, the genetic PCs and REGENIE's step 1 read ``pruned``: the passing autosomal variants with
MAF >= ``pruning.min_maf`` and INFO >= ``pruning.min_info`` (where INFO is known), LD-pruned with
``plink2 --indep-pairwise <window_kb>kb 1 <r2>``: common, well-imputed, nearly independent variants,
as UK Biobank's own kinship and PCA used (Bycroft et al., Nature 562:203, 2018).
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
from vitudip.io.stage_tables import SAMPLE_QC, SAMPLE_SELECTION, VARIANT_QC

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


def sample_call_rates(chromosomes: list[GenotypeFiles], passing: Path, work: Path, threads: int) -> pd.Series:
    """Each sample's share of the passing variants with a dosage, over every chromosome (IID -> rate)."""
    missing, observed = None, None
    for number, files in enumerate(chromosomes):
        out = work / f"smiss{number}"
        plink2_on(files, "sample call rates", ["--extract", os.fspath(passing), "--missing", "sample-only",
                                               "scols=maybefid,nmissdosage,nobs"], out, threads)
        table = _read_plink(Path(f"{out}.smiss")).set_index("IID")
        missing = table["MISSING_DOSAGE_CT"] if missing is None else missing + table["MISSING_DOSAGE_CT"]
        observed = table["OBS_CT"] if observed is None else observed + table["OBS_CT"]
    return 1 - missing.astype(float) / observed.astype(float).clip(lower=1)


def call_rate_reasons(rates: pd.Series, settings: QcSettings, sample_file: str) -> dict[str, str]:
    """IID -> reason for the samples whose call rate is below ``1 - max_sample_missing``.

    Raises:
        ValueError: the filter would drop more than half the samples (a threshold wrong for the data, not
            half a cohort of bad samples), naming the key.
    """
    limit = 1 - settings.max_sample_missing
    failing = rates[rates < limit]
    if len(failing) > len(rates) / 2:
        raise ValueError(
            f"genotype_qc.max_sample_missing {settings.max_sample_missing:g} would drop {len(failing)} of the "
            f"{len(rates)} selected samples of {sample_file} (median call rate {rates.median():.3g} over the "
            "passing variants, a genotype counting as called when it has a dosage): check the genotypes, or raise "
            "the threshold")
    return {iid: f"genotype call rate {rate:.3g} < {limit:g}" for iid, rate in failing.items()}


def related_reasons(genotypes: GenotypeFiles, passing: pd.DataFrame, cutoff: float, work: Path,
                    threads: int) -> dict[str, str]:
    """IID -> "related ... to <IID>" for the samples ``plink2 --king-cutoff`` removes from ``passing``.

    Args:
        genotypes: the pruned variants (:func:`pruned_variants`).
        passing: FID and IID of the samples that passed the call-rate filter.
        cutoff: the kinship from which a pair counts as related.
        work: a scratch folder.
        threads: plink2 --threads.

    The relative named is one the sample stays related to among those kept, else its closest one.
    """
    out = work / "king"
    plink2_on(genotypes, "KING relatedness", ["--keep", os.fspath(_write_ids(passing, work / "passing.txt")),
                                              "--king-cutoff", f"{cutoff:g}", "--make-king-table",
                                              "--king-table-filter", f"{cutoff:g}"], out, threads)
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


def mfi_info(pattern: str, variants: pd.DataFrame) -> pd.Series:
    """INFO per variant ID from UK Biobank mfi tables, matched on chromosome, position and both alleles.

    Args:
        pattern: the mfi tables' path with ``{chromosome}`` for the chromosome's name.
        variants: CHROM, POS, REF, ALT and (unique) ID of the variants.

    Returns:
        INFO by ID (NaN where the table lacks the variant).
    """
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
        return mfi_info(settings.ukb_mfi, variants)
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


def variant_statistics(genotypes: GenotypeFiles, work: Path, threads: int) -> pd.DataFrame:
    """Per variant over the fileset's samples: CHROM, POS, ID, REF, ALT, missing share, MAF, MAC and HWE p."""
    out = work / "variants"
    plink2_on(genotypes, "variant QC statistics", ["--freq", "counts", "cols=chrom,pos,ref,alt,altfreq,nobs",
                                                   "--hardy", "--missing", "variant-only",
                                                   "vcols=chrom,pos,nmissdosage,nobs,fmissdosage"], out, threads)
    table = _read_plink(Path(f"{out}.acount"))
    observed = table["OBS_CT"].to_numpy(float)
    alt_total, alt_largest = _alt_counts(table["ALT_CTS"])
    # the minor allele is every allele but the most common one
    mac = observed - np.maximum(observed - alt_total, alt_largest)
    table["MAC"] = mac
    table["MAF"] = np.divide(mac, observed, out=np.zeros_like(mac), where=observed > 0)
    vmiss = _read_plink(Path(f"{out}.vmiss")).set_index("ID")
    # a genotype without a dosage is missing; imputed soft dosages are no missing calls
    table["F_MISS"] = vmiss["F_MISS_DOSAGE"].reindex(table["ID"]).to_numpy(float)
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


# --------------------------------------------------------------------------- the pruned variants


def _prune_candidates(stats: pd.DataFrame, info: pd.Series | None, kept: np.ndarray, settings: QcSettings,
                      path: Path) -> int:
    """Write the IDs of the passing autosomal variants common and well-imputed enough to prune from."""
    pruning = settings.pruning
    wanted = kept & (stats["MAF"].to_numpy(float) >= pruning["min_maf"])
    wanted &= stats["CHROM"].astype(str).str.fullmatch(r"\d+").to_numpy()
    if info is not None:
        # a variant without INFO (a typed one) counts as well measured
        wanted &= ~(info.reindex(stats["ID"]).to_numpy(float) < pruning["min_info"])
    stats.loc[wanted, ["ID"]].to_csv(path, header=False, index=False)
    return int(wanted.sum())


def pruned_variants(chromosomes: list[GenotypeFiles], candidates: Path, samples: pd.DataFrame, settings: QcSettings,
                    out_prefix: Path, work: Path, threads: int) -> GenotypeFiles:
    """The pruned variants of ``samples`` as one PLINK 2 fileset: each chromosome pruned, then merged.

    Raises:
        ValueError: no variant is left to prune from (no autosome, or none common enough).
    """
    keep = _write_ids(samples, work / "pruning_samples.txt")
    pruning = settings.pruning
    # plink2 refuses LD estimates from fewer than 50 samples unless told (a test study's size)
    few = ["--bad-ld"] if len(samples) < 50 else []
    if few:
        log.warning("LD pruning on %d samples (fewer than 50): its r² are rough", len(samples))
    parts = []
    for number, files in enumerate(chromosomes):
        out = work / f"prune{number}"
        plink2_on(files, "LD pruning", ["--keep", os.fspath(keep), "--extract", os.fspath(candidates),
                                        "--indep-pairwise", f"{pruning['window_kb']}kb", "1", f"{pruning['r2']:g}",
                                        *few],
                  out, threads)
        kept = Path(f"{out}.prune.in")
        if kept.is_file() and kept.stat().st_size:
            plink2_on(files, "pruned variants", ["--keep", os.fspath(keep), "--extract", os.fspath(kept),
                                                 "--make-pgen"], work / f"pruned{number}", threads)
            parts.append(work / f"pruned{number}")
    if not parts:
        raise ValueError("no variant is left for relatedness and PCs: none of the passing autosomal variants has "
                         f"MAF >= {pruning['min_maf']:g} and INFO >= {pruning['min_info']:g} (genotype_qc.pruning)")
    first, *others = parts
    if not others:
        for ext in ("pgen", "pvar", "psam"):
            os.replace(f"{first}.{ext}", f"{out_prefix}.{ext}")
    else:
        merge_list = work / "merge_list.txt"
        merge_list.write_text("".join(f"{part}\n" for part in others))
        plink2_on(GenotypeFiles(os.fspath(first), "pgen"), "merging the pruned variants",
                  ["--pmerge-list", os.fspath(merge_list), "--make-pgen"], out_prefix, threads)
    return GenotypeFiles(os.fspath(out_prefix), "pgen")


# --------------------------------------------------------------------------- the stage


def variant_qc(chromosomes: list[GenotypeFiles], settings: QcSettings, work: Path,
               threads: int) -> tuple[pd.DataFrame, pd.Series | None, np.ndarray, pd.DataFrame]:
    """Statistics, INFO and the filters of every chromosome's variants: (stats, info, passing mask, table)."""
    stats, infos = [], []
    for files in chromosomes:
        table = variant_statistics(files, work, threads)
        stats.append(table)
        infos.append(variant_info(files, table, settings))
    stats = pd.concat(stats, ignore_index=True)
    # every engine's --extract and every later stage key variants by ID, across chromosomes too
    check_variant_ids(stats.rename(columns={"CHROM": "chrom", "ID": "id", "POS": "pos"}),
                      ", ".join(files.variant_file for files in chromosomes))
    known = [info for info in infos if info is not None]
    info = pd.concat(known) if known else None
    kept, table = apply_variant_filters(stats, info, settings)
    if not kept.any():
        raise ValueError(f"no variant of {', '.join(files.prefix for files in chromosomes)} passes the variant QC:\n"
                         f"{table.to_string(index=False)}")
    return stats, info, kept, table


def genotype_qc(chromosome_prefixes: list[str | os.PathLike], selection_path: str | os.PathLike,
                settings: QcSettings, out: dict[str, str | os.PathLike], threads: int = 1) -> dict[str, Any]:
    """Write ``sample_qc.tsv``, ``variant_qc.tsv``, ``variants_pass.txt`` and the pruned fileset (together).

    Args:
        chromosome_prefixes: the per-chromosome filesets of the selected samples (``genotypes/chr<c>``).
        selection_path: ``genotypes/sample_selection.tsv``, every genotype sample and why it is not selected.
        settings: thresholds.
        out: paths for "samples", "variants", "passing" and "pruned" (a prefix: .pgen/.pvar/.psam).
        threads: plink2 --threads.

    Returns:
        Summary: samples by status, variants in and passing, pruned variants.
    """
    chromosomes = [find_genotypes(prefix) for prefix in chromosome_prefixes]
    selection = SAMPLE_SELECTION.read(selection_path)
    reasons = {iid: reason for iid, reason in zip(selection["IID"], selection["reason"]) if reason}
    targets = {"samples": out["samples"], "variants": out["variants"], "passing": out["passing"],
               **{ext: f"{out['pruned']}.{ext}" for ext in ("pgen", "pvar", "psam")}}
    with tempfile.TemporaryDirectory(prefix="vitudip-qc-") as tmp, staged_outputs(targets) as staged:
        work = Path(tmp)
        stats, info, kept, table = variant_qc(chromosomes, settings, work, threads)
        stats.loc[kept, ["ID"]].to_csv(staged["passing"], header=False, index=False)
        reasons.update(call_rate_reasons(sample_call_rates(chromosomes, staged["passing"], work, threads), settings,
                                         selection_path))
        passing = selection[~selection["IID"].isin(reasons)]
        n_candidates = _prune_candidates(stats, info, kept, settings, work / "candidates.txt")
        pruned = pruned_variants(chromosomes, work / "candidates.txt", passing, settings,
                                 staged["pgen"].with_suffix(""), work, threads)
        related = {}
        if settings.king_cutoff is not None:
            related = related_reasons(pruned, passing, settings.king_cutoff, work, threads)
        status = ["excluded" if iid in reasons else "related" if iid in related else "ok" for iid in selection["IID"]]
        sample_table = selection[["FID", "IID"]].assign(
            status=status, reason=[reasons.get(iid, related.get(iid, "")) for iid in selection["IID"]])
        SAMPLE_QC.write(sample_table, staged["samples"])
        VARIANT_QC.write(table, staged["variants"])
        n_pruned = len(pruned.variants())
    for iid, reason in related.items():
        log.info("sample %s: %s", iid, reason)
    log.info("samples: %s; related: %d (king_cutoff %s)", _counts(reasons) or "none dropped", len(related),
             settings.king_cutoff)
    log.info("variants removed per filter, in order:\n%s", table.to_string(index=False))
    log.info("relatedness, PCs and REGENIE step 1 read %d pruned variants of the %d common, well-imputed passing "
             "ones (%s.pgen)", n_pruned, n_candidates, out["pruned"])
    return {"samples": pd.Series(status).value_counts().to_dict(), "variants": int(len(stats)),
            "passing": int(kept.sum()), "pruned": n_pruned}


def _counts(reasons: dict[str, str]) -> str:
    """``no image 3, genotype call rate ... 1`` by reason kind (the text before any number)."""
    kinds = pd.Series([re.split(r" \d|\(|<", r)[0].strip() for r in reasons.values()], dtype=str)
    return ", ".join(f"{kind} {n}" for kind, n in kinds.value_counts().items())
