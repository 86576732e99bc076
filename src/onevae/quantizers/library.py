"""VQ and LFQ from vector-quantize-pytorch (``pip install onevae[experiments]``), behind FSQ's interface.

They exist for the quantizer comparison (E2 of docs/results.md): OneVAE itself uses FSQ. The library's defaults
are kept (VQ: EMA codebook updates with decay 0.8, commitment weight 1, the rotation trick, a randomly
initialised codebook; LFQ: entropy loss weight 0.1, codes of +-1), so that "VQ" and "LFQ" mean what a user of
the library gets. Their auxiliary loss is left in ``aux_loss`` after each forward pass.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import InputError
from ..extras import require
from .fsq import check_token_indices


def _library():
    return require("vector_quantize_pytorch", "experiments", "the vq and lfq quantizers", package="vector-quantize-pytorch")


class _LibraryQuantizer(nn.Module):
    """Shared plumbing: flatten (..., K*d) to the library's (1, N, K*d), indices back to (..., K)."""

    def __init__(self, codebook_size: int, codebook_dim: int, num_codebooks: int) -> None:
        super().__init__()
        self.codebook_size, self.codebook_dim, self.num_codebooks = codebook_size, codebook_dim, num_codebooks
        self.aux_loss: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return self.codebook_dim * self.num_codebooks

    @property
    def vocab_size(self) -> int:
        return self.codebook_size

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # z: (..., K*d)
        if z.shape[-1] != self.dim:
            raise InputError(f"the quantizer expects {self.dim} channels in the last dimension, got {z.shape[-1]}")
        lead = z.shape[:-1]
        codes, indices, aux = self.module(z.float().reshape(1, -1, self.dim))  # (1, N, K*d), (1, N, K)
        self.aux_loss = aux.sum() if torch.is_tensor(aux) else None
        return codes.reshape(*lead, self.dim).to(z.dtype), indices.reshape(*lead, self.num_codebooks).long()

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(..., K) int64 indices -> (..., K*d) float32 codes."""
        self.check_indices(indices)
        lead = indices.shape[:-1]
        codes = self._lookup(indices.long().reshape(1, -1, self.num_codebooks))  # (1, N, K*d)
        return codes.reshape(*lead, self.dim).float()

    def check_indices(self, indices: torch.Tensor) -> None:
        check_token_indices(indices, self.num_codebooks, self.vocab_size)

    def extra_repr(self) -> str:
        return f"codebook_size={self.codebook_size}, codebook_dim={self.codebook_dim}, num_codebooks={self.num_codebooks}"


class LibraryVQ(_LibraryQuantizer):
    """Vector quantization, one codebook of ``codebook_size`` vectors of ``codebook_dim`` shared by the K tokens."""

    def __init__(self, codebook_size: int, codebook_dim: int, num_codebooks: int = 1) -> None:
        super().__init__(codebook_size, codebook_dim, num_codebooks)
        self.module = _library().VectorQuantize(
            dim=self.dim, codebook_size=codebook_size, codebook_dim=codebook_dim, heads=num_codebooks,
            separate_codebook_per_head=False, channel_last=True,
        )

    def _lookup(self, indices: torch.Tensor) -> torch.Tensor:
        codes = self.module.get_codes_from_indices(indices)  # (1, N, K*d) for several heads, (1, N, 1, d) else
        return codes.reshape(1, indices.shape[1], self.dim)


class LibraryLFQ(_LibraryQuantizer):
    """Lookup-free quantization: each token is log2(codebook_size) sign bits (codes of +-1)."""

    def __init__(self, codebook_size: int, num_codebooks: int = 1) -> None:
        bits = int(codebook_size).bit_length() - 1
        super().__init__(codebook_size, bits, num_codebooks)
        self.module = _library().LFQ(
            dim=self.dim, codebook_size=codebook_size, num_codebooks=num_codebooks, keep_num_codebooks_dim=True,
        )

    def _lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.module.indices_to_codes(indices)  # (1, N, K*bits)
