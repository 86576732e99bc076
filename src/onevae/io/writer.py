"""Writing videos.

:class:`VideoWriter` / :func:`write_video` encode H.264 (libx264, yuv420p, CRF 18, BT.709 tags) to
    ``.mp4``/``.mov``/``.mkv`` through a temporary file in the same directory, renamed on success.

Lossless (``lossless=True``, ``.mkv`` only): FFV1 in RGB (``bgr0``), every pixel kept at any size; players
    with FFmpeg inside (ffplay, VLC, mpv) play it, browsers do not. What a tokenizer's reconstruction is measured
    on, without H.264's chroma subsampling and quantisation on top. It does not record a non-square sample shape
    (a :class:`~onevae.io.outputs.SampleAspectWarning` says so).

Images: :func:`open_writer` gives a :class:`~onevae.io.image_writer.ImageWriter` for ``.png``/``.jpg``/...
    names (one image, or one per frame for a pattern such as ``out_%05d.png``): see :mod:`onevae.io.image_writer`.

Non-square pixels: ``sample_aspect_ratio`` tags the stream (the H.264 bitstream and the container) with the shape of
    its samples, so that players show frames on an anamorphic source's grid as they show the source (see
    :mod:`onevae.io.video`); square pixels (None or 1) are not tagged.

Odd sizes: yuv420p H.264 needs an even width and height, so odd ones get one replicated pixel at the bottom/right
    (an :class:`OutputSizeWarning` says so). yuv444p would keep them, but few players decode H.264 4:4:4.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import ColorRange, Colorspace

from ..errors import InputError, OneVAEError
from .atomic import replace_durably, temp_file_beside
from .frame_writer import FrameWriter
from .image_writer import ImageWriter
from .outputs import IMAGE_OUTPUTS, OUTPUT_FORMATS, SampleAspectWarning, check_output, is_image_output, sample_aspect_not_recorded
from .paths import PathLike


class OutputSizeWarning(UserWarning):
    """A video is written at another size than its frames (odd sizes padded to even ones for yuv420p)."""


# ============================================================================================ writing


class VideoWriter(FrameWriter):
    """Incremental H.264 writer; use as a context manager. The file appears only when it is complete.

    ``write`` takes uint8 (T, H, W, 3) / (H, W, 3) arrays or float tensors in [-1, 1] shaped (3, T, H, W) or
    (1, 3, T, H, W). Odd heights/widths are padded by one pixel (replicated edge) for yuv420p.
    ``sample_aspect_ratio``: the shape (width / height) of a sample, when the pixels are not square.
    ``lossless``: FFV1 in RGB instead of H.264 (``.mkv``; every pixel kept, odd sizes too; ``crf`` unused).
    """

    def __init__(self, path: PathLike, fps: float = 24.0, crf: int = 18, preset: str = "medium",
                 sample_aspect_ratio: Fraction | None = None, lossless: bool = False) -> None:
        self.path = Path(path)
        if not (fps > 0 and math.isfinite(fps)):
            raise InputError(f"{self.path}: fps must be a positive number, got {fps}")
        self.sample_aspect_ratio = _sar_tag(self.path, sample_aspect_ratio)
        self.format = _output_format(self.path)
        self.lossless = lossless
        if lossless:
            check_output(self.path, lossless=True)
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.crf, self.preset = crf, preset
        self.tmp_path = _create_temp_beside(self.path)
        self.container: av.container.OutputContainer | None = None
        self.stream: av.video.stream.VideoStream | None = None
        self.frames_written = 0
        super().__init__()

    def _write(self, rgb: np.ndarray) -> None:
        for image in rgb if self.lossless else _even_sized(rgb):
            self._encode(image)

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self.closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise InputError(f"{self.path}: no frames were written")
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            replace_durably(self.tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written (the temporary file is removed)."""
        self.closed = True
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # closing a broken container must not hide the original error
                pass
        self.tmp_path.unlink(missing_ok=True)

    def _start(self, height: int, width: int) -> None:
        container = av.open(str(self.tmp_path), mode="w", format=self.format)
        if self.lossless:
            self.container, self.stream = container, _lossless_stream(container, self.path, self.fps, height, width,
                                                                self.sample_aspect_ratio)
            return
        stream = container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        if (stream.width, stream.height) != (width, height):
            warnings.warn(
                f"{self.path} is written as {stream.width}x{stream.height}, not {width}x{height}: H.264 in yuv420p "
                f"(what players decode) needs even sizes, so the last row/column is repeated",
                OutputSizeWarning,
                stacklevel=3,
            )
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
        context.color_range = 1  # limited ("tv") range
        if self.sample_aspect_ratio is not None:  # libx264 writes it in the bitstream, the muxer in the container
            context.sample_aspect_ratio = self.sample_aspect_ratio
        self.container, self.stream = container, stream

    def _encode(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if self.lossless:
            frame = frame.reformat(format=self.stream.pix_fmt)  # the same RGB values, repacked
        else:
            frame = frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
        frame.pts = self.frames_written
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames_written += 1


def _lossless_stream(container: av.container.OutputContainer, path: Path, fps: Fraction, height: int, width: int,
                     sar: Fraction | None) -> av.video.stream.VideoStream:
    """An FFV1 stream of RGB samples (``bgr0``: FFmpeg's usual RGB layout for FFV1), tagged full-range RGB."""
    stream = container.add_stream("ffv1", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
    context = stream.codec_context
    context.colorspace = 0  # RGB: no colour matrix
    context.color_primaries = context.color_trc = 1  # BT.709 / sRGB primaries, as the H.264 output is tagged
    context.color_range = 2  # full range
    if sar is not None:  # neither FFV1 nor the Matroska muxer (PyAV 18) stores it, as they do for H.264
        warnings.warn(sample_aspect_not_recorded(path, sar, "FFV1 videos"), SampleAspectWarning, stacklevel=5)
    return stream


Writer = VideoWriter | ImageWriter


def open_writer(path: PathLike, fps: float = 24.0, sample_aspect_ratio: Fraction | None = None, lossless: bool = False,
                frames: int | None = None) -> Writer:
    """The writer for an output name: a :class:`VideoWriter` (H.264, or FFV1 when ``lossless``) or an
    :class:`~onevae.io.image_writer.ImageWriter` (one image or a frame pattern). ``frames``: how many frames
    will be written, when known, so that a name that cannot hold them is refused before any work."""
    check_output(path, lossless=lossless, frames=frames)
    if is_image_output(path):
        return ImageWriter(path, sample_aspect_ratio=sample_aspect_ratio)
    return VideoWriter(path, fps=fps, sample_aspect_ratio=sample_aspect_ratio, lossless=lossless)


def write_video(
    path: PathLike, frames: np.ndarray | torch.Tensor, fps: float = 24.0, crf: int = 18, preset: str = "medium",
    sample_aspect_ratio: Fraction | None = None,
) -> Path:
    """Write a whole clip (see :class:`VideoWriter` for the accepted frames) atomically; returns the path."""
    with VideoWriter(path, fps=fps, crf=crf, preset=preset, sample_aspect_ratio=sample_aspect_ratio) as writer:
        writer.write(frames)
    return writer.path


def _output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported output extension {path.suffix!r}; use .mp4, .mov or .mkv, or an image "
                         f"({', '.join(IMAGE_OUTPUTS)})")
    return fmt


_SAR_TERMS = 4096  # libx264 reduces the ratio to terms of at most this; so does the writer, so the container agrees


def _sar_tag(path: Path, sar: Fraction | None) -> Fraction | None:
    """The ratio to tag the stream with (terms of at most 4096), or None for square pixels."""
    if sar is None:
        return None
    if not (sar > 0 and math.isfinite(sar)):
        raise InputError(f"{path}: the sample aspect ratio must be a positive number, got {sar}")
    sar = min(max(Fraction(sar), Fraction(1, _SAR_TERMS)), Fraction(_SAR_TERMS))
    bounded = sar.limit_denominator(_SAR_TERMS) if sar < 1 else 1 / (1 / sar).limit_denominator(_SAR_TERMS)
    return None if bounded == 1 else bounded


def _create_temp_beside(path: Path) -> Path:
    """An empty temporary file in the output's directory (so that the final rename is atomic)."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise OneVAEError(f"cannot write {path}: the directory {directory} does not exist")
    if not directory.is_dir():
        raise OneVAEError(f"cannot write {path}: {directory} is not a directory")
    if path.is_dir():
        raise OneVAEError(f"cannot write {path}: it is a directory")
    try:
        return temp_file_beside(path, suffix=f".tmp{path.suffix}")
    except OneVAEError as error:
        raise OneVAEError(f"{error} (the directory {directory} is not writable)") from None


def _even_sized(frames: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by one replicated pixel at the bottom/right: (T, H', W', 3)."""
    h, w = frames.shape[1:3]
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def side_by_side(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """Concatenate two videos horizontally: tensors (…, 3, T, H, W) on W, or uint8 arrays (T, H, W, 3) on W."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape[:-1] != b.shape[:-1]:
            raise InputError(
                f"side_by_side needs the same shape except the width, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        return torch.cat([a, b.to(a.dtype)], dim=-1)
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 4 or a.shape[:2] != b.shape[:2] or a.shape[3:] != b.shape[3:] or a.dtype != b.dtype:
        raise InputError(
            f"side_by_side needs two (T, H, W, 3) arrays with the same T, H and dtype, got {a.shape} and {b.shape}"
        )
    return np.concatenate([a, b], axis=2)
