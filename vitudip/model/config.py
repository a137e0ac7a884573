"""Model sizes and options (:class:`ModelConfig`) and the named presets, free of torch.

The workflow checks a config against the model it will build when it starts, on a host that
need not have torch; the network itself is :mod:`vitudip.model.vit_autoencoder`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

#: Ways the latent reaches the decoder's patch queries (see :class:`ModelConfig`).
LATENT_TO_QUERIES = ("none", "shared", "per_patch")

#: How the encoder tokens become the latent (see :class:`ModelConfig`).
POOLINGS = ("mean", "attentive", "per_patch")


@dataclass
class ModelConfig:
    """Sizes of a :class:`ViTAutoEncoder`.

    Attributes:
        image_size: padded volume shape ``(X, Y, Z)``.
        patch_size: patch shape; divides ``image_size`` on every axis.
        encoder_dim: encoder width, which is also the number of UDIPs.
        encoder_depth: encoder transformer blocks.
        encoder_heads: encoder attention heads; divides ``encoder_dim``.
        decoder_dim: decoder width.
        decoder_depth: decoder transformer blocks.
        decoder_heads: decoder attention heads; divides ``decoder_dim``.
        mlp_ratio: MLP hidden width as a multiple of the block width.
        qkv_bias: give the query/key/value projections a bias.
        latent_norm: standardise the latent (running per-dimension mean and SD) before the
            decoder reads it. The mean over hundreds of tokens is nearly the same vector for
            every subject, so the published decoder sees subject differences of well under 1 %
            of its input and takes very long to learn to use them. Not in the published model.
        latent_to_queries: also add the latent to every patch query, so each patch hears the
            subject directly instead of only through attention to one token among hundreds.
            ``none`` (published): not at all; ``shared``: the decoder's latent token, the same
            for every patch; ``per_patch``: that token plus a linear projection of the latent
            of the patch's own, so that each patch can read the latent dimensions that describe
            it. A few CPU epochs teach the shared form only broad, brain-wide changes.
        pooling: ``mean`` (published): the latent is the mean of the encoder tokens;
            ``attentive``: ``pool_queries`` learned queries cross-attend to the tokens and each
            writes ``encoder_dim // pool_queries`` of the latent's channels, so that parts of the
            latent can describe parts of the brain instead of one average over every patch;
            ``per_patch``: each token through a linear map of its patch's own, summed (a linear
            bottleneck over tokens, :class:`~vitudip.model.blocks.PatchLinearPool`), so that a
            small region's patches can write to the latent as much as any others.
        pool_queries: queries of the attentive pooling; divides ``encoder_dim``.
        nested_dropout: training only: decode each subject from its first ``k`` latent dimensions
            alone, ``k`` drawn uniformly from 1 to ``encoder_dim`` per subject and step (Rippel et
            al. 2014; dropped dimensions are set to 0, their mean with ``latent_norm``).
            Reconstruction alone does not care how the latent is rotated, so a trait can be smeared
            over many dimensions; this orders the dimensions by how much of the images they explain,
            as PCA orders its components, so that each large mode gets a dimension of its own. Off
            in the published model.
        latent_variance_weight: training only: weight of a hinge on each latent dimension's SD
            across a batch's subjects (VICReg-style, :mod:`vitudip.model.latent_penalty`); 0: off
            (published). Kept with the model so that a preset carries its whole recipe.
        latent_covariance_weight: training only: weight of the latent dimensions' mean squared
            off-diagonal correlation over a batch; 0: off (published).
        mode_loss_weight: training only: weight of a term that counts each of the training images'
            ``mode_loss_modes`` leading principal modes equally (:mod:`vitudip.model.mode_loss`):
            the plain error learns modes in order of variance, so in a short run the small ones,
            where small regions' effects live, are never learned; 0: off (published). Needs
            ``train.center``.
        mode_loss_modes: how many leading modes that term, and the latent mode anchor, use.
        latent_mode_weight: training only: weight of a term that asks latent dimension ``j`` for the
            whitened score of the input's principal mode ``j``, for the first ``mode_loss_modes``
            dimensions (:class:`~vitudip.model.mode_loss.LatentModeAnchor`), so that the UDIPs carry
            every leading mode, small ones included, however short the training; the other
            dimensions are left to the reconstruction. The mean of the tokens cannot express a
            score that weighs each voxel on its own within a CPU budget; ``per_patch`` pooling can.
            0: off (published). Needs ``train.center`` and ``mode_loss_modes <= encoder_dim``.
        pool_from_modes: start ``per_patch`` pooling in closed form (ridge regression over the
            untrained encoder's tokens of the training images) so that latent dimension ``j`` is the
            whitened score of principal mode ``j`` from the first step, for the first
            ``mode_loss_modes`` dimensions. The untrained encoder's tokens carry all 128 leading modes
            (validation R² 0.89 to 0.99 on the demo) and a few epochs of gradient descent do not find
            that map from a random start (0.5 or less beyond mode 32), nor keep it: training the
            reconstruction pulls the tokens onto the largest modes. Pair it with
            ``latent_mode_weight`` so that training keeps what the start gives. Not in the published
            model; needs ``pooling: per_patch``, ``train.center`` and ``mode_loss_modes <= encoder_dim``.
    """

    image_size: tuple[int, int, int]
    patch_size: tuple[int, int, int]
    encoder_dim: int = 128
    encoder_depth: int = 12
    encoder_heads: int = 8
    decoder_dim: int = 64
    decoder_depth: int = 12
    decoder_heads: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    latent_norm: bool = False
    latent_to_queries: str = "none"
    pooling: str = "mean"
    pool_queries: int = 16
    nested_dropout: bool = False
    latent_variance_weight: float = 0.0
    latent_covariance_weight: float = 0.0
    mode_loss_weight: float = 0.0
    mode_loss_modes: int = 32
    latent_mode_weight: float = 0.0
    pool_from_modes: bool = False

    def __post_init__(self) -> None:
        # JSON turns tuples into lists; normalise so that a round trip compares equal.
        for name in ("image_size", "patch_size"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) <= 0:
                raise ValueError(f"ModelConfig.{name} must be 3 positive integers, got {value}")
            setattr(self, name, value)
        if any(s % p for s, p in zip(self.image_size, self.patch_size)):
            raise ValueError(
                f"ModelConfig.image_size {self.image_size} is not divisible by "
                f"ModelConfig.patch_size {self.patch_size} on every axis"
            )
        for part in ("encoder", "decoder"):
            dim, depth, heads = (getattr(self, f"{part}_{what}") for what in ("dim", "depth", "heads"))
            if depth < 1 or heads < 1:
                raise ValueError(f"ModelConfig.{part}_depth and {part}_heads must be >= 1, got {depth}, {heads}")
            # the 3-D sin-cos position embedding needs a sin and a cos channel per axis
            if dim < 6:
                raise ValueError(f"ModelConfig.{part}_dim must be >= 6, got {dim}")
            if dim % heads:
                raise ValueError(f"ModelConfig.{part}_dim ({dim}) must be divisible by {part}_heads ({heads})")
        if self.latent_to_queries not in LATENT_TO_QUERIES:
            raise ValueError(f"ModelConfig.latent_to_queries must be one of {', '.join(LATENT_TO_QUERIES)}, "
                             f"got {self.latent_to_queries!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"ModelConfig.pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.pooling == "attentive" and (self.pool_queries < 1 or self.encoder_dim % self.pool_queries):
            raise ValueError(f"ModelConfig.pool_queries ({self.pool_queries}) must divide encoder_dim "
                             f"({self.encoder_dim})")
        if self.latent_variance_weight < 0 or self.latent_covariance_weight < 0:
            raise ValueError("ModelConfig.latent_variance_weight and latent_covariance_weight must be >= 0")
        if self.mode_loss_weight < 0 or self.mode_loss_modes < 1:
            raise ValueError(f"ModelConfig.mode_loss_weight must be >= 0 and mode_loss_modes >= 1, got "
                             f"{self.mode_loss_weight}, {self.mode_loss_modes}")
        if self.latent_mode_weight < 0:
            raise ValueError(f"ModelConfig.latent_mode_weight must be >= 0, got {self.latent_mode_weight}")
        if self.latent_mode_weight > 0 and self.mode_loss_modes > self.encoder_dim:
            raise ValueError(f"ModelConfig.mode_loss_modes ({self.mode_loss_modes}) must not exceed encoder_dim "
                             f"({self.encoder_dim}) with latent_mode_weight > 0: each mode anchors one dimension")
        if self.pool_from_modes and self.pooling != "per_patch":
            raise ValueError(f"ModelConfig.pool_from_modes needs pooling: per_patch, got {self.pooling!r}")
        if self.pool_from_modes and self.mode_loss_modes > self.encoder_dim:
            raise ValueError(f"ModelConfig.mode_loss_modes ({self.mode_loss_modes}) must not exceed encoder_dim "
                             f"({self.encoder_dim}) with pool_from_modes: each mode starts one dimension")
        if self.mlp_ratio <= 0:
            raise ValueError(f"ModelConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")

    @property
    def uses_modes(self) -> bool:
        """Training fits the images' principal modes (:mod:`vitudip.model.mode_loss`) for some option."""
        return self.mode_loss_weight > 0 or self.latent_mode_weight > 0 or self.pool_from_modes

    @property
    def grid(self) -> tuple[int, int, int]:
        """Patches along each axis."""
        return tuple(s // p for s, p in zip(self.image_size, self.patch_size))

    @property
    def n_tokens(self) -> int:
        """Patches in a whole volume."""
        return math.prod(self.grid)

    @property
    def patch_voxels(self) -> int:
        """Voxels in one patch."""
        return math.prod(self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (tuples stay tuples; JSON may turn them into lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from :meth:`to_dict` output, also after a JSON round trip.

        Raises:
            ValueError: a key is not a field of ModelConfig.
        """
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {sorted(unknown)}")
        return cls(**values)


#: The options that keep the 128 UDIP dimensions informative (bench/recovery.py, docs/BENCHMARKS.md): every
#: dimension anchored to one of the images' 128 leading modes through a per-patch pool started at them.
SPREAD_OPTIONS = dict(latent_norm=True, latent_to_queries="per_patch", nested_dropout=True,
                      latent_variance_weight=0.01, latent_covariance_weight=0.01, mode_loss_weight=1.0,
                      pooling="per_patch", mode_loss_modes=128, latent_mode_weight=1.0, pool_from_modes=True)

PRESETS: dict[str, ModelConfig] = {
    # the published model on UK Biobank's 1 mm MNI grid padded to 182 x 224 x 182
    "reference": ModelConfig(image_size=(182, 224, 182), patch_size=(14, 16, 14)),
    # the published size and architecture with the options that keep every dimension informative, for GPUs
    "informative": ModelConfig(image_size=(182, 224, 182), patch_size=(14, 16, 14), **SPREAD_OPTIONS),
    # a CPU-sized model on a 2 mm grid; the width stays 128 so that there are still 128 UDIPs
    "demo": ModelConfig(
        image_size=(96, 112, 96),
        patch_size=(8, 8, 8),
        encoder_dim=128,
        encoder_depth=4,
        encoder_heads=8,
        decoder_dim=64,
        decoder_depth=2,
        decoder_heads=8,
        # a few CPU epochs are far too few for the published decoder to learn to read its latent, and
        # reconstruction alone collapses the 128 dimensions onto a few traits (bench/recovery.py)
        **SPREAD_OPTIONS,
    ),
}


def preset(name: str) -> ModelConfig:
    """A fresh copy of a named configuration.

    Raises:
        ValueError: ``name`` is not in :data:`PRESETS`.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; presets: {sorted(PRESETS)}")
    return ModelConfig.from_dict(PRESETS[name].to_dict())


def configured(name: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """A preset with some of its fields replaced (the config's ``model.preset`` and ``model.overrides``).

    Raises:
        ValueError: an unknown preset or field, or a combination :class:`ModelConfig` refuses.
    """
    values = preset(name).to_dict()
    unknown = set(overrides or {}) - set(values)
    if unknown:
        raise ValueError(f"model.overrides: unknown model field(s) {sorted(unknown)}; known: {sorted(values)}")
    return ModelConfig.from_dict({**values, **(overrides or {})})


def model_from_config(config: Mapping[str, Any]) -> ModelConfig:
    """The model a validated config trains: :func:`configured` with ``model.preset`` and ``model.overrides``.

    Raises:
        ValueError: an override the model refuses, naming the key and the preset.
    """
    name = config["model"]["preset"]
    try:
        return configured(name, config["model"]["overrides"])
    except ValueError as err:
        raise ValueError(f"config key 'model.overrides' (preset '{name}'): {err}") from None
