"""Media files made by the tests (PyAV only, no project code): clips and broken inputs."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from onevae.io.samples import sample_video_path


def make_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: int = 30,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts_ms: Sequence[int] | None = None,
    options: dict | None = None,
    container_options: dict | None = None,
    rotation: float | None = None,
    hflip: bool = False,
    sample_aspect_ratio: Fraction | None = None,
) -> Path:
    """Encode RGB(A) uint8 frames with PyAV exactly as given (no project code); ``rotation`` (degrees
    counter-clockwise) and ``hflip`` tag the stream with a display matrix, as phones do; ``sample_aspect_ratio``
    tags non-square pixels (an anamorphic source)."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        if options:
            stream.options = options
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgba" if array.shape[-1] == 4 else "rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def stored_sample_aspect(path: Path) -> Fraction | None:
    """The sample aspect ratio PyAV reads from a file, container and bitstream agreeing (None: not tagged)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        next(container.decode(stream))  # the decoder has read the bitstream's (H.264 VUI) ratio
        tags = {stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio}
    assert len(tags) == 1, f"{path}: the container and the bitstream disagree: {tags}"
    return tags.pop()


def make_held_frames_avi(path: Path, frames: Sequence[np.ndarray], slots: Sequence[int], fps: int = 10) -> Path:
    """An MJPEG AVI whose frame i is shown at frame slot ``slots[i]`` (at ``fps``): the slots skipped are stored as
    empty chunks (the previous frame is held), as in OpenCV's sample ``tree.avi``; the header counts every slot."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj420p"
        for slot, array in zip(slots, frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = slot
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def smooth_frames(t: int, h: int, w: int) -> list[np.ndarray]:
    """Slowly moving smooth gradients (compress well, so a good codec round trip is > 30 dB)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for i in range(t):
        r = 128 + 100 * np.sin((x + 2 * i) / w * 2 * np.pi)
        g = 128 + 100 * np.cos((y - i) / h * 2 * np.pi)
        b = 128 + 60 * np.sin((x + y + 3 * i) / (h + w) * 4 * np.pi)
        out.append(np.stack([r, g, b], -1).round().astype(np.uint8))
    return out


def make_bad_files(d: Path) -> dict[str, Path]:
    """Broken inputs: a directory, a missing path, text, empty, truncated, zero-frame and audio-only files."""
    real = sample_video_path("carphone_pristine").read_bytes()
    files = {"directory": d / "folder", "missing": d / "missing.mp4"}
    files["directory"].mkdir()
    contents = {
        "text_mp4": ("notes.mp4", b"this is not a video\n" * 40),
        "text_txt": ("notes.txt", b"this is not a video\n" * 40),
        "empty": ("empty.mp4", b""),
        "half": ("half.mp4", real[: len(real) // 2]),
        "1kb": ("1kb.mp4", real[:1024]),
    }
    for key, (name, data) in contents.items():
        files[key] = d / name
        files[key].write_bytes(data)
    with av.open(str(d / "zero.mkv"), "w") as container:  # a video stream but no packets
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    files["zero_frames"] = d / "zero.mkv"
    with av.open(str(d / "zero.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    files["zero_frames_mp4"] = d / "zero.mp4"
    sine = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)[None]
    for name, codec, fmt, samples in [("sine.m4a", "aac", "fltp", sine), ("sine.wav", "pcm_s16le", "s16", (sine * 30000).astype(np.int16))]:
        with av.open(str(d / name), "w") as container:
            stream = container.add_stream(codec, rate=16000)
            frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
            frame.sample_rate = 16000
            for packet in list(stream.encode(frame)) + list(stream.encode(None)):
                container.mux(packet)
        files[name] = d / name
    return files
