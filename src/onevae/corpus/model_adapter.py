"""The one place where the corpus tools touch the model beyond its config: streaming a clip through the
encoder, and decoding token grids. Everything else in :mod:`onevae.corpus` works on plain lists of tensors.

The core is being refactored (grids may become a typed object with ``.first``/``.rest``): only this module has
to follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class EncodedClip:
    """A clip's grids in the model's order: ``[all]`` or ``[first_frame, rest]``."""

    tokens: Optional[list[torch.Tensor]]  # (1, t, h, w, K) int32, or None
    latents: Optional[list[torch.Tensor]]  # (1, z, t, h, w) in the stored dtype, or None
    padded_frames: int  # frames added at the end (repeat of the last frame) to reach 1 + k*tf


def as_grid_list(grids: Any, first_frame_highres: bool) -> list[torch.Tensor]:
    """A plain list of grids from whatever the model returns (a list today; a typed object later)."""
    if isinstance(grids, (list, tuple)):
        return list(grids)
    if hasattr(grids, "first") and hasattr(grids, "rest"):
        return [grids.first, grids.rest] if first_frame_highres else [grids.rest]
    raise TypeError(f"unexpected grid container {type(grids).__name__}")


class ClipEncoder:
    """Streams one clip through the model exactly as ``onevae encode`` does (frame 0, then chunks of
    ``chunk_latents * tf`` frames, the last chunk padded by repeating the last frame), keeping the grids on the CPU
    in their stored types: int32 tokens, ``latent_dtype`` latents."""

    def __init__(self, model, chunk_latents: int, tokens: bool, latents: bool, latent_dtype: torch.dtype) -> None:
        from ..model import StreamingEncoder

        self.model, self.want_tokens, self.want_latents, self.latent_dtype = model, tokens, latents, latent_dtype
        self.highres = bool(model.config.first_frame_highres)
        self.encoder = StreamingEncoder(model, chunk_frames=chunk_latents * model.config.temporal_factor, tokens=False)
        self.token_parts: list[list[torch.Tensor]] = []
        self.latent_parts: list[list[torch.Tensor]] = []

    @torch.no_grad()
    def push(self, frames: torch.Tensor) -> None:
        """Frames (1, 3, t, H, W) float in [-1, 1], on any device."""
        self._keep(self.encoder.push(frames.to(self.model.device, self.model.dtype)))

    @torch.no_grad()
    def finish(self) -> EncodedClip:
        from ..model import concat_grids

        tail, added = self.encoder.finish()
        self._keep(tail)
        tokens = concat_grids(self.token_parts, time_dim=1) if self.want_tokens else None
        latents = concat_grids(self.latent_parts, time_dim=2) if self.want_latents else None
        return EncodedClip(tokens, latents, int(added))

    def _keep(self, latents: Any) -> None:
        latents = as_grid_list(latents, self.highres) if latents else []
        if not latents:
            return
        if self.want_tokens:  # the same per-chunk projection + FSQ as StreamingEncoder(tokens=True)
            tokens = as_grid_list(self.model.latents_to_tokens(latents), self.highres)
            self.token_parts.append([g.to("cpu", torch.int32) for g in tokens])
        if self.want_latents:
            self.latent_parts.append([g.to("cpu", self.latent_dtype) for g in latents])


def check_token_grids(model, grids: list[torch.Tensor]) -> None:
    """Refuse token values outside the vocabulary (one clear InputError)."""
    for grid in grids:
        model.quantizer.check_indices(grid)
