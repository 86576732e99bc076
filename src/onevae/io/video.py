"""Reading, fitting and writing videos (PyAV / FFmpeg), streaming and with clear errors.

Reading
    :func:`probe_video` describes a file; :func:`iter_video_frames` streams (H, W, 3) uint8 RGB frames;
    :func:`iter_video_windows` streams (3, t, H, W) float windows in [-1, 1]; :func:`read_video` reads a small
    clip at once. Any container/codec FFmpeg reads works; ``.png/.jpg/.jpeg/.webp/.bmp/.tif`` are read with PIL
    as one-frame clips; a ``.gz`` file (e.g. ``box.mp4.gz``) is decompressed in memory.

Pixel formats
    Every pixel format is converted to rgb24 by swscale, honouring the colour matrix and range the file is
    tagged with (untagged files: BT.601 limited range, as FFmpeg does). Grey frames are replicated to three
    channels. **Alpha is dropped** (the stored colour is kept, even where a pixel is transparent), as
    ``ffmpeg`` and PIL's ``convert("RGB")`` do.

Frame rate (``fps=``)
    Output frame *k* is shown at ``t0 + k / fps`` (``t0`` = the first frame's timestamp, or the requested start);
    it is the source frame whose timestamp (pts) is nearest to that time (ties go to the earlier frame). This
    works for variable-frame-rate files. Output times run until the end of the last source frame (its stored
    duration, else the interval before it), so a 2 s clip at 30 fps resampled to 10 fps gives 20 frames.

Corrupt data
    When FFmpeg fails in the middle of a file (truncated or corrupt data), reading stops at the last good
    frame with a :class:`VideoReadWarning`; if no frame at all could be decoded it raises :class:`InputError`.
    Damage that FFmpeg conceals (no error) cannot be seen here.

Size policy (:func:`fit_size`, :func:`fit_length`, :func:`fit_video`)
    The model needs ``H, W`` multiples of the spatial factor and ``T = 1 + k * f``. Spatial modes: ``"crop"``
    (default: centre-crop down to the nearest multiple), ``"pad"`` (replicate/reflect-pad the bottom/right edge
    up to the next multiple, as :meth:`onevae.OneVAE.pad_video` does) and ``"resize"`` (resize to the nearest
    multiple). ``resize_short_side`` / ``max_side`` first downscale (never upscale) with antialiased bilinear
    interpolation. Temporal modes: ``"crop"`` (drop trailing frames) and ``"pad"`` (repeat the last frame).
    The returned :class:`Geometry` / :class:`LengthFit` record what was done and can undo it.

Writing
    :class:`VideoWriter` / :func:`write_video` encode H.264 (libx264, yuv420p, CRF 18, BT.709 tags) to
    ``.mp4``/``.mov``/``.mkv`` through a temporary file in the same directory, renamed on success.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import warnings
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import ColorRange, Colorspace

from ..errors import InputError, OneVAEError
from .atomic import temp_file_beside
from .paths import existing_file

PathLike = Union[str, os.PathLike]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif", ".ts")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

MAX_GZ_BYTES = 2 * 2**30  # a .gz video is decompressed in memory, up to this size
_TIME_EPS = 1e-6  # seconds: timestamps closer than this are equal
_VFR_PACKETS = 120  # packets inspected by probe_video to detect a variable frame rate
_COUNT_FRAMES_MAX_BYTES = 64 * 2**20  # probe_video counts packets itself for files up to this size


class VideoReadWarning(UserWarning):
    """A video was only partly readable (truncated or corrupt data); reading stopped at the last good frame."""


# ============================================================================================ probing


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found. ``fps`` is the average rate (0.0 for a still image)."""

    path: Path
    width: int
    height: int
    num_frames: int  # exact when ``num_frames_exact``, else estimated from duration * fps
    fps: float
    duration_s: float
    codec: str
    pix_fmt: str
    has_alpha: bool
    is_grayscale: bool
    variable_frame_rate: Optional[bool]  # None when the timestamps could not tell
    num_frames_exact: bool = True
    is_image: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (for metadata files)."""
        return {**asdict(self), "path": str(self.path)}


def probe_video(path: PathLike, count_frames: bool = False) -> VideoInfo:
    """Describe a video (or image) file; raise :class:`InputError` if it has no decodable video frame.

    Decodes the first frame (to make sure the file is readable) and demuxes about a hundred packets (to detect a
    variable frame rate). ``count_frames=True`` demuxes the whole file (no decoding) to count the frames exactly
    when the container does not store the count (done anyway for files up to 64 MiB).
    """
    path = _check_input_file(path)
    if _is_image(path):
        return _probe_image(path)
    with _open_video_stream(path) as (container, stream):
        header_frames = int(stream.frames or 0)
        count_all = count_frames or (header_frames == 0 and _file_size(path) <= _COUNT_FRAMES_MAX_BYTES)
        first_frame, pts, counted = _scan_packets(container, stream, path, count_all)
        fps, duration = _stream_fps(stream), _stream_duration(container, stream)
        if counted:
            num_frames, exact = counted, True
        elif header_frames:
            num_frames, exact = header_frames, True
        else:
            num_frames, exact = (max(1, round(duration * fps)) if fps else 1), False
        fmt = first_frame.format
        return VideoInfo(
            path=path,
            width=first_frame.width,
            height=first_frame.height,
            num_frames=num_frames,
            fps=fps,
            duration_s=duration or (num_frames / fps if fps else 0.0),
            codec=stream.codec_context.name,
            pix_fmt=fmt.name,
            has_alpha=any(c.is_alpha for c in fmt.components),
            is_grayscale=_is_grayscale_format(fmt),
            variable_frame_rate=_looks_variable_rate(pts),
            num_frames_exact=exact,
        )


def _scan_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path, count_all: bool
) -> tuple[av.VideoFrame, list[int], int]:
    """(first decoded frame, pts of the first packets, number of packets or 0 when not counted to the end)."""
    pts: list[int] = []
    first_frame: Optional[av.VideoFrame] = None
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            packets += 1
            if packet.pts is not None and len(pts) < _VFR_PACKETS:
                pts.append(int(packet.pts))
            if first_frame is None:
                first_frame = next(iter(packet.decode()), None)
            if first_frame is not None and packets >= _VFR_PACKETS and not count_all:
                return first_frame, pts, 0
        if first_frame is None:  # drain the decoder (frame-threaded or delayed codecs)
            first_frame = next(iter(stream.decode(None)), None)
    except av.FFmpegError as error:
        if first_frame is None:
            raise InputError(f"{path}: no video frame could be decoded ({_ffmpeg_reason(error)})") from None
        return first_frame, pts, 0  # the count stops at the damage: use the header's count or the estimate
    if first_frame is None:
        raise InputError(f"{path}: the file has a video stream but no decodable frame (empty or truncated video)")
    return first_frame, pts, packets  # demuxed to the end: the exact count


def _probe_image(path: Path) -> VideoInfo:
    image = _open_image(path)
    mode = image.mode
    return VideoInfo(
        path=path,
        width=image.width,
        height=image.height,
        num_frames=1,
        fps=0.0,
        duration_s=0.0,
        codec=(image.format or path.suffix.lstrip(".")).lower(),
        pix_fmt=mode,
        has_alpha=mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info),
        is_grayscale=mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"),
        variable_frame_rate=False,
        is_image=True,
    )


def _looks_variable_rate(pts: list[int]) -> Optional[bool]:
    """True when more than 5 % of the packet intervals differ from the typical one (beyond time-base rounding)."""
    if len(pts) < 3:
        return None
    steps = np.diff(np.unique(np.asarray(pts)))
    if steps.size < 2:
        return None
    median = float(np.median(steps))
    irregular = np.abs(steps - median) > max(2.0, 0.1 * median)
    return bool(irregular.mean() > 0.05)  # an occasional dropped frame does not make a file VFR


def _is_grayscale_format(fmt: av.VideoFormat) -> bool:
    colour = [c for c in fmt.components if not c.is_alpha]
    return len(colour) == 1 and not fmt.has_palette


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0 and float(rate) < 1000:
            return float(rate)
    return 0.0


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


# ============================================================================================ opening


def _check_input_file(path: PathLike) -> Path:
    """The path as a Path, or InputError when it is missing, a directory, empty or unreadable."""
    path = existing_file(path, "video file", InputError)
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied (the file is not readable)")
    if _file_size(path) == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    return path


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _inner_suffix(path: Path) -> str:
    """The extension that tells the content: ``box.mp4.gz`` -> ``.mp4``."""
    return Path(path.stem).suffix.lower() if _is_gzip(path) else path.suffix.lower()


def _is_image(path: Path) -> bool:
    return _inner_suffix(path) in IMAGE_EXTENSIONS


def _gunzip_to_memory(path: Path) -> io.BytesIO:
    """Decompress a ``.gz`` file into memory (seekable, as demuxers need)."""
    try:
        with gzip.open(path, "rb") as source:
            data = source.read(MAX_GZ_BYTES + 1)
    except (OSError, EOFError) as error:
        raise InputError(f"{path}: not a valid gzip file ({error})") from None
    if len(data) > MAX_GZ_BYTES:
        raise InputError(f"{path}: decompresses to more than {MAX_GZ_BYTES >> 30} GiB; decompress it on disk first")
    return io.BytesIO(data)


def _ffmpeg_reason(error: BaseException) -> str:
    """FFmpeg's short explanation without the Errno number and file name."""
    return str(getattr(error, "strerror", None) or error)


@contextmanager
def _open_video_stream(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open the container and pick its first real video stream (not cover art), with clear errors."""
    source: Union[str, io.BytesIO] = _gunzip_to_memory(path) if _is_gzip(path) else str(path)
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except av.EOFError:
        raise InputError(f"{path}: the file ends before any video data (empty or truncated)") from None
    except av.FFmpegError as error:
        raise InputError(
            f"{path} is not a readable video: {_ffmpeg_reason(error)} (not a video file, or truncated or corrupt)"
        ) from None
    try:
        stream = _first_video_stream(container, path)
        stream.thread_type = "AUTO"
        yield container, stream
    finally:
        container.close()


_TEXT_DEMUXERS = ("tty", "lrc", "srt", "ass", "webvtt", "subviewer", "microdvd", "mpl2", "jacosub", "sami", "realtext")


def _first_video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first video stream that is not cover art; text files (FFmpeg's ANSI-art 'tty' reader) are refused."""
    if container.format.name in _TEXT_DEMUXERS:
        raise InputError(f"{path} is a text file, not a video (FFmpeg read it as {container.format.long_name})")
    attached_pic = av.stream.Disposition.attached_pic
    streams = [s for s in container.streams.video if not (s.disposition & attached_pic)]
    if streams:
        return streams[0]
    if container.streams.audio:
        raise InputError(f"{path} has no video stream (it contains only audio)")
    raise InputError(f"{path} has no video stream (FFmpeg read it as {container.format.long_name})")


def _open_image(path: Path) -> "PIL.Image.Image":  # noqa: F821
    from PIL import Image, ImageOps, UnidentifiedImageError

    source: Union[Path, io.BytesIO] = _gunzip_to_memory(path) if _is_gzip(path) else path
    try:
        image = Image.open(source)
        image.load()
        return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path} is not a readable image ({error})") from None


def _image_to_rgb(image: "PIL.Image.Image") -> np.ndarray:  # noqa: F821
    """(H, W, 3) uint8; 16-bit and float greys are scaled to 8 bits, alpha dropped."""
    if image.mode.startswith("I;16") or image.mode == "I":
        grey = np.asarray(image, dtype=np.float64)
        grey = grey / 257.0 if grey.max(initial=0) > 255 or image.mode.startswith("I;16") else grey
        return np.repeat(np.clip(grey + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        scale = 255.0 if grey.max(initial=0) <= 1.0 else 1.0
        return np.repeat(np.clip(grey * scale + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


# ============================================================================================ decoding


def iter_video_frames(
    path: PathLike, fps: Optional[float] = None, max_frames: Optional[int] = None, start_s: float = 0.0
) -> Iterator[np.ndarray]:
    """Stream the frames of a video as (H, W, 3) uint8 RGB arrays, one at a time.

    ``fps`` resamples to that rate by timestamps (nearest source frame for each output time; see the module
    doc). ``start_s`` seeks (to the keyframe before, then decodes forward) and starts at that time, in seconds
    from the start of the stream. ``max_frames`` stops after that many output frames. An image gives one frame.
    """
    path = _check_input_file(path)
    _check_read_args(path, fps, max_frames, start_s)
    if max_frames == 0:
        return
    if _is_image(path):
        yield _image_to_rgb(_open_image(path))
        return
    emitted = 0
    with closing(_select_frames(path, fps, start_s)) as frames:  # closes the file when the caller stops early
        for frame in frames:
            yield frame
            emitted += 1
            if max_frames is not None and emitted >= max_frames:
                return


def _check_read_args(path: Path, fps: Optional[float], max_frames: Optional[int], start_s: float) -> None:
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"{path}: fps must be a positive number, got {fps}")
    if max_frames is not None and max_frames < 0:
        raise InputError(f"{path}: max_frames must be >= 0, got {max_frames}")
    if not (start_s >= 0 and math.isfinite(start_s)):
        raise InputError(f"{path}: start_s must be >= 0 seconds, got {start_s}")


def _select_frames(path: Path, fps: Optional[float], start_s: float) -> Iterator[np.ndarray]:
    """All frames from ``start_s`` on, or those picked for the output rate ``fps``, converted to RGB."""
    with _open_video_stream(path) as (container, stream):
        size = (stream.codec_context.width, stream.codec_context.height)
        frames, start, step = _timed_frames(container, stream, path, start_s)
        picked = _frames_from(frames, start) if fps is None else _resample_nearest(frames, fps, start, step)
        last: Optional[tuple[av.VideoFrame, np.ndarray]] = None
        for frame in picked:
            if last is None or last[0] is not frame:  # convert each source frame once
                last = (frame, _frame_to_rgb(frame, size))
            yield last[1]


def _timed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path, start_s: float
) -> tuple[Iterator[tuple[float, av.VideoFrame]], Optional[float], float]:
    """(time, frame) pairs decoded from the keyframe before ``start_s`` on; the absolute start time (None: the
    first frame's) and the nominal frame duration in seconds."""
    fps = _stream_fps(stream)
    step = 1.0 / fps if fps else 1.0 / 25
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    start = origin + start_s if start_s > 0 else None
    if start is not None:
        _seek_before(container, stream, start)
    frames = _monotonic_times(_decode_all(container, stream, path, check_count=start is None), step)
    if start is not None:
        frames = _rewind_if_overshot(frames, container, stream, path, start, step)
    return frames, start, step


def _frames_from(frames: Iterator[tuple[float, av.VideoFrame]], start: Optional[float]) -> Iterator[av.VideoFrame]:
    """Every frame whose time is at or after ``start`` (all when None)."""
    for t, frame in frames:
        if start is None or t + _TIME_EPS >= start:
            yield frame


def _seek_before(container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: float) -> None:
    """Seek to the keyframe at or before ``start`` (seconds); if the format cannot seek, decoding simply starts
    from the beginning and the frames before ``start`` are skipped."""
    try:
        container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        pass


def _rewind_if_overshot(
    frames: Iterator[tuple[float, av.VideoFrame]],
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    start: float,
    step: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Some formats seek past the target: then decode from the beginning instead."""
    first = next(frames, None)
    if first is not None and first[0] > start + 1.5 * step:
        container.seek(0, stream=stream, backward=True, any_frame=False)
        frames = _monotonic_times(_decode_all(container, stream, path, check_count=False), step)
        first = next(frames, None)
    if first is None:
        return
    yield first
    yield from frames


def _monotonic_times(frames: Iterator[av.VideoFrame], step: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time, frame) with strictly increasing times; frames without pts continue from the previous time."""
    previous: Optional[float] = None
    for frame in frames:
        t = frame.time
        if t is None:
            t = 0.0 if previous is None else previous + step
        if previous is not None and t <= previous:
            t = previous + _TIME_EPS * 10
        previous = t
        yield t, frame


def _decode_all(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path, check_count: bool
) -> Iterator[av.VideoFrame]:
    """Decode every frame; apply the corrupt-data rule (error if nothing decoded, else warn and stop)."""
    decoded = 0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                decoded += 1
                yield frame
    except av.FFmpegError as error:
        if decoded == 0:
            raise InputError(f"{path}: no video frame could be decoded ({_ffmpeg_reason(error)})") from None
        warnings.warn(
            f"{path}: corrupt or truncated data after frame {decoded} ({_ffmpeg_reason(error)}); "
            f"stopped at the last good frame",
            VideoReadWarning,
            stacklevel=2,
        )
        return
    if decoded == 0:
        raise InputError(f"{path}: the file has a video stream but no decodable frame (empty or truncated video)")
    announced = int(stream.frames or 0)
    if check_count and announced and decoded < 0.95 * announced - 1:
        warnings.warn(
            f"{path}: only {decoded} of the {announced} frames announced in its header could be decoded "
            f"(the file is probably truncated)",
            VideoReadWarning,
            stacklevel=2,
        )


def _resample_nearest(
    frames: Iterator[tuple[float, av.VideoFrame]], fps: float, start: Optional[float], step: float
) -> Iterator[av.VideoFrame]:
    """For output times t0 + k / fps (t0 = ``start`` or the first frame's time), the source frame whose time is
    nearest (ties: the earlier one); output times run until the end of the last source frame (its stored
    duration, else the interval before it)."""
    previous: Optional[tuple[float, av.VideoFrame]] = None
    k = 0
    for t, frame in frames:
        if start is None:
            start = t
        target = start + k / fps
        while target <= t + _TIME_EPS:
            take_current = previous is None or (t - target) < (target - previous[0]) - _TIME_EPS
            yield frame if take_current else previous[1]
            k += 1
            target = start + k / fps
        if previous is not None:
            step = t - previous[0]
        previous = (t, frame)
    if previous is None:
        return
    end = previous[0] + (_frame_duration(previous[1]) or step)  # else: as long as the frame before it
    while start + k / fps < end - _TIME_EPS:
        yield previous[1]
        k += 1


def _frame_duration(frame: av.VideoFrame) -> Optional[float]:
    """The frame's duration from the container (seconds), when it stores one."""
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    return None


def _frame_to_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB at the stream's size, honouring the frame's colour tags; alpha dropped."""
    width, height = size if size[0] and size[1] else (frame.width, frame.height)
    full_range = frame.color_range == ColorRange.JPEG
    return frame.to_ndarray(
        format="rgb24", width=width, height=height, src_color_range=ColorRange.JPEG if full_range else None
    )


# ============================================================================================ tensors


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) or (H, W, 3) RGB -> float32 (3, T, H, W) in [-1, 1] (0 -> -1, 255 -> 1)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise InputError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"frames must have shape (T, H, W, 3) or (H, W, 3), got {tuple(frames.shape)}")
    if not frames.flags.writeable:  # torch warns about read-only arrays (PIL's, memory maps)
        frames = frames.copy()
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)  # (3, T, H, W) uint8
    return video.float().div_(127.5).sub_(1.0)


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) or (1, 3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3) (clamped, rounded)."""
    if not isinstance(video, torch.Tensor):
        raise InputError(f"expected a torch tensor (3, T, H, W), got {type(video).__name__}")
    if video.dim() == 5 and video.shape[0] == 1:
        video = video[0]
    if video.dim() != 4 or video.shape[0] != 3:
        raise InputError(f"expected a video tensor (3, T, H, W) or (1, 3, T, H, W), got shape {tuple(video.shape)}")
    if not video.is_floating_point():
        raise InputError(f"expected a float video tensor in [-1, 1], got dtype {video.dtype}")
    if not torch.isfinite(video).all():
        raise InputError("the video tensor contains NaN or infinite values")
    video = video.detach().to("cpu", torch.float32)
    frames = ((video.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)  # (3, T, H, W)
    return frames.permute(1, 2, 3, 0).contiguous().numpy()  # (T, H, W, 3) uint8


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


# ============================================================================================ windows


def iter_video_windows(
    path: PathLike,
    window_frames: int,
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    start_s: float = 0.0,
    geometry: Optional[Geometry] = None,
) -> Iterator[torch.Tensor]:
    """Stream consecutive float (3, t, H, W) windows in [-1, 1] of ``window_frames`` frames (the last may be
    shorter), fitted by ``geometry`` if given; only one window is in memory at a time."""
    if window_frames < 1:
        raise InputError(f"{path}: window_frames must be >= 1, got {window_frames}")
    batch: list[np.ndarray] = []
    for frame in iter_video_frames(path, fps=fps, max_frames=max_frames, start_s=start_s):
        batch.append(frame)
        if len(batch) == window_frames:
            yield _window_tensor(batch, geometry)
            batch = []
    if batch:
        yield _window_tensor(batch, geometry)


def _window_tensor(frames: list[np.ndarray], geometry: Optional[Geometry]) -> torch.Tensor:
    video = frames_to_tensor(np.stack(frames))  # (3, t, H, W) float
    return geometry.apply(video) if geometry is not None else video


def read_video(
    path: PathLike,
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    start_s: float = 0.0,
    geometry: Optional[Geometry] = None,
    max_bytes: int = 8 * 2**30,
) -> tuple[torch.Tensor, VideoInfo]:
    """Read a (small) clip at once: float32 (3, T, H, W) in [-1, 1] and its :class:`VideoInfo`.

    Raises :class:`InputError` when the result would exceed ``max_bytes`` (use :func:`iter_video_windows`,
    ``max_frames`` or a downscaling ``geometry`` for long or large videos).
    """
    info = probe_video(path)
    _check_read_size(info, fps, max_frames, start_s, geometry, max_bytes)
    windows = list(
        iter_video_windows(info.path, 16, fps=fps, max_frames=max_frames, start_s=start_s, geometry=geometry)
    )
    if not windows:
        raise InputError(
            f"{info.path}: no frame at or after start_s={start_s} s (the video lasts {info.duration_s:.3f} s)"
        )
    return torch.cat(windows, dim=1), info


def _check_read_size(
    info: VideoInfo,
    fps: Optional[float],
    max_frames: Optional[int],
    start_s: float,
    geometry: Optional[Geometry],
    max_bytes: int,
) -> None:
    frames = info.num_frames
    if fps is not None and info.fps > 0:
        frames = math.ceil(max(info.duration_s - start_s, 0.0) * fps)
    if max_frames is not None:
        frames = min(frames, max_frames)
    h, w = (geometry.height, geometry.width) if geometry is not None else (info.height, info.width)
    size = 3 * max(frames, 1) * h * w * 4
    if size > max_bytes:
        raise InputError(
            f"{info.path}: {frames} frames of {w}x{h} need {size / 2**30:.1f} GiB as float32, more than "
            f"max_bytes={max_bytes / 2**30:.1f} GiB; stream it with iter_video_windows, or pass max_frames"
        )


# ============================================================================================ writing


class VideoWriter:
    """Incremental H.264 writer; use as a context manager. The file appears only when it is complete.

    ``write`` takes uint8 (T, H, W, 3) / (H, W, 3) arrays or float tensors in [-1, 1] shaped (3, T, H, W) or
    (1, 3, T, H, W). Odd heights/widths are padded by one pixel (replicated edge) for yuv420p.
    """

    def __init__(self, path: PathLike, fps: float = 24.0, crf: int = 18, preset: str = "medium") -> None:
        self.path = Path(path)
        if not (fps > 0 and math.isfinite(fps)):
            raise InputError(f"{self.path}: fps must be a positive number, got {fps}")
        self.format = _output_format(self.path)
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.crf, self.preset = crf, preset
        self.tmp_path = _create_temp_beside(self.path)
        self.container: Optional[av.container.OutputContainer] = None
        self.stream: Optional[av.video.stream.VideoStream] = None
        self.size: Optional[tuple[int, int]] = None  # (H, W) of the frames given
        self.frames_written = 0
        self.closed = False

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frames: Union[np.ndarray, torch.Tensor]) -> None:
        """Append frames: uint8 (T, H, W, 3) / (H, W, 3), or a float tensor (3, T, H, W) in [-1, 1]."""
        if self.closed:
            raise OneVAEError(f"{self.path}: the writer is already closed")
        rgb = _as_uint8_frames(frames)  # (T, H, W, 3) uint8
        if self.size is None:
            self._open(rgb.shape[1], rgb.shape[2])
        elif rgb.shape[1:3] != self.size:
            raise InputError(f"{self.path}: frames of size {rgb.shape[1:3]} after frames of size {self.size}")
        for image in _even_sized(rgb):
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
            os.replace(self.tmp_path, self.path)
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

    def _open(self, height: int, width: int) -> None:
        self.size = (height, width)
        container = av.open(str(self.tmp_path), mode="w", format=self.format)
        stream = container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
        context.color_range = 1  # limited ("tv") range
        self.container, self.stream = container, stream

    def _encode(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
        frame.pts = self.frames_written
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames_written += 1


def write_video(
    path: PathLike, frames: Union[np.ndarray, torch.Tensor], fps: float = 24.0, crf: int = 18, preset: str = "medium"
) -> Path:
    """Write a whole clip (see :class:`VideoWriter` for the accepted frames) atomically; returns the path."""
    with VideoWriter(path, fps=fps, crf=crf, preset=preset) as writer:
        writer.write(frames)
    return writer.path


def _output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported output extension {path.suffix!r}; use .mp4, .mov or .mkv")
    return fmt


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


def _as_uint8_frames(frames: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """Any accepted frame layout -> uint8 (T, H, W, 3)."""
    if isinstance(frames, torch.Tensor) and frames.is_floating_point():
        return tensor_to_frames(frames)
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.dtype != np.uint8:
        raise InputError(f"frames must be uint8 (T, H, W, 3) or a float tensor (3, T, H, W), got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise InputError(f"frames must have shape (T, H, W, 3) or (H, W, 3), got {tuple(array.shape)}")
    return array


def _even_sized(frames: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by one replicated pixel at the bottom/right: (T, H', W', 3)."""
    h, w = frames.shape[1:3]
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def side_by_side(
    a: Union[np.ndarray, torch.Tensor], b: Union[np.ndarray, torch.Tensor]
) -> Union[np.ndarray, torch.Tensor]:
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
