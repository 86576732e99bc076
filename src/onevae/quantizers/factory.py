"""The bottleneck's quantizer, chosen by ``OneVAEConfig.quantizer``: ``fsq`` (OneVAE's own, the default),
``vq`` or ``lfq`` (vector-quantize-pytorch, for the quantizer comparison of docs/results.md).

Every quantizer has the interface of :class:`~onevae.quantizers.fsq.FSQ`: ``forward(z (..., K*d))`` returns
``(codes (..., K*d), indices (..., K))``, plus ``indices_to_codes``, ``check_indices`` and ``vocab_size``; the
ones with an auxiliary loss (commitment, entropy) leave it in ``aux_loss`` after each forward pass (see
:func:`auxiliary_loss`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .fsq import FSQ

if TYPE_CHECKING:
    from ..config import OneVAEConfig

QUANTIZERS = ("fsq", "vq", "lfq")


def check_quantizer_config(config: OneVAEConfig) -> None:
    """Raise ValueError for a quantizer choice that cannot be built."""
    if config.quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {config.quantizer!r}")
    if config.quantizer == "fsq":
        return
    size = config.codebook_size
    if size is None or int(size) < 2:
        raise ValueError(f"the {config.quantizer} quantizer needs codebook_size >= 2, got {size}")
    if config.quantizer == "vq" and (config.codebook_dim is None or int(config.codebook_dim) < 1):
        raise ValueError(f"the vq quantizer needs codebook_dim >= 1 (channels per token), got {config.codebook_dim}")
    if config.quantizer == "lfq" and not math.log2(int(size)).is_integer():
        raise ValueError(f"the lfq quantizer needs a power-of-two codebook_size, got {size}")


def channels_per_token(config: OneVAEConfig) -> int:
    """Bottleneck channels of one token: FSQ len(levels), VQ codebook_dim, LFQ log2(codebook_size) bits."""
    if config.quantizer == "vq":
        return int(config.codebook_dim)
    if config.quantizer == "lfq":
        return int(math.log2(int(config.codebook_size)))
    return len(config.fsq_levels)


def build_quantizer(config: OneVAEConfig) -> nn.Module:
    """The quantizer module of a discrete model."""
    check_quantizer_config(config)
    if config.quantizer == "fsq":
        return FSQ(config.fsq_levels, config.num_codebooks)
    from .library import LibraryLFQ, LibraryVQ  # vector-quantize-pytorch is optional: imported only here

    if config.quantizer == "vq":
        return LibraryVQ(int(config.codebook_size), int(config.codebook_dim), config.num_codebooks)
    return LibraryLFQ(int(config.codebook_size), config.num_codebooks)


def auxiliary_loss(quantizer: nn.Module) -> torch.Tensor | None:
    """The auxiliary loss of the quantizer's last forward pass (None for FSQ, which has none)."""
    return getattr(quantizer, "aux_loss", None)
