"""Tensors that a whole-module cast must not lower below float32.

``nn.Module.to``, ``.half``, ``.bfloat16``, ``.type``, ``.cuda`` ... all hand one per-tensor function to
``nn.Module._apply``. A module that owns numbers which must stay exact (OneVAE's token path, the EMA shadows)
overrides ``_apply`` and wraps that function with :func:`at_least_float32`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TensorFn = Callable[[torch.Tensor], torch.Tensor]


def at_least_float32(fn: TensorFn) -> TensorFn:
    """``fn`` (the per-tensor function of ``nn.Module._apply``), except that it never lowers precision: a floating
    tensor it would cast below float32 (bfloat16, float16, float8) is converted to float32 from the original, not
    rounded through the lower dtype; an integer or bool tensor keeps its dtype. Device moves, float32 and float64
    (``.double()``) go through unchanged."""

    def apply(tensor: torch.Tensor) -> torch.Tensor:
        result = fn(tensor)
        if result.dtype == tensor.dtype:
            return result
        if not tensor.is_floating_point():
            return tensor.to(device=result.device)
        if result.is_floating_point() and result.dtype.itemsize < torch.float32.itemsize:
            return tensor.to(device=result.device, dtype=torch.float32)
        return result

    return apply
