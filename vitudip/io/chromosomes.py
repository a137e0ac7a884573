"""Chromosome names as plink2 reads them, made one spelling per chromosome.

Genotype files name chromosomes many ways (``1``/``chr1``, ``X``/``23``/``chrX``, ``XY``/``25``,
``MT``/``26``/``chrM``). Every reader turns them into plink2's own output names, so that a
chromosome compares equal whatever the file called it, and an engine knows its ploidy:

* ``1``-``22``; ``X`` (code 23, non-PAR X: males hemizygous); ``Y`` (24); ``XY`` (25, the
  pseudo-autosomal region as one contig, as UK Biobank's arrays code it); ``MT`` (26);
* ``PAR1`` and ``PAR2``: what ``plink2 --split-par <build>`` names the X variants inside the
  pseudo-autosomal regions. plink2 keeps them apart from ``XY`` (``--chr XY`` does not select
  them), so they stay apart here.

The numeric codes are plink2's (23-26), not GWAS-SSF's (where 25 is MT):
:func:`vitudip.genetics.sumstats.ssf_chromosome` does that last step.
"""

from __future__ import annotations

import pandas as pd

#: Names of plink2's numeric codes above 22.
_NAME_OF_CODE = {"23": "X", "24": "Y", "25": "XY", "26": "MT"}

#: Other spellings (upper case, without a "chr" prefix) and the name they stand for.
_ALIASES = {"X": "X", "Y": "Y", "XY": "XY", "M": "MT", "MT": "MT", "PAR1": "PAR1", "PAR2": "PAR2"}

#: Chromosomes whose genotypes are diploid in both sexes (besides the autosomes).
PSEUDO_AUTOSOMAL = frozenset({"XY", "PAR1", "PAR2"})

#: What the codes may be, for messages.
ACCEPTED = "1-22, X/23, Y/24, XY/25 (PAR), MT/26/M, PAR1/PAR2, each with or without a 'chr' prefix"


def canonical_chromosome(name: str | int) -> str | None:
    """plink2's name of a chromosome code, or None when plink2 would not read it as a human chromosome.

    Args:
        name: e.g. 1, "01", "chr1", "X", "chrX", "23", "25", "chrM", "PAR1".

    Returns:
        "1"-"22", "X", "Y", "XY", "MT", "PAR1" or "PAR2".
    """
    text = str(name).strip()
    if text[:3].lower() == "chr":
        text = text[3:]
    text = text.upper()
    if text.isdigit():
        number = int(text)
        if 1 <= number <= 22:
            return str(number)
        return _NAME_OF_CODE.get(str(number))
    return _ALIASES.get(text)


def require_chromosome(name: str | int, where: str) -> str:
    """:func:`canonical_chromosome`, or a ValueError naming ``where`` the code came from."""
    canonical = canonical_chromosome(name)
    if canonical is None:
        raise ValueError(f"{where}: chromosome '{name}' is not a code plink2 reads ({ACCEPTED})")
    return canonical


def canonical_chromosomes(names: pd.Series, path: str, first_line: int, unit: str = "line") -> pd.Series:
    """A variant table's chromosome column in plink2's names, refusing a code it cannot interpret.

    Args:
        names: the column as read, in file order.
        path: its file, for the message.
        first_line: the line (1-based) of the first variant, or its number when ``unit`` is "variant".
        unit: what the message counts: "line" (text files) or "variant" (a .bgen).

    Raises:
        ValueError: naming the file, the line (or variant) of the first unreadable code, and what to do.
    """
    text = names.astype(str)
    mapping = {name: canonical_chromosome(name) for name in text.unique()}
    bad = [name for name, canonical in mapping.items() if canonical is None]
    if bad:
        at = int(text.isin(bad).to_numpy().argmax())
        count = int(text.isin(bad).sum())
        raise ValueError(
            f"{path} {unit} {first_line + at}: chromosome '{text.iloc[at]}' is not a code plink2 reads ({ACCEPTED}); "
            f"{count} variant(s) have such codes ({', '.join(repr(b) for b in sorted(bad)[:5])}): rename them or "
            f"drop them first, e.g. plink2 ... --allow-extra-chr --not-chr {sorted(bad)[0]} --make-pgen "
            f"--out <new prefix>")
    return text.map(mapping)
