"""Checks that stop inference before it produces a wrong result or asks for more memory than there is.

Self-contained on purpose: the pipeline calls them in one line each, whatever shape the model code takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .errors import InputError

Tensors = torch.Tensor | Sequence[torch.Tensor]


def check_finite(tensors: Tensors, what: str, model=None) -> Tensors:
    """Return ``tensors`` unchanged, or raise :class:`InputError` naming why they hold NaN/inf: the model's
    weights, a float16 overflow, or the input. A NaN latent would otherwise become token 0 (or a NaN file)
    and a NaN frame black pixels, all with exit code 0."""
    items = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if all(bool(torch.isfinite(t).all()) for t in items if t.is_floating_point()):
        return tensors
    raise InputError(f"the model produced non-finite {what} (NaN or inf): {_nonfinite_cause(model)}")


def _nonfinite_cause(model) -> str:
    if model is None:
        return "check the model and the input"
    bad = first_nonfinite(model.state_dict().items())
    if bad is not None:
        return f"its weights hold NaN/inf (first in {bad}); the model is broken, retrain or re-export it"
    if getattr(model, "dtype", None) == torch.float16:
        return "float16 overflowed; use --dtype bfloat16 or float32"
    return "its weights are finite, so the input or the computation overflowed; try --dtype float32"


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first floating-point tensor holding NaN/inf, or None."""
    for name, tensor in named:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None
