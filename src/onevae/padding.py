"""Padding a video up to a size the model takes, and cropping it back: the one implementation used by the
model (:meth:`onevae.OneVAE.pad_video`), streaming (the last incomplete chunk) and file fitting
(:mod:`onevae.io.fit`).

Time is padded at the end by repeating the last frame; space at the bottom/right edge (replicate, or
reflect where the frame is large enough), so that the top-left content keeps its position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def repeat_last_frame(video: torch.Tensor, count: int) -> torch.Tensor:
    """(…, T, H, W) -> (…, T + count, H, W), the last frame repeated."""
    if count <= 0:
        return video
    last = video[..., -1:, :, :]
    return torch.cat([video, last.expand(*last.shape[:-3], count, *last.shape[-2:])], dim=-3)


def pad_bottom_right(video: torch.Tensor, bottom: int, right: int, mode: str = "replicate") -> torch.Tensor:
    """(…, H, W) -> (…, H + bottom, W + right); ``reflect`` falls back to ``replicate`` on frames too small."""
    if not bottom and not right:
        return video
    lead, (h, w) = video.shape[:-2], video.shape[-2:]
    if mode == "reflect" and (bottom >= h or right >= w):
        mode = "replicate"
    flat = F.pad(video.reshape(1, -1, h, w), (0, right, 0, bottom), mode=mode)
    return flat.reshape(*lead, h + bottom, w + right)


@dataclass(frozen=True)
class Padding:
    """What :func:`pad_to_multiple` added: repeated last frames, replicated bottom rows and right columns."""

    frames: int = 0
    height: int = 0
    width: int = 0

    def crop(self, video: torch.Tensor) -> torch.Tensor:
        """Undo the padding on a decoded video (…, T, H, W)."""
        t, h, w = (video.shape[-3] - self.frames, video.shape[-2] - self.height, video.shape[-1] - self.width)
        return video[..., :t, :h, :w]

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "height": self.height, "width": self.width}


def padding_for(t: int, h: int, w: int, temporal_factor: int, spatial_factor: int) -> Padding:
    """The smallest padding that makes ``t = 1 + k*temporal_factor`` and ``h, w`` multiples of ``spatial_factor``."""
    return Padding(frames=(-(t - 1)) % temporal_factor, height=(-h) % spatial_factor, width=(-w) % spatial_factor)


def pad_to_multiple(video: torch.Tensor, temporal_factor: int, spatial_factor: int) -> tuple[torch.Tensor, Padding]:
    """(…, T, H, W) -> the next valid size, and what was added."""
    padding = padding_for(*video.shape[-3:], temporal_factor, spatial_factor)
    video = pad_bottom_right(video, padding.height, padding.width)
    return repeat_last_frame(video, padding.frames), padding
