"""The one place where the corpus tools touch the model beyond its config: streaming a clip through the
encoder exactly as :func:`onevae.pipeline.encode_file` does. Everything else in :mod:`onevae.corpus` works on
plain lists of tensors in the stored order (``[all]`` or ``[first_frame, rest]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EncodedClip:
    """A clip's grids in the stored order: ``[all]`` or ``[first_frame, rest]``."""

    tokens: list[torch.Tensor] | None  # (1, t, h, w, K) int32, or None
    latents: list[torch.Tensor] | None  # (1, z, t, h, w) in the stored dtype, or None
    padded_frames: int  # frames added at the end (repeat of the last frame) to reach 1 + k*tf


def grid_names(model) -> list[str]:
    from ..latents import Grids

    return Grids.names(model.config.first_frame_highres)


class ClipEncoder:
    """Streams one clip through the model as ``onevae encode`` does (frame 0, then chunks of ``chunk_latents * tf``
    frames, tiled where the pipeline would tile, the last chunk padded by repeating the last frame), keeping the
    grids on the CPU in their stored types: int32 tokens, ``latent_dtype`` latents. A frame too large for every
    tile's caches at once keeps the clip's frames and encodes it tile by tile at :meth:`finish`. ``clip_frames``:
    the clip's length when known before its first frames (memory is then planned for the largest piece it
    streams in, :func:`onevae.pipeline.piece_frames`); None plans for a whole chunk."""

    def __init__(self, model, chunk_latents: int, tokens: bool, latents: bool, latent_dtype: torch.dtype,
                 clip_frames: int | None = None) -> None:
        self.model, self.want_tokens, self.want_latents, self.latent_dtype = model, tokens, latents, latent_dtype
        self.chunk = chunk_latents * model.config.temporal_factor
        self.clip_frames = clip_frames
        self.encoder = None
        self.kept: list[torch.Tensor] | None = None  # the clip's frames, when it is encoded tile by tile at the end
        self.kept_bytes, self.keep_budget = 0, None  # their size, and the most they may take (half the memory)
        self.token_parts: list = []
        self.latent_parts: list = []

    @torch.no_grad()
    def push(self, frames: torch.Tensor) -> None:
        """Frames (1, 3, t, H, W) float in [-1, 1], on any device."""
        frames = frames.to(self.model.device, self.model.encode_dtype)
        if self.encoder is None:
            self._open(*frames.shape[-2:])
        if self.kept is not None:
            self._keep_frames(frames)
        else:
            self._keep(self.encoder.push(frames))

    def _open(self, height: int, width: int) -> None:
        """Frame by frame (every tile keeping its caches) when that fits, as encode_file; else tile by tile over
        the clip kept in memory (one tile's caches alive), as encode_file does over the file."""
        from ..pipeline import available_memory, piece_frames, plan_streaming, plan_tiling
        from ..streaming import encoder_for

        planned = piece_frames(self.model, self.chunk, self.clip_frames)
        tiling, tile_by_tile = plan_streaming(lambda tbt: plan_tiling(self.model, height, width, planned, tbt), height, width)
        if tile_by_tile:
            self.kept, memory = [], available_memory(self.model.device)
            self.keep_budget = None if memory is None else memory // 2
        self.encoder = encoder_for(self.model, height, width, self.chunk, tiling=tiling)

    def _keep_frames(self, frames: torch.Tensor) -> None:
        from ..errors import InputError

        self.kept.append(frames)
        self.kept_bytes += frames.numel() * frames.element_size()
        if self.keep_budget is not None and self.kept_bytes > self.keep_budget:
            t = sum(f.shape[2] for f in self.kept)
            raise InputError(f"a clip of {t}+ frames of {frames.shape[-1]}x{frames.shape[-2]} is encoded tile by tile from memory "
                             f"and does not fit ({self.kept_bytes / 2**30:.1f} GiB so far); cut shorter clips (--clip-frames) or downscale")

    @torch.no_grad()
    def finish(self) -> EncodedClip:
        if self.kept is not None:
            latents, _, added = self.encoder.encode_rereading(lambda: iter(self.kept))
            self.kept = None
            self._keep(latents)
        else:
            tail, added = self.encoder.finish()
            self._keep(tail)
        tokens = type(self.token_parts[0]).cat(self.token_parts).to_list() if self.want_tokens else None
        latents = type(self.latent_parts[0]).cat(self.latent_parts).to_list() if self.want_latents else None
        return EncodedClip(tokens, latents, int(added))

    def _keep(self, latents) -> None:
        from ..guards import check_finite

        if latents is None:
            return
        check_finite(latents.to_list(), "latents", self.model)  # a NaN latent would become token 0
        if self.want_tokens:  # the same per-chunk projection + FSQ as encode_file
            self.token_parts.append(self.model.latents_to_tokens(latents).to("cpu", torch.int32))
        if self.want_latents:
            self.latent_parts.append(latents.to("cpu", self.latent_dtype))


def compute_dtype(model) -> str:
    """The encoder's compute dtype (recorded with a run: it decides the bytes)."""
    return str(model.encode_dtype).replace("torch.", "")
