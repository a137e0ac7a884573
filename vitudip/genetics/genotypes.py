"""Genotype filesets in the three formats users bring: PLINK 1, PLINK 2 and BGEN 1.2.

A fileset is named by its prefix, as plink2 and REGENIE name it. plink2,
REGENIE and the in-process engine (:mod:`vitudip.genetics.dosages`) read all
three formats natively (an imputed BGEN keeps its dosages). The workflow
reads them once, in :mod:`vitudip.genetics.prepare`, and every later stage
reads the PLINK 2 filesets written there (the LD of the loci too:
:class:`vitudip.loci.ld.LDReference` reads PLINK 1 and 2 hard calls).

BGEN files are read with the first allele as REF (``ref-first``), the UK
Biobank convention; the ALT allele is then the effect allele, as for every
engine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vitudip.genetics.sex import plink_sex_codes
from vitudip.io.chromosomes import canonical_chromosome, canonical_chromosomes
from vitudip.io.genotype_files import FORMAT_EXTENSIONS, genotype_format
from vitudip.io.plink import read_bim, read_fam

logger = logging.getLogger("vitudip.gwas")


def _psam_header_line(path: Path) -> int | None:
    """Index of the line starting with #FID or #IID, or None for a headerless (.fam-like) .psam."""
    with open(path) as handle:
        for index, line in enumerate(handle):
            if line.startswith(("#FID", "#IID")):
                return index
            if not line.startswith("#"):
                return None
    return None


def read_psam(path: str | os.PathLike) -> pd.DataFrame:
    """Read FID and IID from a .psam.

    Args:
        path: the .psam file.

    Returns:
        Frame with string FID and IID in file order; FID is "0" when the file has none.
    """
    path = Path(path)
    header_at = _psam_header_line(path)
    if header_at is None:
        table = pd.read_csv(path, sep=r"\s+", header=None, usecols=[0, 1], dtype=str,
                            keep_default_na=False, comment="#")
        return pd.DataFrame({"FID": table[0].to_numpy(), "IID": table[1].to_numpy()})
    table = pd.read_csv(path, sep=r"\s+", skiprows=header_at, dtype=str, keep_default_na=False)
    table = table.rename(columns={"#FID": "FID", "#IID": "IID"})
    fid = table["FID"] if "FID" in table.columns else "0"
    return pd.DataFrame({"FID": fid, "IID": table["IID"]})[["FID", "IID"]]


def _sex_codes(values: pd.Series) -> np.ndarray:
    """PLINK sex codes (1 male, 2 female, 0 unknown) of a text column; anything else (NA, -9) is unknown."""
    codes = pd.to_numeric(values, errors="coerce").fillna(0).to_numpy()
    return np.where(np.isin(codes, (1, 2)), codes, 0).astype(np.int64)


def read_psam_sex(path: str | os.PathLike) -> np.ndarray:
    """Sex codes of a .psam in file order: its SEX column (headerless: the 5th, as in a .fam); all 0 without one."""
    path = Path(path)
    header_at = _psam_header_line(path)
    if header_at is None:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False, comment="#")
        return _sex_codes(table[4]) if table.shape[1] > 4 else np.zeros(len(table), dtype=np.int64)
    table = pd.read_csv(path, sep=r"\s+", skiprows=header_at, dtype=str, keep_default_na=False)
    return _sex_codes(table["SEX"]) if "SEX" in table.columns else np.zeros(len(table), dtype=np.int64)


def read_sample_file(path: str | os.PathLike) -> pd.DataFrame:
    """FID (ID_1), IID (ID_2) and SEX (PLINK codes) of an Oxford .sample file (header line, then a column-type line)."""
    table = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False, skiprows=[1])
    if list(table.columns[:2]) != ["ID_1", "ID_2"]:
        raise ValueError(f"{path} is not an Oxford .sample file: its header starts {list(table.columns[:2])}, "
                         "expected ID_1 ID_2")
    frame = pd.DataFrame({"FID": table["ID_1"].to_numpy(), "IID": table["ID_2"].to_numpy()})
    # plink2 takes a .sample's sex column as 1 male, 2 female; UK Biobank's field-31 coding (0 female,
    # 1 male) is recognised, never read as "unknown females"
    sex = next((c for c in table.columns if c.lower() == "sex"), None)
    # a column of 0 alone is plink2's "unknown" (many .sample files carry no sex)
    unknown = sex is None or pd.to_numeric(table[sex], errors="coerce").fillna(0).eq(0).all()
    frame["SEX"] = 0 if unknown else plink_sex_codes(table[sex], f"{path} column '{sex}'")[0]
    return frame


def read_pvar(path: Path) -> pd.DataFrame:
    """A .pvar as the columns of :func:`~vitudip.io.plink.read_bim` (chrom in plink2's names, id, pos, alt, ref)."""
    with open(path) as handle:
        skip = 0
        for line in handle:
            if not line.startswith("##"):
                break
            skip += 1
    table = pd.read_csv(path, sep="\t", skiprows=skip, dtype=str, keep_default_na=False)
    table = table.rename(columns={"#CHROM": "CHROM"})
    missing = [c for c in ("CHROM", "POS", "ID", "REF", "ALT") if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}")
    chrom = canonical_chromosomes(table["CHROM"], str(path), first_line=skip + 2)
    return pd.DataFrame({"chrom": chrom, "id": table["ID"], "pos": table["POS"].astype("int64"),
                         "alt": table["ALT"], "ref": table["REF"]})


def variant_position(path: str, at: int) -> str:
    """Where the ``at``-th variant (from 0) of a variant table is: its line of a .bim or .pvar, its number in a
    .bgen (binary: its variants are counted, not its lines)."""
    if path.endswith(".bgen"):
        return f"variant {at + 1}"
    return f"line {at + 1 + (0 if path.endswith('.bim') else _pvar_header_lines(Path(path)))}"


def unique_ids_command(path: str, sample_file: str | None = None) -> str:
    """The plink2 command that gives every variant of a fileset its own ID, for the fileset's format.

    Args:
        path: the fileset's variant table (.bim, .pvar) or .bgen.
        sample_file: a .bgen's Oxford .sample.
    """
    if path.endswith(".bgen"):
        return (f"plink2 --bgen {path} ref-first --sample {sample_file or '<its .sample>'} --set-all-var-ids "
                "@:#:\\$r:\\$a --new-id-max-allele-len 100 --make-pgen --out <new prefix> (then set "
                "inputs.genotypes to it)")
    bed = path.endswith(".bim")
    return (f"plink2 --{'bfile' if bed else 'pfile'} {path[: path.rindex('.')]} --set-all-var-ids @:#:\\$r:\\$a "
            f"--new-id-max-allele-len 100 --make-{'bed' if bed else 'pgen'} --out <new prefix> (then set "
            "inputs.genotypes to it)")


def check_variant_ids(variants: pd.DataFrame, path: str, sample_file: str | None = None) -> None:
    """Refuse missing (``.``) or repeated variant IDs, naming the first offending line.

    Loci, candidate SNPs and the LD lookup are keyed by ID: with repeated IDs a locus
    spans unrelated variants and a candidate counts twice, silently.

    Args:
        variants: the variant table (chrom, id, pos, alt, ref) in file order.
        path: its file, for the message.
        sample_file: a .bgen's Oxford .sample, for the command the message suggests.

    Raises:
        ValueError: naming the line, the ID and how to make every ID unique.
    """
    ids = variants["id"].astype(str)
    bad = ids.isin([".", ""]) | ids.duplicated(keep=False)
    if not bad.any():
        return
    at = int(np.flatnonzero(bad.to_numpy())[0])
    row = variants.iloc[at]
    what = "missing" if ids.iloc[at] in (".", "") else "not unique"
    raise ValueError(
        f"{path} {variant_position(path, at)}: variant ID '{ids.iloc[at]}' ({row['chrom']}:{row['pos']}) is {what} "
        f"({int(bad.sum())} variants have a missing or repeated ID); give every variant its own ID first, e.g. "
        f"{unique_ids_command(path, sample_file)}")


def check_pgen(path: str, n_samples: int, n_variants: int, sample_file: str, variant_file: str) -> None:
    """A .pgen holds the samples and variants its .psam and .pvar list, up to its last variant (a truncated or
    mismatched copy is otherwise found only when the genotypes are prepared, after training).

    Args:
        path: the .pgen.
        n_samples: samples of its .psam.
        n_variants: variants of its .pvar.
        sample_file: that .psam, for the message.
        variant_file: that .pvar, for the message.

    Raises:
        ValueError: naming the .pgen, its size and what it does not hold.
    """
    import pgenlib  # only PLINK 2 filesets need it

    try:
        reader = pgenlib.PgenReader(os.fsencode(path), raw_sample_ct=n_samples, variant_ct=n_variants)
        try:
            # variants are stored in order: a file cut anywhere cannot yield its last one
            if n_variants:
                reader.read_dosages(n_variants - 1, np.empty(n_samples, np.float32))
        finally:
            reader.close()
    except RuntimeError as err:
        detail = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        raise ValueError(f"{path} ({os.path.getsize(path)} bytes) cannot be read as the genotypes of the "
                         f"{n_samples} samples of {sample_file} and the {n_variants} variants of {variant_file}: "
                         f"{' '.join(detail.split())}; a truncated or mismatched copy: copy the fileset again"
                         ) from None


def _pvar_header_lines(path: Path) -> int:
    """Lines before the first variant of a .pvar: the ## lines and the #CHROM header."""
    with open(path) as handle:
        return sum(1 for line in handle if line.startswith("#"))


@dataclass(frozen=True)
class GenotypeFiles:
    """One genotype fileset.

    Args:
        prefix: path without extension.
        format: ``bed`` (PLINK 1), ``pgen`` (PLINK 2) or ``bgen`` (BGEN 1.2 with an Oxford .sample).
        bgen_samples: a BGEN's Oxford .sample when it is not ``<prefix>.sample``.
    """

    prefix: str
    format: str
    bgen_samples: str | None = None

    @property
    def files(self) -> list[str]:
        """Every file of the fileset."""
        if self.format == "bgen":
            return [f"{self.prefix}.bgen", self.sample_file]
        return [self.prefix + ext for ext in FORMAT_EXTENSIONS[self.format]]

    def plink2_args(self) -> list[str]:
        """plink2's input flags for the fileset."""
        if self.format == "bgen":
            return ["--bgen", f"{self.prefix}.bgen", "ref-first", "--sample", self.sample_file]
        return ["--pfile" if self.format == "pgen" else "--bfile", self.prefix]

    def regenie_args(self) -> list[str]:
        """REGENIE's input flags for the fileset."""
        if self.format == "bgen":
            return ["--bgen", f"{self.prefix}.bgen", "--sample", self.sample_file, "--ref-first"]
        return [f"--{self.format}", self.prefix]

    def samples(self) -> pd.DataFrame:
        """FID and IID of every sample, as strings in file order."""
        if self.format == "bed":
            fam = read_fam(self.prefix)
            return pd.DataFrame({"FID": fam["fid"].to_numpy(), "IID": fam["iid"].to_numpy()})
        if self.format == "pgen":
            return read_psam(f"{self.prefix}.psam")
        return read_sample_file(self.sample_file)[["FID", "IID"]]

    def sexes(self) -> np.ndarray:
        """Sex of every sample in file order, as plink2 reads it (1 male, 2 female, 0 unknown): the .fam's 5th
        column, the .psam's SEX column or the .sample's sex column."""
        if self.format == "bed":
            return read_fam(self.prefix)["sex"].to_numpy(dtype=np.int64)
        if self.format == "pgen":
            return read_psam_sex(f"{self.prefix}.psam")
        return read_sample_file(self.sample_file)["SEX"].to_numpy(dtype=np.int64)

    @property
    def sample_file(self) -> str:
        """The file that lists the samples (for error messages)."""
        if self.format == "bgen" and self.bgen_samples is not None:
            return self.bgen_samples
        return self.prefix + {"bed": ".fam", "pgen": ".psam", "bgen": ".sample"}[self.format]

    @property
    def variant_file(self) -> str:
        """The file that lists the variants (for error messages)."""
        return self.prefix + {"bed": ".bim", "pgen": ".pvar", "bgen": ".bgen"}[self.format]

    def chromosomes(self) -> set[str]:
        """The chromosomes the fileset has variants on, in plink2's names, read from the variant table's
        chromosome column only (a BGEN's from its ``.bgi`` index when it fits, else its variant headers)."""
        if self.format == "bgen":
            from vitudip.io.bgen import BgenFile

            bgen = BgenFile(f"{self.prefix}.bgen")
            try:
                codes = bgen.variants["chrom"].unique()
            finally:
                bgen.close()
        elif self.format == "bed":
            codes = pd.read_csv(self.variant_file, sep=r"\s+", header=None, usecols=[0], dtype=str)[0].unique()
        else:
            with open(self.variant_file) as handle:
                skip = next(i for i, line in enumerate(handle) if not line.startswith("##"))
            codes = pd.read_csv(self.variant_file, sep="\t", skiprows=skip, usecols=[0], dtype=str).iloc[:, 0].unique()
        return {name for name in map(canonical_chromosome, codes) if name is not None}

    def variants(self) -> pd.DataFrame | None:
        """The variant table (chrom, id, pos, alt, ref), or None for BGEN (its variants live in the .bgen)."""
        if self.format == "bed":
            return read_bim(self.prefix)
        if self.format == "pgen":
            return read_pvar(Path(f"{self.prefix}.pvar"))
        return None


def find_genotypes(prefix: str | os.PathLike, bgen_samples: str | os.PathLike | None = None) -> GenotypeFiles:
    """The fileset behind a prefix: the first format whose files all exist (.pgen, then .bed, then .bgen).

    Args:
        prefix: genotype path without extension.
        bgen_samples: a BGEN's Oxford .sample when it is not ``<prefix>.sample``.

    Raises:
        FileNotFoundError: no complete fileset; names the files that are missing.
    """
    prefix = os.fspath(prefix)
    bgen_samples = None if bgen_samples is None else os.fspath(bgen_samples)
    form = genotype_format(prefix, bgen_samples)
    return GenotypeFiles(prefix, form, bgen_samples if form == "bgen" else None)
