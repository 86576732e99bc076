"""Exponential moving average of the weights, saved with the training state and usable for export."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from ..nn.float32 import TensorFn, at_least_float32


class EMA(nn.Module):
    """Shadow copies of a model's floating-point parameters (buffers, so they follow the module's device
    and land in its state dict). ``decay`` is constant (official: 0.9999) unless ``warmup`` is on, then it is
    ``min(decay, (1 + n) / (10 + n))`` after n updates, which suits short runs.

    The shadows are float32 and stay at least float32 when the module is cast (Lightning's ``bf16-true`` and
    ``16-true`` cast every submodule; ``64-true`` makes them float64): with a decay of 0.9999, an update of
    1e-4 times the difference would vanish in bfloat16's 8 bits."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = False) -> None:
        super().__init__()
        self.decay = decay
        self.warmup = warmup
        self.names = [name for name, p in model.named_parameters() if p.is_floating_point()]
        self._backup: dict[str, torch.Tensor] | None = None  # the model's own weights while EMA ones are in
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        for name, p in model.named_parameters():
            if p.is_floating_point():
                self.register_buffer(self.shadow_key(name), p.detach().clone().float())

    def _apply(self, fn: TensorFn, recurse: bool = True) -> EMA:
        """``nn.Module``'s cast or move of every buffer, never below float32 (the update counter stays int64)."""
        return super()._apply(at_least_float32(fn), recurse)

    @staticmethod
    def shadow_key(name: str) -> str:
        """The buffer name of parameter ``name``'s shadow (dots are not allowed in buffer names)."""
        return "shadow__" + name.replace(".", "__")

    def current_decay(self) -> float:
        n = int(self.num_updates)
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        shadows = self._buffers_by_name()
        for name, p in model.named_parameters():
            if name in shadows:
                shadow = shadows[name]
                shadow.lerp_(p.detach().to(shadow.dtype), 1.0 - decay)
        self.num_updates += 1

    def _buffers_by_name(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, self.shadow_key(name)) for name in self.names}

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Put the EMA weights into ``model``, each rounded to its parameter's dtype."""
        shadows = self._buffers_by_name()
        for name, p in model.named_parameters():
            if name in shadows:
                p.copy_(shadows[name].to(p.dtype))

    @torch.no_grad()
    def swap_in(self, model: nn.Module) -> None:
        """Put the EMA weights into ``model``, keeping its own weights to restore with :meth:`swap_out`."""
        if self._backup is not None:
            raise RuntimeError("EMA weights are already swapped in")
        self._backup = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.copy_to(model)

    @torch.no_grad()
    def swap_out(self, model: nn.Module) -> None:
        """Restore the weights :meth:`swap_in` replaced."""
        if self._backup is None:
            raise RuntimeError("EMA weights are not swapped in")
        for name, p in model.named_parameters():
            p.copy_(self._backup[name])
        self._backup = None

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """Temporarily run ``model`` with the EMA weights."""
        self.swap_in(model)
        try:
            yield
        finally:
            self.swap_out(model)
