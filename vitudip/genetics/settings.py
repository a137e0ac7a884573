"""The genetics stages' settings: genotype QC, phenotypes, GWAS shards and the joint test.

Light (standard library only), so the workflow builds each of them from the config when it starts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

#: The config keys REGENIE step 1 reads (its script's ``--settings``): the step 1 and 2 options.
REGENIE_STEP1_KEYS = ("gwas.regenie",)
#: The config keys the gathered files' metadata reads (:class:`vitudip.genetics.catalog.StudyDescription`).
CATALOG_KEYS = ("gwas.catalog", "gwas.engine", "loci.genome_build")


@dataclass
class QcSettings:
    """The ``genotype_qc`` section of the config (the schema holds every default and its source).

    Args:
        max_sample_missing: drop samples with a larger share of missing calls (plink --mind).
        king_cutoff: drop one of each pair with KING kinship >= this; None: no relatedness filter.
        max_variant_missing: drop variants with a larger share of missing calls (plink --geno).
        min_maf: minimum minor-allele frequency.
        min_mac: minimum minor-allele count.
        min_info: minimum imputation INFO, for inputs that carry INFO.
        require_info: stop when the input carries no INFO (neither in the .pvar nor from ``ukb_mfi``).
        ukb_mfi: UK Biobank mfi table path with ``{chromosome}`` for its number, or None.
        hwe_p: drop variants with a Hardy–Weinberg exact test p below this.
        pruning: the variants of relatedness, PCs and REGENIE step 1: the passing autosomal ones with MAF >=
            ``min_maf`` and INFO >= ``min_info``, pruned with plink2 ``--indep-pairwise <window_kb>kb 1 <r2>``.
    """

    max_sample_missing: float
    king_cutoff: float | None
    max_variant_missing: float
    min_maf: float
    min_mac: float
    min_info: float
    require_info: bool
    ukb_mfi: str | None
    hwe_p: float
    pruning: dict[str, float]

    #: Every key of the section but ``keep``, which the sample selection reads (a keep list changes which samples
    #: the per-chromosome genotypes hold, and so reruns the QC through them).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = tuple(
        f"genotype_qc.{key}" for key in ("max_sample_missing", "king_cutoff", "max_variant_missing", "min_maf",
                                         "min_mac", "min_info", "require_info", "ukb_mfi", "hwe_p", "pruning"))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QcSettings:
        """The settings of a validated config's ``genotype_qc`` section (schema defaults filled in)."""
        section = config["genotype_qc"]
        return cls(**{f.name: copy.deepcopy(section[f.name]) for f in fields(cls)})


@dataclass
class PhenoSettings:
    """What goes into the covariate table and how the phenotypes are treated.

    Args:
        covariates: numeric covariate columns of the covariates file, in output order.
        categorical: string category columns, one-hot coded with the first
            (sorted) level dropped as ``<column>_<level>``.
        derived: any of "age2" (age²), "sex_age" (sex×age), "sex_age2" (sex×age²).
        inverse_normal: rank-based inverse-normal transform of each UDIP (Blom).
        min_samples: fewest analysed samples accepted.
        genetic_pcs: number of genetic PCs to add (0: none beyond ``covariates``).
        pcs_from: "file" (PC1..PCk columns of the covariates file) or
            "plink2" (computed with ``plink2 --pca`` on the analysed samples).
        outlier_sd: drop subjects whose log reconstruction error, or whose UDIP vector's distance from
            the median (root-mean-square robust z over the dimensions), is more than this many robust
            SDs (1.4826 x the median absolute deviation) above the median, with the reason in the
            exclusions; None: keep them.
        centre_age: form the derived terms from age minus its mean over the
            analysed samples. With age, sex and the lower-order terms also in
            the model the fit is the same, but raw age² and sex×age² are so
            collinear with age and sex (VIF in the thousands) that
            ``plink2 --glm`` refuses them (its VIF limit is 50).

    The derived terms read age from the ``age`` and sex from the ``sex`` column of the covariates file.
    """

    covariates: list[str]
    categorical: list[str]
    derived: list[str]
    inverse_normal: bool
    min_samples: int
    genetic_pcs: int
    pcs_from: str
    centre_age: bool
    outlier_sd: float | None

    #: Covariates-file columns the derived terms use as age and as sex.
    age_column: ClassVar[str] = "age"
    sex_column: ClassVar[str] = "sex"
    #: The config keys the settings come from (the pheno script's ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("pheno",)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PhenoSettings:
        """The settings of a validated config's ``pheno`` section (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        section = config["pheno"]
        return cls(**{f.name: copy.deepcopy(section[f.name]) for f in fields(cls)})

    def __post_init__(self) -> None:
        # the config schema checks each value; these are the rules between keys
        both = sorted(set(self.covariates) & set(self.categorical))
        if both:
            raise ValueError(f"config keys 'pheno.covariates' and 'pheno.categorical': column(s) {both} listed as "
                             "both numeric and categorical covariates")
        clash = sorted(set(self.covariates) & set(self.computed_pcs()))
        if clash:
            raise ValueError(f"config keys 'pheno.covariates' and 'pheno.pcs_from': covariate(s) {clash} clash with "
                             "the PCs computed by plink2; "
                             "drop them from covariates")

    def pc_columns(self) -> list[str]:
        """PC1..PCk for ``genetic_pcs`` = k."""
        return [f"PC{i}" for i in range(1, self.genetic_pcs + 1)]

    def file_pcs(self) -> list[str]:
        """PC columns to take from the covariates file (not already in ``covariates``)."""
        if self.pcs_from != "file":
            return []
        return [pc for pc in self.pc_columns() if pc not in self.covariates]

    def computed_pcs(self) -> list[str]:
        """PC columns plink2 computes."""
        return self.pc_columns() if self.pcs_from == "plink2" else []

    def numeric_columns(self) -> list[str]:
        """Covariates-file columns parsed as numbers: covariates, file PCs, and age/sex for derived terms."""
        needed = [*self.covariates, *self.file_pcs()]
        if self.derived:
            needed += [self.age_column, self.sex_column]
        return list(dict.fromkeys(needed))

    def used_columns(self) -> list[str]:
        """Every covariates-file column the stage reads, in the order missing values are reported."""
        return list(dict.fromkeys([*self.numeric_columns(), *self.categorical]))


@dataclass(frozen=True)
class ShardSettings:
    """How a shard runs its engine: the config's ``gwas`` section.

    Args:
        engine: ``plink2``, ``regenie`` or ``torch``.
        n_batches: number of dimension batches (``gwas.dimension_batches``).
        block_size: variants per block (``torch``).
        device: ``auto``, ``cuda`` or ``cpu`` (``torch``).
        regenie_bsize: step 2 genotype block size (``regenie``).
        min_mac: step 2 minimum minor allele count (``regenie``).
        par_region: --par-region, the PAR bounds of chromosome X (``regenie``).
    """

    engine: str
    n_batches: int
    block_size: int
    device: str
    regenie_bsize: int
    min_mac: float
    par_region: str

    #: The config keys the settings come from (the GWAS script's ``--settings``): not ``gwas.threads``, a
    #: job's resource, nor ``gwas.catalog``, the gathered files' metadata, so that neither reruns the shards.
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("gwas.engine", "gwas.dimension_batches", "gwas.block_size",
                                              "gwas.device", "gwas.regenie")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ShardSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        gwas = config["gwas"]
        return cls(engine=gwas["engine"], n_batches=gwas["dimension_batches"], block_size=gwas["block_size"],
                   device=gwas["device"], regenie_bsize=gwas["regenie"]["step2_bsize"],
                   min_mac=gwas["regenie"]["min_mac"], par_region=gwas["regenie"]["par_region"])


@dataclass(frozen=True)
class InProcessGwasSettings:
    """How the in-process engine runs where the study's engine is not used (the joint test's permuted null).

    Args:
        block_size: variants per block (``gwas.block_size``).
        device: ``auto``, ``cuda`` or ``cpu`` (``gwas.device``).
    """

    block_size: int
    device: str

    #: The config keys the settings come from: not ``gwas.engine``, which this GWAS does not use.
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("gwas.block_size", "gwas.device")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InProcessGwasSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        return cls(block_size=config["gwas"]["block_size"], device=config["gwas"]["device"])


@dataclass(frozen=True)
class JointSettings:
    """The joint tests and their calibration: the config's ``joint`` section and the seed.

    Attributes:
        method: ``eigen`` (top eigen-directions of R) or ``full`` (Hotelling, regularised when ill-conditioned).
        k: eigen-directions kept (None: the fewest holding ``variance_share``).
        variance_share: share of R's variance kept when ``k`` is None.
        max_condition: largest λ_1 / λ_i of a kept direction.
        chunk_size: variants per chunk read from the gathered files.
        null_lambda_limit: largest acceptable λGC of either joint test on the permuted run.
        seed: seed of min-P's Monte Carlo null and of the permutation.
    """

    method: str
    k: int | None
    variance_share: float
    max_condition: float
    chunk_size: int
    null_lambda_limit: float
    seed: int

    #: The config keys the settings come from (the joint scripts' ``--settings``).
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("joint", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> JointSettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        section = config["joint"]
        return cls(section["method"], section["k"], float(section["variance_share"]), float(section["max_condition"]),
                   section["chunk_size"], float(section["null_lambda_limit"]), config["seed"])


@dataclass(frozen=True)
class HeritabilitySettings:
    """SNP heritability and genetic correlation by randomized Haseman–Elston regression: the config's
    ``heritability`` section, the in-process engine's block size and device, the seed and the phenotype transform.

    Attributes:
        random_vectors: random vectors of the trace estimate (B).
        jackknife_blocks: contiguous variant blocks of the jackknife, at most (fewer where the genome is short).
        block_size: variants read per genotype block (``gwas.block_size``).
        device: ``auto``, ``cuda`` or ``cpu`` (``gwas.device``).
        inverse_normal: the pheno stage's transform, applied to the PCA baseline's dimensions too.
        seed: seed of the random vectors.
    """

    random_vectors: int
    jackknife_blocks: int
    block_size: int
    device: str
    inverse_normal: bool
    seed: int

    #: The config keys the settings come from (the heritability script's ``--settings``): not ``enabled``,
    #: which decides whether the rule exists.
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("heritability.random_vectors", "heritability.jackknife_blocks",
                                              "gwas.block_size", "gwas.device", "pheno.inverse_normal", "seed")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HeritabilitySettings:
        """The settings of a validated config (see :func:`vitudip.config.stage_config`).

        Args:
            config: holds ``CONFIG_KEYS``, with the schema's defaults filled in.
        """
        section = config["heritability"]
        return cls(random_vectors=section["random_vectors"], jackknife_blocks=section["jackknife_blocks"],
                   block_size=config["gwas"]["block_size"], device=config["gwas"]["device"],
                   inverse_normal=config["pheno"]["inverse_normal"], seed=config["seed"])
