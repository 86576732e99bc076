"""Finite scalar quantization (FSQ, Mentzer et al. 2023) with several tokens per latent position.

Each token owns ``len(levels)`` channels. A channel with ``L`` levels is bounded by a shifted tanh and rounded
to one of ``L`` values; the digits of a token form its index in a vocabulary of ``prod(levels)``. Numbers match
the official OneVAE release (``eps=1e-3`` in the bound, channels ``[k*d, (k+1)*d)`` belong to token ``k``).

Unlike the official ``forward`` (which rebuilds codes from indices and so carries no gradient), ``forward``
here returns the straight-through codes: the same values, with the identity as gradient. There is no
auxiliary loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import InputError


def check_token_indices(indices: torch.Tensor, num_codebooks: int, vocab_size: int) -> None:
    """Refuse, with one clear message, token grids that are not integers (..., num_codebooks) in [0, vocab_size)
    (shared by every quantizer)."""
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise InputError(f"token indices must be integers, got {indices.dtype}")
    if indices.shape[-1:] != (num_codebooks,):
        raise InputError(f"token grids must end with {num_codebooks} tokens per position, got shape {tuple(indices.shape)}")
    if indices.numel():
        lo, hi = token_id_range(indices)
        if lo < 0 or hi >= vocab_size:
            raise InputError(f"token values must lie in [0, {vocab_size}), got values in [{lo}, {hi}]")


def token_id_range(ids: torch.Tensor) -> tuple[int, int]:
    """(smallest, largest) of non-empty integer ids, exactly: through int64 (PyTorch has no min/max for
    uint16/uint32), but uint64 through numpy, as int64 would wrap its ids of 2^63 or more to negative values."""
    if ids.dtype == torch.uint64:
        values = ids.detach().cpu().numpy()
        return int(values.min()), int(values.max())
    lo, hi = ids.long().aminmax()
    return int(lo), int(hi)


def ids_to_int64(ids: torch.Tensor, source: str) -> torch.Tensor:
    """Integer token ids -> int64; uint64 ids of 2^63 or more (which int64 would wrap to negative values) are
    refused with their value."""
    if ids.dtype == torch.uint64 and ids.numel():
        high = token_id_range(ids)[1]
        if high >= 2**63:
            raise InputError(f"{source}: token ids must be below the model's vocabulary size, got {high} (>= 2^63)")
    return ids.to(torch.int64)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return x + (x.round() - x).detach()


class FSQ(nn.Module):
    """FSQ over the last dimension of ``z`` (..., num_codebooks * len(levels)).

    ``forward`` returns ``(codes, indices)``: codes (..., dim) with values in [-1, 1] and indices
    (..., num_codebooks) int64 in [0, vocab_size).
    """

    def __init__(self, levels: Sequence[int], num_codebooks: int = 1, eps: float = 1e-3) -> None:
        super().__init__()
        self.levels = [int(level) for level in levels]
        self.num_codebooks = int(num_codebooks)
        self.eps = eps
        basis = [math.prod(self.levels[:i]) for i in range(len(self.levels))]
        # non-persistent: FSQ has no weights, and official checkpoints hold no FSQ keys
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    @property
    def codebook_dim(self) -> int:
        return len(self.levels)

    @property
    def dim(self) -> int:
        return self.codebook_dim * self.num_codebooks

    @property
    def vocab_size(self) -> int:
        return math.prod(self.levels)

    def _half_width(self) -> torch.Tensor:
        return (self._levels // 2).float()

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash each channel into (-L/2, L/2) (shifted for even L) so that rounding gives L values."""
        levels = self._levels.float()
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        return (z + shift).tanh() * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Straight-through codes (..., num_codebooks, codebook_dim) in [-1, 1], computed in float32."""
        return round_ste(self.bound(z.float())) / self._half_width()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # z: (..., dim)
        if z.shape[-1] != self.dim:
            raise InputError(f"FSQ expects {self.dim} channels in the last dimension, got {z.shape[-1]}")
        grouped = z.unflatten(-1, (self.num_codebooks, self.codebook_dim))  # (..., K, d)
        codes = self.quantize(grouped)
        indices = self.codes_to_indices(codes.detach())
        return codes.flatten(-2).to(z.dtype), indices

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., K, d) normalised codes -> (..., K) int64 indices."""
        half_width = self._half_width()
        digits = (codes.float() * half_width + half_width).round().long()  # (..., K, d) in [0, L-1]
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(..., K) int64 indices -> (..., K * d) float32 codes in [-1, 1]."""
        self.check_indices(indices)
        digits = (indices.long().unsqueeze(-1) // self._basis) % self._levels  # (..., K, d)
        half_width = self._half_width()
        return ((digits.float() - half_width) / half_width).flatten(-2)

    def check_indices(self, indices: torch.Tensor) -> None:
        check_token_indices(indices, self.num_codebooks, self.vocab_size)

    def level_grid(self, level: int) -> torch.Tensor:
        """The normalised values a channel with ``level`` levels can take."""
        half_width = level // 2
        return (torch.arange(level, dtype=torch.float32) - half_width) / half_width

    def extra_repr(self) -> str:
        return f"levels={self.levels}, num_codebooks={self.num_codebooks}, vocab_size={self.vocab_size}"
