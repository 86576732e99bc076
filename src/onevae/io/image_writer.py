"""Writing frames as image files: one image, or one image per frame.

:class:`ImageWriter` has :class:`~onevae.io.writer.VideoWriter`'s interface (``write`` / ``close`` / ``abort``,
a context manager), so that every command that writes a video can write images instead:

* ``out.png`` (or ``.jpg/.jpeg/.webp/.bmp/.tif/.tiff``): one image, for a one-frame clip (an image is a one-frame
  video); a second frame is refused rather than dropped.
* ``frames/out_%05d.png``: one image per frame, numbered from 1 as FFmpeg's image muxer numbers them (``%d``,
  ``%05d``: a printf-style frame number; ``%%`` is a literal ``%``).

PNG, BMP, TIFF and WebP (written lossless) keep every pixel; JPEG is written at quality 95 without chroma
subsampling. As with videos, nothing appears until the writer closes: each frame is written under a temporary
name beside its target, and all are renamed into place at the end; ``abort`` removes them.
PIL, not FFmpeg's image2 muxer: PIL writes each format's usual settings and names files exactly as given.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, OneVAEError
from .atomic import atomic_path, replace_durably, temp_file_beside
from .frame_writer import FrameWriter
from .outputs import SampleAspectWarning, check_output, frame_pattern, numbered, sample_aspect_not_recorded
from .paths import PathLike
from .video import as_uint8_frames

_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True, "quality": 100}}


class StaleFramesWarning(UserWarning):
    """A frame sequence was written over a longer one: the longer one's later frame files remain."""


class ImageWriter(FrameWriter):
    """Frames to image files (see the module): one image for a plain name, one per frame for a pattern.

    ``write`` takes what :class:`~onevae.io.writer.VideoWriter` takes: uint8 (T, H, W, 3) / (H, W, 3), or float
    tensors (3, T, H, W) / (1, 3, T, H, W) in [-1, 1]. ``sample_aspect_ratio``: image files cannot record it, so a
    non-square one is written as stored, with a :class:`~onevae.io.outputs.SampleAspectWarning`.
    """

    def __init__(self, path: PathLike, sample_aspect_ratio: Fraction | None = None) -> None:
        self.path = Path(path)
        check_output(self.path)
        self.pattern = frame_pattern(self.path)
        self.sample_aspect_ratio = sample_aspect_ratio
        self.pending: list[tuple[Path, Path]] = []  # (temporary file, target), in frame order
        super().__init__()

    @property
    def frames_written(self) -> int:
        return len(self.pending)

    def _start(self, height: int, width: int) -> None:
        self._warn_aspect()

    def _write(self, rgb: np.ndarray) -> None:
        """Write frames under temporary names (they are renamed into place by :meth:`close`)."""
        if self.pattern is None and self.frames_written + len(rgb) > 1:
            self.abort()
            raise InputError(f"{self.path}: one image cannot hold more than one frame; name a frame pattern (out_%05d"
                             f"{self.path.suffix}) or a video (.mp4, .mkv)")
        for image in rgb:
            self._save(image)

    def close(self) -> Path:
        """Rename every frame into place; returns the path as given (the pattern, for a sequence)."""
        if self.closed:
            return self.path
        if not self.pending:
            self.abort()
            raise InputError(f"{self.path}: no frames were written")
        try:
            for tmp, target in self.pending:
                replace_durably(tmp, target)
        except BaseException:
            self.abort()
            raise
        self.closed = True
        self._warn_stale_frames()
        return self.path

    def abort(self) -> None:
        """Discard the frames not yet renamed into place."""
        self.closed = True
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)

    def _save(self, image: np.ndarray) -> None:
        target = numbered(self.path, self.frames_written + 1)  # a plain name: its '%%' unescaped
        tmp = temp_file_beside(target, suffix=f".tmp{self.path.suffix}")
        self.pending.append((tmp, target))
        save_image(tmp, image, target)

    def _warn_aspect(self) -> None:
        sar = self.sample_aspect_ratio
        if sar is not None and sar != 1:
            warnings.warn(sample_aspect_not_recorded(self.path, sar, "image files"), SampleAspectWarning, stacklevel=3)

    def _warn_stale_frames(self) -> None:
        after = numbered(self.path, self.frames_written + 1) if self.pattern else None
        if after is not None and after.exists():
            warnings.warn(f"{after} (and any later frame files) are from an earlier write: this sequence has "
                          f"{self.frames_written} frames", StaleFramesWarning, stacklevel=3)


def save_image(file: Path, image: np.ndarray, name: Path | None = None) -> None:
    """Save one uint8 (H, W, 3) image to ``file`` in the format of ``name``'s extension (default: ``file``'s)."""
    from PIL import Image

    name = Path(name or file)
    try:
        fmt = _PIL_FORMATS[name.suffix.lower()]
        Image.fromarray(image).save(file, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except KeyError:
        raise OneVAEError(f"output {name}: not an image name ({', '.join(_PIL_FORMATS)})") from None
    except OSError as error:
        raise OneVAEError(f"cannot write {name}: {error.strerror or error}") from None


def write_image(path: PathLike, image: np.ndarray | torch.Tensor) -> Path:
    """Write one image (uint8 (H, W, 3), or a one-frame float video) atomically, under exactly this name (no
    frame pattern: a ``%`` is kept); returns the path."""
    frames = as_uint8_frames(image)  # (1, H, W, 3)
    if len(frames) != 1:
        raise InputError(f"{path}: one image cannot hold {len(frames)} frames")
    with atomic_path(path) as tmp:
        save_image(tmp, frames[0], Path(path))
    return Path(path)
