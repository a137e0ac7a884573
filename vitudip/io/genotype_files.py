"""Which genotype files the config names: one fileset, or one per chromosome, and the format found on disk.

Kept apart from :mod:`vitudip.genetics.genotypes` (which reads the files) so that the config checks
can find an input fileset without importing a stage.

``inputs.genotypes`` is a prefix as plink2 and REGENIE take it. It may hold ``{chromosome}``, standing
for each analysed chromosome as ``gwas.chromosomes`` writes it (UK Biobank ships one imputed BGEN per
chromosome: ``ukb22828_c{chromosome}_b0_v3``). A BGEN's Oxford .sample is ``<prefix>.sample`` unless
``inputs.genotype_samples`` names it (UK Biobank's is one file per application, named apart from the
BGENs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The files of each format, in the order they are looked for (.pgen before .bed, as plink2 users expect).
FORMAT_EXTENSIONS = {
    "pgen": (".pgen", ".pvar", ".psam"),
    "bed": (".bed", ".bim", ".fam"),
    "bgen": (".bgen", ".sample"),
}

#: What stands for the chromosome in a per-chromosome ``inputs.genotypes``.
CHROMOSOME_FIELD = "{chromosome}"


def _format_files(prefix: str, name: str, sample_file: str | None) -> list[str]:
    """The files of one format behind a prefix (a BGEN's .sample: ``sample_file`` when given)."""
    if name == "bgen" and sample_file is not None:
        return [prefix + ".bgen", sample_file]
    return [prefix + ext for ext in FORMAT_EXTENSIONS[name]]


def genotype_format(prefix: str | os.PathLike, sample_file: str | os.PathLike | None = None) -> str:
    """The format of the fileset behind a prefix: the first whose files all exist (.pgen, then .bed, then .bgen).

    Args:
        prefix: genotype path without extension.
        sample_file: a BGEN's Oxford .sample when it is not ``<prefix>.sample``.

    Raises:
        FileNotFoundError: no complete fileset; names the files that are missing.
    """
    prefix = os.fspath(prefix)
    sample_file = None if sample_file is None else os.fspath(sample_file)
    partial = []
    for name in FORMAT_EXTENSIONS:
        files = _format_files(prefix, name, sample_file)
        present = [Path(path).is_file() for path in files]
        if all(present):
            return name
        if any(present):
            partial += [path for path, ok in zip(files, present) if not ok]
    if partial:
        message = f"genotype file(s) not found: {', '.join(partial)}"
        if Path(prefix + ".bgen").is_file() and sample_file is None:
            # a BGEN's own sample IDs (when it has them) are not used: every engine reads the .sample
            message += (f"; {prefix}.bgen needs its Oxford .sample file: at {prefix}.sample, or named by "
                        "inputs.genotype_samples (UK Biobank's .sample is named apart from its BGENs)")
        raise FileNotFoundError(message)
    raise FileNotFoundError(
        f"no genotype files for prefix {prefix}: expected {prefix}.bed/.bim/.fam, .pgen/.pvar/.psam "
        "or .bgen/.sample"
    )


def genotype_paths(prefix: str | os.PathLike, sample_file: str | os.PathLike | None = None) -> list[str]:
    """The files of the fileset behind a prefix, in the order of :data:`FORMAT_EXTENSIONS`.

    Raises:
        FileNotFoundError: no complete fileset (see :func:`genotype_format`).
    """
    prefix = os.fspath(prefix)
    sample_file = None if sample_file is None else os.fspath(sample_file)
    return _format_files(prefix, genotype_format(prefix, sample_file), sample_file)


@dataclass(frozen=True)
class GenotypeInput:
    """The study's genotypes as ``inputs.genotypes`` and ``inputs.genotype_samples`` name them.

    Args:
        pattern: a fileset prefix, or one holding ``{chromosome}`` for one fileset per chromosome.
        sample_file: a BGEN's Oxford .sample when it is not ``<prefix>.sample``; None otherwise.
    """

    pattern: str
    sample_file: str | None = None

    def __post_init__(self) -> None:
        stray = self.pattern.replace(CHROMOSOME_FIELD, "")
        if "{" in stray or "}" in stray:
            raise ValueError(f"config key 'inputs.genotypes': '{self.pattern}' has braces other than "
                             f"{CHROMOSOME_FIELD}, the only field it may hold")

    @classmethod
    def from_config(cls, config: dict) -> GenotypeInput:
        """The genotype input of a validated config."""
        inputs = config["inputs"]
        return cls(inputs["genotypes"], inputs.get("genotype_samples"))

    @property
    def per_chromosome(self) -> bool:
        """Whether each chromosome has its own fileset."""
        return CHROMOSOME_FIELD in self.pattern

    def prefix(self, chromosome: str | int) -> str:
        """The prefix of the fileset holding ``chromosome``."""
        return self.pattern.replace(CHROMOSOME_FIELD, str(chromosome))

    def format(self, chromosome: str | int) -> str:
        """The format of the fileset holding ``chromosome`` (see :func:`genotype_format`)."""
        return genotype_format(self.prefix(chromosome), self.sample_file)

    def files(self, chromosome: str | int) -> list[str]:
        """The files of the fileset holding ``chromosome``, its sample file included."""
        return genotype_paths(self.prefix(chromosome), self.sample_file)

    def missing(self, chromosomes: list[str]) -> list[str]:
        """What is missing, one message per chromosome (a single fileset is checked once)."""
        wanted = chromosomes if self.per_chromosome else chromosomes[:1]
        problems = []
        for chromosome in wanted:
            try:
                self.files(chromosome)
            except FileNotFoundError as err:
                where = f"chromosome {chromosome}: " if self.per_chromosome else ""
                problems.append(f"{where}{err}")
        return problems
