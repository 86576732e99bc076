"""The names a decoded clip can be written to, checked before any work (no FFmpeg, PIL or torch imported here).

* a video: ``.mp4``/``.mov``/``.mkv`` (H.264; lossless FFV1 in ``.mkv`` only): :mod:`onevae.io.writer`;
* one image (``.png``/``.jpg``/``.jpeg``/``.webp``/``.bmp``/``.tif``/``.tiff``), for a one-frame clip, or one image
  per frame for a name with a printf-style frame number (``out_%05d.png``; ``%%`` is a literal ``%``), numbered
  from 1 as FFmpeg numbers them: :mod:`onevae.io.image_writer` (the name syntax: :mod:`onevae.io.frame_files`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OneVAEError
from .frame_files import frame_pattern, numbered
from .paths import PathLike, writable_output

OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}  # video name -> FFmpeg muxer
VIDEO_OUTPUTS = tuple(OUTPUT_FORMATS)
LOSSLESS_VIDEO_OUTPUTS = (".mkv",)  # FFV1: the mp4 and mov muxers do not take it
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
LOSSY_IMAGE_OUTPUTS = (".jpg", ".jpeg")
OUTPUTS = VIDEO_OUTPUTS + IMAGE_OUTPUTS


class SampleAspectWarning(UserWarning):
    """Frames of non-square samples go where their shape cannot be recorded (image files, FFV1 in .mkv): they are
    written as stored, so they display narrower or wider than the source."""


def sample_aspect_not_recorded(path: PathLike, sar, what: str) -> str:
    """The one-line warning for :class:`SampleAspectWarning` (``sar``: the samples' width / height, not 1)."""
    return (f"{path}: {what} do not record a sample aspect ratio; the frames are written as stored, so they look "
            f"{'narrower' if sar > 1 else 'wider'} than the {sar.numerator}:{sar.denominator} source (H.264 .mp4/.mkv keeps it)")


def is_image_output(path: PathLike) -> bool:
    """Whether ``path`` names image output (one image, or a frame pattern), by its extension."""
    return Path(path).suffix.lower() in IMAGE_OUTPUTS


def check_output(path: PathLike, lossless: bool = False, frames: int | None = None) -> None:
    """Refuse an output name no writer can fill: an unknown extension, a frame pattern for a video, lossless
    video outside ``.mkv``, lossless JPEG, several frames (``frames``, when known) for one image."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUTS:
        raise OneVAEError(f"output {path}: the name must end in a video extension ({', '.join(VIDEO_OUTPUTS)}) or an "
                          f"image one ({', '.join(IMAGE_OUTPUTS)})")
    pattern = frame_pattern(path)
    if suffix in VIDEO_OUTPUTS:
        if pattern is not None:
            raise OneVAEError(f"output {path}: a frame number ({pattern}) names image files; a video is one file")
        if lossless and suffix not in LOSSLESS_VIDEO_OUTPUTS:
            raise OneVAEError(f"output {path}: lossless video is FFV1, which only .mkv holds; name it .mkv (or write "
                              f"frames: {path.with_name(path.stem + '_%05d.png')})")
        return
    if lossless and suffix in LOSSY_IMAGE_OUTPUTS:
        raise OneVAEError(f"output {path}: JPEG is lossy; for lossless frames write .png (or .webp, .tif, .bmp)")
    if pattern is None and frames is not None and frames > 1:
        example = path.with_name(f"{path.stem}_%05d{path.suffix}")
        raise OneVAEError(f"output {path}: one image cannot hold {frames} frames; name a frame pattern ({example}) or a "
                          "video (.mp4, .mkv)")


def video_suffix(lossless: bool = False) -> str:
    """The suffix of the videos a command names itself (each clip of a batch in a folder): .mkv when lossless
    (FFV1), else .mp4."""
    return LOSSLESS_VIDEO_OUTPUTS[0] if lossless else ".mp4"


def checked_output(output: PathLike, source: PathLike, lossless: bool = False) -> Path:
    """``output`` as a name a writer can fill, in a writable directory, that is not the input ``source``: what a
    command checks before any work."""
    out = writable_output(output, OUTPUTS, inputs=[source])
    check_output(out, lossless=lossless)
    return out


def written_names(path: PathLike, frames: int) -> str:
    """How to name what was written, for a message: the file, or a pattern's first and last frame files."""
    if frame_pattern(path) is None:
        return str(numbered(path, 1))
    first, last = numbered(path, 1), numbered(path, frames)
    return str(first) if frames == 1 else f"{first} ... {last.name}"
