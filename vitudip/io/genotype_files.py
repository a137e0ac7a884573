"""Which genotype fileset a prefix names: the file names of each format, and the one found on disk.

Kept apart from :mod:`vitudip.genetics.genotypes` (which reads and converts the files) so that the
config checks can find an input fileset without importing a stage.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The files of each format, in the order they are looked for (.pgen before .bed, as plink2 users expect).
FORMAT_EXTENSIONS = {
    "pgen": (".pgen", ".pvar", ".psam"),
    "bed": (".bed", ".bim", ".fam"),
    "bgen": (".bgen", ".sample"),
}


def genotype_format(prefix: str | os.PathLike) -> str:
    """The format of the fileset behind a prefix: the first whose files all exist (.pgen, then .bed, then .bgen).

    Args:
        prefix: genotype path without extension.

    Raises:
        FileNotFoundError: no complete fileset; names the files that are missing.
    """
    prefix = os.fspath(prefix)
    partial = []
    for name, extensions in FORMAT_EXTENSIONS.items():
        present = [Path(prefix + ext).is_file() for ext in extensions]
        if all(present):
            return name
        if any(present):
            partial += [prefix + ext for ext, ok in zip(extensions, present) if not ok]
    if partial:
        message = f"genotype file(s) not found: {', '.join(partial)}"
        if Path(prefix + ".bgen").is_file() and not Path(prefix + ".sample").is_file():
            # a BGEN's own sample IDs (when it has them) are not used: every engine reads the .sample
            message += (f"; {prefix}.bgen needs its Oxford .sample file at {prefix}.sample (the file plink2 and "
                        "REGENIE take as --sample; ID_1 is read as FID, ID_2 as IID)")
        raise FileNotFoundError(message)
    raise FileNotFoundError(
        f"no genotype files for prefix {prefix}: expected {prefix}.bed/.bim/.fam, .pgen/.pvar/.psam "
        "or .bgen/.sample"
    )


def genotype_paths(prefix: str | os.PathLike) -> list[str]:
    """The files of the fileset behind a prefix, in the order of :data:`FORMAT_EXTENSIONS`.

    Raises:
        FileNotFoundError: no complete fileset (see :func:`genotype_format`).
    """
    prefix = os.fspath(prefix)
    return [prefix + ext for ext in FORMAT_EXTENSIONS[genotype_format(prefix)]]
