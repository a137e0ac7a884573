"""Reusable transformer pieces: fixed 3-D position embedding, attention, MLP and a pre-norm block."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from vitudip.model.shard import BatchShard

#: Base of the geometric frequency ladder of the sin-cos embedding.
_SINCOS_BASE = 10000.0


def sincos_position_embedding_3d(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed 3-D sine-cosine position embedding of every cell of a token grid.

    Each axis gets ``2 * (dim // 6)`` channels, laid out as ``[sin | cos]`` with
    frequencies ``1 / 10000 ** (k / n)``, ``k = 0 .. n - 1``, ``n = dim // 6``; the
    axes follow each other in order, and the ``dim % 6`` channels left over are zero.

    Args:
        grid: number of tokens along each image axis.
        dim: embedding width; at least 6.

    Returns:
        float32 tensor ``(prod(grid), dim)``; row ``t`` belongs to grid cell
        ``np.unravel_index(t, grid)`` (C order, the order of :func:`~vitudip.model.patches.patchify`).
    """
    if dim < 6:
        raise ValueError(f"a 3-D sin-cos embedding needs dim >= 6 (sin and cos per axis), got dim={dim}")
    n_freq = dim // 6
    freqs = 1.0 / _SINCOS_BASE ** (torch.arange(n_freq, dtype=torch.float64) / n_freq)
    # "ij" meshgrid flattened row-major = C order over the grid
    axes = [torch.arange(size, dtype=torch.float64) for size in grid]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    embedding = torch.zeros(coords.shape[0], dim, dtype=torch.float64)
    for axis in range(3):
        angles = coords[:, axis, None] * freqs[None, :]
        start = axis * 2 * n_freq
        embedding[:, start : start + n_freq] = torch.sin(angles)
        embedding[:, start + n_freq : start + 2 * n_freq] = torch.cos(angles)
    return embedding.to(torch.float32)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a token sequence (no mask, no dropout).

    Args:
        dim: token width; divisible by ``heads``.
        heads: number of attention heads.
        qkv_bias: give the query/key/value projection a bias.
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend.

        Args:
            x: tokens ``(B, N, dim)``.

        Returns:
            ``(B, N, dim)``.
        """
        batch, n_tokens, dim = x.shape
        # (B, N, 3*dim) -> (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(batch, n_tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(attended.transpose(1, 2).reshape(batch, n_tokens, dim))


class Mlp(nn.Module):
    """Two-layer perceptron with a GELU in between.

    Args:
        dim: input and output width.
        hidden: hidden width.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP.

        Args:
            x: ``(..., dim)``.

        Returns:
            ``(..., dim)``.
        """
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``.

    Args:
        dim: token width.
        heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        qkv_bias: give the query/key/value projection a bias.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply attention, then the MLP, each as a residual branch.

        Args:
            x: tokens ``(B, N, dim)``.

        Returns:
            ``(B, N, dim)``.
        """
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RunningStandardize(nn.Module):
    """Standardise vectors with running per-channel statistics, the same in training and evaluation.

    Unlike BatchNorm it never uses the current batch's own statistics in the output, so a
    subject's result does not depend on its batch mates; the running mean and variance are
    updated (without gradient) from every training batch, seeded by the first.

    Args:
        dim: number of channels.
        momentum: weight of a new batch in the running statistics.
        eps: added to the variance.
    """

    def __init__(self, dim: int, momentum: float = 0.05, eps: float = 1e-10) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor, shard: BatchShard | None = None) -> torch.Tensor:
        """Standardise.

        Args:
            x: ``(B, dim)``.
            shard: in data-parallel training, which rows of the global batch ``x`` holds: the statistics are
                updated from the global batch's rows (None: ``x`` is the batch).

        Returns:
            ``(x - running_mean) / sqrt(running_var + eps)``, ``(B, dim)``.
        """
        rows = x.shape[0] if shard is None else shard.global_rows
        if self.training and rows > 1:
            with torch.no_grad():
                batch = (x if shard is None else shard.gather(x)).float()
                mean, var = batch.mean(0), batch.var(0)
                if self.updates == 0:
                    self.running_mean.copy_(mean)
                    self.running_var.copy_(var)
                else:
                    self.running_mean.lerp_(mean, self.momentum)
                    self.running_var.lerp_(var, self.momentum)
                self.updates += 1
        return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)


class AttentivePool(nn.Module):
    """Pool a token sequence into one vector with learned queries that cross-attend to the tokens.

    Each of ``queries`` learned queries attends (multi-head) to all tokens and writes its own
    ``dim // queries`` output channels, so the vector is made of parts that can each look at
    another part of the brain, instead of one average over every patch. Tokens are only ever
    keys and values: what is not in the sequence (a dropped patch) cannot change the output.

    Args:
        dim: token width, and the width of the pooled vector; divisible by ``queries`` and ``heads``.
        queries: learned queries.
        heads: attention heads.
    """

    def __init__(self, dim: int, queries: int, heads: int) -> None:
        super().__init__()
        if queries < 1 or dim % queries:
            raise ValueError(f"attentive pooling needs a number of queries that divides the width {dim}, "
                             f"got {queries}")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(queries, dim))
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        # query j's own projection to its dim // queries output channels
        self.out = nn.Parameter(torch.zeros(queries, dim, dim // queries))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pool.

        Args:
            tokens: ``(B, N, dim)``.

        Returns:
            ``(B, dim)``: query 0's channels first.
        """
        batch, n_tokens, dim = tokens.shape
        head_dim = dim // self.heads
        queries = self.q(self.query).reshape(1, -1, self.heads, head_dim).transpose(1, 2)
        kv = self.kv(self.norm(tokens)).reshape(batch, n_tokens, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(queries.expand(batch, -1, -1, -1), kv[0], kv[1])
        attended = attended.transpose(1, 2).reshape(batch, -1, dim)
        return torch.einsum("bqd,qdk->bqk", attended, self.out).reshape(batch, dim)


class PatchLinearPool(nn.Module):
    """Pool a token sequence through a linear map of each patch's own: a linear bottleneck over tokens.

    The pooled vector is ``sum_k W[patch_k]^T token_k / sqrt(K) + b`` over the ``K`` tokens present, so
    every patch has its own say in every output channel. The mean (published) gives every patch
    the same map, and a trait of one small region then moves the mean of hundreds of tokens by
    almost nothing; here the region's patches can write it to channels of their own, as a
    principal component weighs each voxel on its own. A patch that is not in the sequence adds nothing.

    Args:
        n_patches: patches of the whole grid (the rows of the map).
        dim: token width, and the width of the pooled vector.
    """

    def __init__(self, n_patches: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_patches, dim, dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
        """Pool.

        Args:
            tokens: ``(B, K, dim)``.
            token_index: int64 ``(K,)``: the patch of each token.

        Returns:
            ``(B, dim)``.
        """
        return torch.einsum("bkd,kde->be", tokens, self.weight[token_index]) / math.sqrt(tokens.shape[1]) + self.bias

    @torch.no_grad()
    def set_maps(self, token_index: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Make the first ``k`` output channels ``sum_p token_p @ weight[p] + bias`` over the patches of
        ``token_index``.

        Args:
            token_index: int64 ``(K,)``: the patches the maps belong to (all of a forward pass's tokens).
            weight: ``(K, dim, k)``.
            bias: ``(k,)``.
        """
        k = weight.shape[-1]
        self.weight[token_index, :, :k] = weight.to(self.weight) * math.sqrt(len(token_index))
        self.bias[:k] = bias.to(self.bias)
