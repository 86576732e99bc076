"""Bringing videos to the sizes a model takes, and back.

The model needs ``H, W`` multiples of the spatial factor and ``T = 1 + k * f``. Spatial modes: ``"crop"``
    (default: centre-crop down to the nearest multiple), ``"pad"`` (replicate/reflect-pad the bottom/right edge
    up to the next multiple, as :meth:`onevae.OneVAE.pad_video` does) and ``"resize"`` (resize to the nearest
    multiple). ``resize_short_side`` / ``max_side`` first downscale (never upscale) with antialiased bilinear
    interpolation. Temporal modes: ``"crop"`` (drop trailing frames) and ``"pad"`` (repeat the last frame).
    The returned :class:`Geometry` / :class:`LengthFit` record what was done and can undo it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..errors import InputError

# ============================================================================================ size policy

SIZE_MODES = ("crop", "pad", "resize")
LENGTH_MODES = ("crop", "pad")
PADDING_MODES = ("replicate", "reflect")


@dataclass(frozen=True)
class Geometry:
    """What :func:`fit_size` decided: optional downscale/resize, then a centre crop or a bottom/right pad.

    ``apply`` maps a (…, source_height, source_width) float tensor to (…, height, width); ``undo`` maps a
    (…, height, width) tensor back to the source resolution (for ``"crop"``: the kept region only).
    """

    source_height: int
    source_width: int
    resized_height: int  # after the downscale, and for "resize" after resizing to multiples
    resized_width: int
    height: int  # final
    width: int
    mode: str = "crop"
    multiple: int = 1
    crop_top: int = 0  # in resized pixels
    crop_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    padding: str = "replicate"

    @property
    def resized(self) -> bool:
        return (self.resized_height, self.resized_width) != (self.source_height, self.source_width)

    @property
    def is_identity(self) -> bool:
        return not self.resized and (self.height, self.width) == (self.source_height, self.source_width)

    def apply(self, video: torch.Tensor) -> torch.Tensor:
        """(…, source_height, source_width) float -> (…, height, width)."""
        _check_spatial(video, self.source_height, self.source_width, "source")
        if not video.is_floating_point():
            raise InputError(f"Geometry.apply needs a float video tensor, got dtype {video.dtype}")
        if self.resized:
            video = resize_video(video, self.resized_height, self.resized_width)
        if self.mode == "crop":
            top, left = self.crop_top, self.crop_left
            video = video[..., top : top + self.height, left : left + self.width]
        if self.pad_bottom or self.pad_right:
            video = _pad_bottom_right(video, self.pad_bottom, self.pad_right, self.padding)
        return video

    def undo(self, video: torch.Tensor) -> torch.Tensor:
        """(…, height, width) -> the source resolution: padding removed, resizing inverted.

        For ``"crop"`` the cropped-away border cannot come back: the result is the kept region at source scale.
        """
        _check_spatial(video, self.height, self.width, "fitted")
        video = video[..., : self.height - self.pad_bottom, : self.width - self.pad_right]
        if self.resized:
            h = round(video.shape[-2] * self.source_height / self.resized_height)
            w = round(video.shape[-1] * self.source_width / self.resized_width)
            video = resize_video(video, h, w)
        return video

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Geometry":
        return cls(**data)


@dataclass(frozen=True)
class LengthFit:
    """What :func:`fit_length` decided: trailing frames dropped (``"crop"``) or last frame repeated (``"pad"``).

    Works on the time axis of (3, T, H, W) and (B, 3, T, H, W) tensors (dim -3).
    """

    source_frames: int
    frames: int
    mode: str = "crop"
    factor: int = 1
    pad_frames: int = 0
    dropped_frames: int = 0

    def apply(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() < 4 or video.shape[-3] != self.source_frames:
            raise InputError(f"expected {self.source_frames} frames on dim -3, got shape {tuple(video.shape)}")
        if self.dropped_frames:
            return video[..., : self.frames, :, :]
        if self.pad_frames:
            last = video[..., -1:, :, :]
            repeat = last.expand(*last.shape[:-3], self.pad_frames, *last.shape[-2:])
            return torch.cat([video, repeat], dim=-3)
        return video

    def undo(self, video: torch.Tensor) -> torch.Tensor:
        """Drop the padded frames (dropped frames cannot come back)."""
        if video.dim() < 4 or video.shape[-3] != self.frames:
            raise InputError(f"expected {self.frames} frames on dim -3, got shape {tuple(video.shape)}")
        return video[..., : self.frames - self.pad_frames, :, :]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LengthFit":
        return cls(**data)


@dataclass(frozen=True)
class VideoFit:
    """Both fits of :func:`fit_video`; ``undo`` returns a fitted (…, 3, T, H, W) video to the source size."""

    geometry: Geometry
    length: LengthFit

    def undo(self, video: torch.Tensor) -> torch.Tensor:
        return self.geometry.undo(self.length.undo(video))

    def to_dict(self) -> dict[str, Any]:
        return {"geometry": self.geometry.to_dict(), "length": self.length.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VideoFit":
        return cls(Geometry.from_dict(data["geometry"]), LengthFit.from_dict(data["length"]))


def fit_size(
    height: int,
    width: int,
    multiple: int,
    mode: str = "crop",
    resize_short_side: Optional[int] = None,
    max_side: Optional[int] = None,
    padding: str = "replicate",
) -> Geometry:
    """Choose how to bring a ``height`` x ``width`` frame to multiples of ``multiple``.

    First, optionally downscale (never upscale) so the short side is at most ``resize_short_side`` and the long
    side at most ``max_side``. Then ``"crop"`` centre-crops down to the nearest multiple, ``"pad"`` pads the
    bottom/right edge up to the next multiple (``padding``: "replicate", or "reflect" where the pad is smaller
    than the frame, else replicate), ``"resize"`` resizes to the nearest multiple (at least one multiple).
    """
    _check_choice("size mode", mode, SIZE_MODES)
    _check_choice("padding", padding, PADDING_MODES)
    if height < 1 or width < 1:
        raise InputError(f"frame size must be positive, got {height}x{width}")
    if multiple < 1:
        raise InputError(f"the size multiple must be >= 1, got {multiple}")
    h, w = _downscaled_size(height, width, resize_short_side, max_side)
    common = dict(source_height=height, source_width=width, mode=mode, multiple=multiple, padding=padding)
    if mode == "resize":
        out_h = max(multiple, _round_half_up(h / multiple) * multiple)
        out_w = max(multiple, _round_half_up(w / multiple) * multiple)
        return Geometry(resized_height=out_h, resized_width=out_w, height=out_h, width=out_w, **common)
    if mode == "pad":
        out_h, out_w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        return Geometry(
            resized_height=h, resized_width=w, height=out_h, width=out_w,
            pad_bottom=out_h - h, pad_right=out_w - w, **common,
        )
    out_h, out_w = (h // multiple) * multiple, (w // multiple) * multiple
    if out_h == 0 or out_w == 0:
        raise InputError(
            f"a {h}x{w} frame is smaller than the size multiple {multiple}: it cannot be cropped; "
            "use size mode 'pad' or 'resize'"
        )
    return Geometry(
        resized_height=h, resized_width=w, height=out_h, width=out_w,
        crop_top=(h - out_h) // 2, crop_left=(w - out_w) // 2, **common,
    )


def fit_length(num_frames: int, factor: int, mode: str = "crop") -> LengthFit:
    """Choose how to bring ``num_frames`` to ``1 + k * factor``: ``"crop"`` drops trailing frames down to the
    largest such length, ``"pad"`` repeats the last frame up to the next one."""
    _check_choice("length mode", mode, LENGTH_MODES)
    if num_frames < 1:
        raise InputError(f"a video needs at least one frame, got {num_frames}")
    if factor < 1:
        raise InputError(f"the temporal factor must be >= 1, got {factor}")
    if mode == "crop":
        frames = 1 + ((num_frames - 1) // factor) * factor
        return LengthFit(num_frames, frames, mode, factor, dropped_frames=num_frames - frames)
    frames = 1 + -(-(num_frames - 1) // factor) * factor
    return LengthFit(num_frames, frames, mode, factor, pad_frames=frames - num_frames)


def fit_video(
    video: torch.Tensor,
    multiple: int,
    temporal_factor: int,
    size_mode: str = "crop",
    length_mode: str = "crop",
    resize_short_side: Optional[int] = None,
    max_side: Optional[int] = None,
    padding: str = "replicate",
) -> tuple[torch.Tensor, VideoFit]:
    """Fit a (3, T, H, W) or (B, 3, T, H, W) float video to the model's sizes; returns it and how to undo it."""
    if video.dim() not in (4, 5):
        raise InputError(f"expected a video (3, T, H, W) or (B, 3, T, H, W), got shape {tuple(video.shape)}")
    t, h, w = video.shape[-3:]
    geometry = fit_size(h, w, multiple, size_mode, resize_short_side, max_side, padding)
    length = fit_length(t, temporal_factor, length_mode)
    return geometry.apply(length.apply(video)), VideoFit(geometry, length)


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _downscaled_size(h: int, w: int, short_side: Optional[int], max_side: Optional[int]) -> tuple[int, int]:
    scale = 1.0
    if short_side is not None:
        if short_side < 1:
            raise InputError(f"resize_short_side must be >= 1, got {short_side}")
        scale = min(scale, short_side / min(h, w))
    if max_side is not None:
        if max_side < 1:
            raise InputError(f"max_side must be >= 1, got {max_side}")
        scale = min(scale, max_side / max(h, w))
    if scale >= 1.0:
        return h, w
    return max(1, _round_half_up(h * scale)), max(1, _round_half_up(w * scale))


def _check_spatial(video: torch.Tensor, h: int, w: int, what: str) -> None:
    if not isinstance(video, torch.Tensor) or video.dim() < 3 or tuple(video.shape[-2:]) != (h, w):
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise InputError(f"expected a tensor (…, {h}, {w}) at the {what} size, got {shape}")


def resize_video(video: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize the last two dims of a float tensor (…, H, W) to (h, w): bilinear, antialiased when downscaling."""
    lead, (src_h, src_w) = video.shape[:-2], video.shape[-2:]
    flat = video.reshape(1, -1, src_h, src_w)
    out = F.interpolate(flat, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, h, w)


def _pad_bottom_right(video: torch.Tensor, bottom: int, right: int, padding: str) -> torch.Tensor:
    lead, (h, w) = video.shape[:-2], video.shape[-2:]
    mode = padding if padding == "replicate" or (bottom < h and right < w) else "replicate"
    flat = F.pad(video.reshape(1, -1, h, w), (0, right, 0, bottom), mode=mode)
    return flat.reshape(*lead, h + bottom, w + right)
