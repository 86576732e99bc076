"""Bringing videos to the sizes a model takes, and back.

The model needs ``H, W`` multiples of the spatial factor and ``T = 1 + k * f``. Spatial modes: ``"crop"``
    (default: centre-crop down to the nearest multiple), ``"pad"`` (replicate/reflect-pad the bottom/right edge
    up to the next multiple, as :meth:`onevae.OneVAE.pad_video` does) and ``"resize"`` (resize to the nearest
    multiple). ``resize_short_side`` / ``max_side`` first downscale (never upscale) with antialiased bilinear
    interpolation. The returned :class:`Geometry` records what was done and can undo it. (Clip length is
    brought to ``1 + k * f`` while streaming, by repeating the last frame: :mod:`onevae.padding`.)

Sample aspect ratio (SAR): the shape of a stored sample (width / height; 1 for square pixels). Crop and pad keep
    it, and so does :meth:`Geometry.undo` (frames back at the source's scale); only the fitted frames of a resize
    that changes the grid's proportions have other samples (:meth:`Geometry.fitted_sample_aspect`). It is written
    ``"num:den"`` in metadata (:func:`aspect_text`, :func:`parse_aspect`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..padding import pad_bottom_right

# ============================================================================================ size policy

SIZE_MODES = ("crop", "pad", "resize")
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
            video = pad_bottom_right(video, self.pad_bottom, self.pad_right, self.padding)
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

    def fitted_sample_aspect(self, source_sar: Fraction) -> Fraction:
        """The sample aspect ratio of the fitted (height x width) frames of a source whose samples have
        ``source_sar``: a resize stretches the samples by the ratio of its horizontal and vertical scales; a crop
        or a pad keeps them. (Frames brought back by :meth:`undo` have the source's.)"""
        if not self.resized:
            return source_sar
        return source_sar * Fraction(self.source_width * self.resized_height, self.resized_width * self.source_height)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        return cls(**data)


def fit_size(
    height: int,
    width: int,
    multiple: int,
    mode: str = "crop",
    resize_short_side: int | None = None,
    max_side: int | None = None,
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
            "use size mode 'pad' or 'resize' (--pad or --resize on the command line)"
        )
    return Geometry(
        resized_height=h, resized_width=w, height=out_h, width=out_w,
        crop_top=(h - out_h) // 2, crop_left=(w - out_w) // 2, **common,
    )


# ============================================================================================ sample aspect ratio


def aspect_text(sar: Fraction) -> str:
    """``Fraction(32, 27)`` -> ``"32:27"`` (as FFmpeg writes it)."""
    return f"{sar.numerator}:{sar.denominator}"


def parse_aspect(value: Any) -> Fraction:
    """``"32:27"`` -> ``Fraction(32, 27)``; InputError unless it is two positive integers ``"num:den"``."""
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 9 and int(p) > 0 for p in parts):
        raise InputError(f"a sample aspect ratio must be 'num:den' (two positive integers, e.g. '32:27'), got {value!r}")
    return Fraction(int(parts[0]), int(parts[1]))


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _downscaled_size(h: int, w: int, short_side: int | None, max_side: int | None) -> tuple[int, int]:
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
