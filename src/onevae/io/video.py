"""Reading, fitting and writing videos (PyAV / FFmpeg), streaming and with clear errors.

Reading
    :func:`probe_video` describes a file; :func:`iter_video_frames` streams (H, W, 3) uint8 RGB frames;
    :func:`iter_video_windows` streams (3, t, H, W) float windows in [-1, 1]; :func:`read_video` reads a small
    clip at once. Any container/codec FFmpeg reads works; ``.png/.jpg/.jpeg/.webp/.bmp/.tif`` are read with PIL
    as one-frame clips, except an animated PNG (read by FFmpeg, frame by frame) and other animated images
    (an animated WebP, a multi-page TIFF: refused, rather than read as their first frame); a ``.gz`` file (e.g.
    ``box.mp4.gz``) is decompressed in memory.

Frame sequences
    A path that names no file but holds a printf-style frame number (``frames/%05d.png``, any extension above;
    ``%%`` is a literal ``%``, and an existing file is always that file) is one clip of image files, found as
    FFmpeg's image2 demuxer finds them: from the first existing number among 0 to 4, consecutive; a missing
    number ends the clip (:func:`probe_video` warns, naming it, when files follow the gap). Each frame is read
    as a still image is (EXIF orientation, alpha dropped, grey replicated), one file at a time; a frame whose
    size differs from the first's is an :class:`InputError` naming it. Images carry no frame rate: a sequence's
    ``fps`` is the rate its frames were shot at, 25 by default (image2's ``-framerate``), given to
    :func:`probe_video` as ``sequence_fps`` and to :func:`iter_video_frames` as ``fps``: its frames are never
    resampled (dropped or repeated), ``fps`` only times them (``start_s``).

Pixel formats
    Every pixel format is converted to rgb24 by swscale, honouring the colour matrix and range the file is
    tagged with (untagged files: BT.601 limited range, as FFmpeg does). Grey frames are replicated to three
    channels. **Alpha is dropped** (the stored colour is kept, even where a pixel is transparent), as
    ``ffmpeg`` and PIL's ``convert("RGB")`` do.

Orientation
    A video whose display matrix turns the picture (a phone video shot in portrait and stored landscape,
    tagged ``rotate=90``) is read as players show it: upright, the width and height swapped for a quarter turn,
    as FFmpeg's autorotate does. A rotation by another angle than a multiple of 90 degrees is not applied (a
    warning says so); a mirrored matrix is read by its rotation only. Images follow their EXIF orientation.

Non-square pixels
    A stream's sample aspect ratio (an anamorphic source: DV's 32:27) is not converted: frames are read as stored,
    one sample per pixel. :func:`probe_video` reports it (``sample_aspect_ratio``, of the upright frames: inverted
    by a quarter turn), so that outputs on the same sample grid can be tagged with it (:mod:`onevae.io.writer`).

Frame rate (``fps=``)
    Output frame *k* is shown at ``t0 + k / fps`` (``t0`` = the first frame's timestamp, or the requested start);
    it is the source frame whose timestamp (pts) is nearest to that time (ties go to the earlier frame). This
    works for variable-frame-rate files. Output times run until the end of the last source frame (its stored
    duration, else the interval before it), so a 2 s clip at 30 fps resampled to 10 fps gives 20 frames.

Frame counts
    A file's frames are counted on its timeline at its average rate, as the command line reads it (a
    variable-frame-rate file is resampled to its mean rate): an AVI whose repeated frames are stored as empty
    chunks (``tree.avi``: 68 pictures over 444 frame slots at 15 fps) has 444 frames, as its header says.

Corrupt data
    When FFmpeg fails in the middle of a file (truncated or corrupt data), reading stops at the last good
    frame with a :class:`VideoReadWarning`; so does a file whose frames end well before the count its header
    announces (an AVI cut short). If no frame at all could be decoded it raises :class:`InputError` (a cut-short
    mp4 usually lacks its index: that is an error). Damage that FFmpeg conceals (no error) cannot be seen here.

Sizes are fitted by :mod:`onevae.io.fit`; videos are written by :mod:`onevae.io.writer`.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import ColorRange

from ..errors import InputError
from .fit import Geometry, aspect_text
from .frame_files import FrameFiles, find_frames, frame_at, is_frame_sequence
from .paths import PathLike, existing_file

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif", ".ts")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SEQUENCE_FPS = 25.0  # a frame sequence's rate unless told (FFmpeg's image2 default)

MAX_GZ_BYTES = 2 * 2**30  # a .gz video is decompressed in memory, up to this size
_TIME_EPS = 1e-6  # seconds: timestamps closer than this are equal
_VFR_PACKETS = 120  # packets inspected by probe_video to detect a variable frame rate
_COUNT_FRAMES_MAX_BYTES = 64 * 2**20  # probe_video counts packets itself for files up to this size


class VideoReadWarning(UserWarning):
    """A video was only partly readable (truncated or corrupt data); reading stopped at the last good frame."""


class VideoDisplayWarning(UserWarning):
    """A video is read as stored although players show it otherwise (its display matrix rotates it by an angle
    other than a multiple of 90 degrees); all its frames are read."""


# ============================================================================================ probing


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found. ``fps`` is the average rate (0.0 for a still image; a frame sequence's is
    the rate it was given); ``sample_aspect_ratio`` the shape (width / height) of a sample of the frames as read,
    1 for square pixels. ``path`` is the pattern for a frame sequence (``is_frame_sequence``)."""

    path: Path
    width: int
    height: int
    num_frames: int  # on the timeline at ``fps`` (see the module doc); exact when ``num_frames_exact``, else
    # estimated from duration * fps
    fps: float
    duration_s: float
    codec: str
    pix_fmt: str
    has_alpha: bool
    is_grayscale: bool
    variable_frame_rate: bool | None  # None when the timestamps could not tell
    num_frames_exact: bool = True
    is_image: bool = False
    sample_aspect_ratio: Fraction = Fraction(1)
    is_frame_sequence: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (for metadata files); the sample aspect ratio as ``"num:den"``."""
        return {**asdict(self), "path": str(self.path), "sample_aspect_ratio": aspect_text(self.sample_aspect_ratio)}


def probe_video(path: PathLike, count_frames: bool = False, sequence_fps: float | None = None) -> VideoInfo:
    """Describe a video (or image) file, or a frame sequence; raise :class:`InputError` if it has no decodable
    video frame.

    Decodes the first frame (to make sure the file is readable) and demuxes about a hundred packets (to detect a
    variable frame rate). ``count_frames=True`` demuxes the whole file (no decoding) to count the frames exactly,
    which is done anyway for files up to 64 MiB; larger files use the count the container stores, if any (a cut
    short file's header overstates it). ``sequence_fps``: the rate a frame sequence was shot at (default 25; a
    file's own rate is never replaced).
    """
    sequence = _frame_sequence(path)
    if sequence is not None:
        return _probe_sequence(sequence, sequence_fps)
    path = _check_input_file(path)
    if is_still_image(path):
        return _probe_image(path)
    with _open_video_stream(path) as (container, stream):
        header_frames = int(stream.frames or 0)
        count_all = count_frames or _file_size(path) <= _COUNT_FRAMES_MAX_BYTES
        first_frame, pts, timeline = _scan_packets(container, stream, path, count_all)
        fps = _stream_fps(stream)
        # the frames' own span when demuxed to the end: a container's duration may count from time 0 (a cut from a
        # longer stream whose first frame is at 5 s) or include its other streams (audio running longer)
        duration = (timeline.seconds() if timeline is not None else 0.0) or _stream_duration(container, stream)
        variable = True if _has_gaps(timeline, fps) else _looks_variable_rate(pts)
        if timeline is not None:
            num_frames, exact = (timeline.frames(fps) if variable else timeline.count), True
        elif header_frames:
            num_frames, exact = header_frames, True
        else:
            num_frames, exact = (max(1, round(duration * fps)) if fps else 1), False
        fmt = first_frame.format
        orientation = _display_orientation(first_frame, path)
        width, height = orientation.display_size(first_frame.width, first_frame.height)
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            num_frames=num_frames,
            fps=fps,
            duration_s=duration or (num_frames / fps if fps else 0.0),
            codec=stream.codec_context.name,
            pix_fmt=fmt.name,
            has_alpha=any(c.is_alpha for c in fmt.components),
            is_grayscale=_is_grayscale_format(fmt),
            variable_frame_rate=variable,
            num_frames_exact=exact,
            sample_aspect_ratio=orientation.sample_aspect(_stream_sample_aspect(stream)),
        )


def _scan_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path, count_all: bool
) -> tuple[av.VideoFrame, list[int], _Timeline | None]:
    """(first decoded frame, pts of the first packets, the packets' timeline or None when not demuxed to the end)."""
    pts: list[int] = []
    first_frame: av.VideoFrame | None = None
    timeline, fps = _Timeline(), _stream_fps(stream)
    try:
        for packet in _complete_packets(container, stream):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            duration = _seconds(packet.duration, packet.time_base) or (1.0 / fps if fps else None)
            timeline.add(_seconds(packet.pts, packet.time_base), duration)
            if packet.pts is not None and len(pts) < _VFR_PACKETS:
                pts.append(int(packet.pts))
            if first_frame is None:
                first_frame = next(iter(packet.decode()), None)
            if first_frame is not None and timeline.count >= _VFR_PACKETS and not count_all:
                return first_frame, pts, None
        if first_frame is None:  # drain the decoder (frame-threaded or delayed codecs)
            first_frame = next(iter(stream.decode(None)), None)
    except av.FFmpegError as error:
        if first_frame is None:
            raise InputError(f"{path}: no video frame could be decoded ({_ffmpeg_reason(error)})") from None
        return first_frame, pts, timeline  # the count stops at the damage, as reading will
    if first_frame is None:
        raise InputError(f"{path}: the file has a video stream but no decodable frame (empty or truncated video)")
    return first_frame, pts, timeline  # demuxed to the end: the exact count


def _complete_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.Packet]:
    """The stream's packets, without a last one that the file's end cut short (FFmpeg flags it corrupt; some
    decoders fail on it, others make half a picture): probing and reading count the same frames."""
    held: av.Packet | None = None
    for packet in container.demux(stream):
        if held is not None and packet.size:
            yield held  # data follows: the corrupt packet is not the file's cut-short end
        held = None
        if packet.is_corrupt and packet.size:
            held = packet
            continue
        yield packet


@dataclass
class _Timeline:
    """The frames (or packets) seen and the time they cover, in seconds; counted at a rate as the resampler
    of :func:`iter_video_frames` would (output times start + k / fps until the end of the last frame)."""

    count: int = 0
    start: float | None = None
    end: float | None = None

    def add(self, time: float | None, duration: float | None) -> None:
        self.count += 1
        if time is None:
            return
        self.start = time if self.start is None else min(self.start, time)
        end = time + (duration or 0.0)
        self.end = end if self.end is None else max(self.end, end)

    def frames(self, fps: float) -> int:
        """Frames at ``fps`` over the covered time (the plain count when the times or the rate are unknown)."""
        if not fps or self.start is None or self.end is None or self.end <= self.start:
            return self.count
        return max(1, math.ceil((self.end - self.start - _TIME_EPS) * fps))

    def seconds(self) -> float:
        return 0.0 if self.start is None or self.end is None else self.end - self.start


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return float(value * time_base) if value is not None and time_base else None


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


def _probe_sequence(frames: FrameFiles, fps: float | None) -> VideoInfo:
    """A frame sequence described by its first frame (read, so an unreadable first file is refused here), with its
    exact frame count; a gap that ends it early is warned of."""
    _check_fps(frames.pattern, fps)
    rate = float(fps or SEQUENCE_FPS)
    if frames.after_gap is not None:
        warnings.warn(f"{frames.pattern}: frame file {frames.path(frames.count).name} is missing, so the clip ends after "
                      f"{frames.count} frames ({frames.after_gap.name} and later files are not read)", VideoReadWarning,
                      stacklevel=3)
    first = _probe_image(_check_input_file(frames.path(0)))
    return replace(first, path=frames.pattern, num_frames=frames.count, fps=rate, duration_s=frames.count / rate,
                   is_image=False, is_frame_sequence=True)


def _has_gaps(timeline: _Timeline | None, fps: float) -> bool:
    """Whether the stored frames fill clearly less of the timeline than the rate says (frames held for several
    slots, as the empty chunks of an AVI do): such a file is read as a variable-rate one."""
    return timeline is not None and timeline.frames(fps) > 1.05 * timeline.count + 1


def _looks_variable_rate(pts: list[int]) -> bool | None:
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


def _stream_sample_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    """The stored samples' aspect ratio, as FFmpeg guesses it: the container's, else the bitstream's; 1 when
    neither tags one (unknown is taken as square)."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar is not None and sar > 0:
            return Fraction(sar)
    return Fraction(1)


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


# ============================================================================================ opening


def _frame_sequence(path: PathLike) -> FrameFiles | None:
    """The frame files ``path`` names as a pattern (see the module doc), or None for a file path."""
    if not is_frame_sequence(path):
        return None
    if _inner_suffix(Path(path)) not in IMAGE_EXTENSIONS:
        raise InputError(f"{path}: a frame pattern names image files ({', '.join(IMAGE_EXTENSIONS)}); for other files "
                         "give each file")
    return find_frames(path)


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


def is_still_image(path: Path) -> bool:
    """Whether PIL reads the file as a still image: an image extension, but not an animated PNG (FFmpeg's apng
    demuxer reads its frames and their times)."""
    return _inner_suffix(path) in IMAGE_EXTENSIONS and not (_inner_suffix(path) == ".png" and _is_animated(path))


def _is_animated(path: Path) -> bool:
    """Whether PIL sees several frames in the image file (False when it cannot read it: reading says why)."""
    from PIL import Image

    try:
        with Image.open(_gunzip_to_memory(path) if _is_gzip(path) else path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


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
    source: str | io.BytesIO = _gunzip_to_memory(path) if _is_gzip(path) else str(path)
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


def _open_image(path: Path) -> PIL.Image.Image:  # noqa: F821
    from PIL import Image, ImageOps, UnidentifiedImageError

    source: Path | io.BytesIO = _gunzip_to_memory(path) if _is_gzip(path) else path
    try:
        image = Image.open(source)
        image.load()
    except Image.DecompressionBombError:
        raise InputError(f"{path}: the image is too large to read (more than {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path} is not a readable image ({error})") from None
    if getattr(image, "is_animated", False):  # its first frame alone would be a silently wrong clip
        kind, frames = image.format, image.n_frames
        image.close()
        raise InputError(f"{path} is an animated {kind} image ({frames} frames), which is not read (only videos and "
                         "still images are): convert it to a video (.mp4, .gif) first")
    return ImageOps.exif_transpose(image)


def _image_to_rgb(image: PIL.Image.Image) -> np.ndarray:  # noqa: F821
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
    path: PathLike, fps: float | None = None, max_frames: int | None = None, start_s: float = 0.0
) -> Iterator[np.ndarray]:
    """Stream the frames of a video as (H, W, 3) uint8 RGB arrays, one at a time.

    ``fps`` resamples to that rate by timestamps (nearest source frame for each output time; see the module
    doc). ``start_s`` seeks (to the keyframe before, then decodes forward) and starts at that time, in seconds
    from the start of the stream. ``max_frames`` stops after that many output frames. An image gives one frame.
    A frame sequence gives each of its frames: ``fps`` is the rate they were shot at (default 25), which only
    places ``start_s``.
    """
    sequence = _frame_sequence(path)
    if sequence is not None:
        _check_read_args(sequence.pattern, fps, max_frames, start_s)
        yield from itertools.islice(_sequence_frames(sequence, fps or SEQUENCE_FPS, start_s), max_frames)
        return
    path = _check_input_file(path)
    _check_read_args(path, fps, max_frames, start_s)
    if max_frames == 0:
        return
    if is_still_image(path):
        yield _image_to_rgb(_open_image(path))
        return
    emitted = 0
    with closing(_select_frames(path, fps, start_s)) as frames:  # closes the file when the caller stops early
        for frame in frames:
            yield frame
            emitted += 1
            if max_frames is not None and emitted >= max_frames:
                return


def _check_read_args(path: Path, fps: float | None, max_frames: int | None, start_s: float) -> None:
    _check_fps(path, fps)
    if max_frames is not None and max_frames < 0:
        raise InputError(f"{path}: max_frames must be >= 0, got {max_frames}")
    if not (start_s >= 0 and math.isfinite(start_s)):
        raise InputError(f"{path}: start_s must be >= 0 seconds, got {start_s}")


def _check_fps(path: Path, fps: float | None) -> None:
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"{path}: fps must be a positive number, got {fps}")


def _sequence_frames(frames: FrameFiles, fps: float, start_s: float) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB of each frame file from ``start_s`` on (frame k is at k / fps), one file at a time.

    Read with PIL as a still image is (not by FFmpeg's image2 demuxer): a frame of a sequence is then the very
    array that reading the file alone gives (EXIF orientation, 16-bit greys, JPEG's colour conversion)."""
    first_read: tuple[Path, tuple[int, ...]] | None = None
    for index in range(frame_at(start_s, fps), frames.count):
        path = frames.path(index)
        rgb = _image_to_rgb(_open_image(_check_input_file(path)))  # (H, W, 3) uint8
        if first_read is None:
            first_read = (path, rgb.shape)
        elif rgb.shape != first_read[1]:
            (h, w), (h0, w0) = rgb.shape[:2], first_read[1][:2]
            raise InputError(f"{path}: {w}x{h} pixels, but {first_read[0].name} is {w0}x{h0}; all frames of a sequence "
                             f"({frames.pattern.name}) must have one size")
        yield rgb


def _select_frames(path: Path, fps: float | None, start_s: float) -> Iterator[np.ndarray]:
    """All frames from ``start_s`` on, or those picked for the output rate ``fps``, converted to RGB."""
    with _open_video_stream(path) as (container, stream):
        size = (stream.codec_context.width, stream.codec_context.height)
        frames, start, step = _timed_frames(container, stream, path, start_s)
        picked = _frames_from(frames, start) if fps is None else _resample_nearest(frames, fps, start, step)
        last: tuple[av.VideoFrame, np.ndarray] | None = None
        orientation: _Orientation | None = None
        for frame in picked:
            if last is None or last[0] is not frame:  # convert each source frame once
                if orientation is None:  # the first frame's, kept: one frame size throughout
                    orientation = _display_orientation(frame)
                last = (frame, _frame_to_rgb(frame, size, orientation))
            yield last[1]


def _timed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path, start_s: float
) -> tuple[Iterator[tuple[float, av.VideoFrame]], float | None, float]:
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


def _frames_from(frames: Iterator[tuple[float, av.VideoFrame]], start: float | None) -> Iterator[av.VideoFrame]:
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
    previous: float | None = None
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
    """Decode every frame; apply the corrupt-data rule (error if nothing decoded, else warn and stop), and with
    ``check_count`` warn when the frames end well before the count the header announces (frames counted on the
    timeline at the stream's rate, as :func:`probe_video` counts them)."""
    timeline, fps = _Timeline(), _stream_fps(stream)
    try:
        for packet in _complete_packets(container, stream):
            for frame in packet.decode():
                timeline.add(frame.time, _frame_duration(frame) or (1.0 / fps if fps else None))
                yield frame
    except av.FFmpegError as error:
        if timeline.count == 0:
            raise InputError(f"{path}: no video frame could be decoded ({_ffmpeg_reason(error)})") from None
        reason = f"corrupt or truncated data: {_ffmpeg_reason(error)}"
        warnings.warn(_stopped_early(path, timeline, stream, reason), VideoReadWarning, stacklevel=2)
        return
    if timeline.count == 0:
        raise InputError(f"{path}: the file has a video stream but no decodable frame (empty or truncated video)")
    announced = int(stream.frames or 0)
    if check_count and announced and timeline.frames(_stream_fps(stream)) < 0.95 * announced - 1:
        reason = "the file is probably truncated"
        warnings.warn(_stopped_early(path, timeline, stream, reason), VideoReadWarning, stacklevel=2)


def _stopped_early(path: Path, timeline: _Timeline, stream: av.video.stream.VideoStream, reason: str) -> str:
    """The one-line warning for a video whose frames end early, in frames on its timeline at its rate."""
    fps, announced = _stream_fps(stream), int(stream.frames or 0)
    read = timeline.frames(fps)
    where = f"{timeline.seconds():.2f} s" + (f" of {announced / fps:.2f} s" if announced and fps else "")
    if announced:
        return (f"{path}: only {read} of the {announced} frames announced in its header could be read (the video "
                f"stops at {where}: {reason}); reading stops there")
    return f"{path}: the video stops after frame {read}, at {where} ({reason}); reading stops there"


def _resample_nearest(
    frames: Iterator[tuple[float, av.VideoFrame]], fps: float, start: float | None, step: float
) -> Iterator[av.VideoFrame]:
    """For output times t0 + k / fps (t0 = ``start`` or the first frame's time), the source frame whose time is
    nearest (ties: the earlier one); output times run until the end of the last source frame (its stored
    duration, else the interval before it)."""
    previous: tuple[float, av.VideoFrame] | None = None
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


def _frame_duration(frame: av.VideoFrame) -> float | None:
    """The frame's duration from the container (seconds), when it stores one."""
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    return None


def _frame_to_rgb(frame: av.VideoFrame, size: tuple[int, int], orientation: _Orientation) -> np.ndarray:
    """(H, W, 3) uint8 RGB at the stream's (stored) size, honouring the frame's colour tags, turned upright by
    ``orientation``; alpha dropped."""
    width, height = size if size[0] and size[1] else (frame.width, frame.height)
    full_range = frame.color_range == ColorRange.JPEG
    rgb = frame.to_ndarray(
        format="rgb24", width=width, height=height, src_color_range=ColorRange.JPEG if full_range else None
    )
    return orientation.apply(rgb)


@dataclass(frozen=True)
class _Orientation:
    """How a stored picture is shown: transposed first (a quarter turn), then its rows and/or columns reversed."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The (H, W, C) picture as shown (contiguous)."""
        if self == _UPRIGHT:
            return rgb
        out = rgb.transpose(1, 0, 2) if self.transpose else rgb
        out = out[::-1] if self.flip_rows else out
        out = out[:, ::-1] if self.flip_cols else out
        return np.ascontiguousarray(out)

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) as shown, from the stored size."""
        return (height, width) if self.transpose else (width, height)

    def sample_aspect(self, stored: Fraction) -> Fraction:
        """The samples' aspect ratio as shown, from the stored one (a quarter turn inverts it)."""
        return 1 / stored if self.transpose else stored


_UPRIGHT = _Orientation()


def _display_orientation(frame: av.VideoFrame, path: Path | None = None) -> _Orientation:
    """The quarter turn of the frame's display matrix (phone videos' ``rotate`` tag), as FFmpeg's autorotate
    applies it; upright when there is none. Another angle than a multiple of 90 degrees is not applied (warned
    when ``path`` is given).

    The angle comes from PyAV's ``frame.rotation`` (counter-clockwise degrees), not from ``frame.side_data``: in
    PyAV 18 reading that container ties the frame and its side-data wrappers in a reference cycle whose collection
    corrupted the heap (forked DataLoader workers then crashed). So a mirrored matrix is seen by its rotation part
    only; FFmpeg's extra flips are not applied."""
    ccw = frame.rotation % 360
    quarters = round(ccw / 90)
    if abs(ccw - 90 * quarters) <= 1:  # av_display_rotation_get is a float, truncated to an int by PyAV
        return _QUARTER_TURNS[quarters % 4]
    if path is not None:
        warnings.warn(f"{path}: its display matrix rotates the picture by {ccw} degrees counter-clockwise, not a multiple "
                      "of 90; it is read as stored, not rotated", VideoDisplayWarning, stacklevel=3)
    return _UPRIGHT


# counter-clockwise quarter turns 0-3: np.rot90(a, k) as a transpose and flips
_QUARTER_TURNS = (
    _UPRIGHT,
    _Orientation(transpose=True, flip_rows=True),
    _Orientation(flip_rows=True, flip_cols=True),
    _Orientation(transpose=True, flip_cols=True),
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


def as_uint8_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """What the writers take -> uint8 (T, H, W, 3): uint8 (T, H, W, 3) / (H, W, 3), or a float tensor
    (3, T, H, W) / (1, 3, T, H, W) in [-1, 1]."""
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


# ============================================================================================ windows


def iter_video_windows(
    path: PathLike,
    window_frames: int,
    fps: float | None = None,
    max_frames: int | None = None,
    start_s: float = 0.0,
    geometry: Geometry | None = None,
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


def _window_tensor(frames: list[np.ndarray], geometry: Geometry | None) -> torch.Tensor:
    video = frames_to_tensor(np.stack(frames))  # (3, t, H, W) float
    return geometry.apply(video) if geometry is not None else video


def read_video(
    path: PathLike,
    fps: float | None = None,
    max_frames: int | None = None,
    start_s: float = 0.0,
    geometry: Geometry | None = None,
    max_bytes: int = 8 * 2**30,
) -> tuple[torch.Tensor, VideoInfo]:
    """Read a (small) clip at once: float32 (3, T, H, W) in [-1, 1] and its :class:`VideoInfo`.

    Raises :class:`InputError` when the result would exceed ``max_bytes`` (use :func:`iter_video_windows`,
    ``max_frames`` or a downscaling ``geometry`` for long or large videos).
    """
    info = probe_video(path, sequence_fps=fps)
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
    fps: float | None,
    max_frames: int | None,
    start_s: float,
    geometry: Geometry | None,
    max_bytes: int,
) -> None:
    frames = info.num_frames
    if fps is not None and info.fps > 0 and not info.is_frame_sequence:  # a sequence is not resampled
        frames = math.ceil(max(info.duration_s - start_s, 0.0) * fps)
    if max_frames is not None:
        frames = min(frames, max_frames)
    h, w = (geometry.height, geometry.width) if geometry is not None else (info.height, info.width)
    size = 3 * max(frames, 1) * h * w * 4
    if size > max_bytes:
        raise InputError(
            f"{info.path}: {frames} frames of {h}x{w} (HxW) need {size / 2**30:.1f} GiB as float32, more than "
            f"max_bytes={max_bytes / 2**30:.1f} GiB; stream it with iter_video_windows, or pass max_frames"
        )
