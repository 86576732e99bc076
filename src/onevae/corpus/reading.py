"""The readers' side (worker processes or Ray tasks): probe a segment, then read its planned clips as fitted
frames. No model here; what leaves a reader is plain numpy arrays and JSON-able dicts.

Frames are read and fitted exactly as ``onevae encode`` reads them (:func:`onevae.io.video.iter_video_windows`
with the same geometry and frame rate), so a tokenized clip equals the encoded file. Fitted frames travel as
uint8 (T, H, W, 3) when the fit is a crop or a pad (lossless), else as float32 (3, T, H, W).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import OneVAEError
from ..io.fit import Geometry, aspect_text, fit_size
from ..io.frame_files import frame_at
from ..io.video import VideoReadWarning, iter_video_windows, probe_video, tensor_to_frames
from ..pipeline import FitOptions, output_fps, read_fps
from .plan import ClipSettings, SegmentPlan, clip_start, count_clips, expected_frames
from .sources import Segment


@dataclass
class ClipPart:
    """Consecutive fitted frames of one clip; the last part of a clip has ``final`` and the clip's metadata."""

    clip_id: int
    frames: np.ndarray  # uint8 (t, H, W, 3) or float32 (3, t, H, W)
    final: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def as_video(self) -> torch.Tensor:
        """(1, 3, t, H, W) float32 in [-1, 1]."""
        from ..io.video import frames_to_tensor

        if self.frames.dtype == np.uint8:
            return frames_to_tensor(self.frames).unsqueeze(0) if len(self.frames) else torch.zeros(1, 3, 0, 1, 1)
        return torch.from_numpy(np.ascontiguousarray(self.frames)).unsqueeze(0)


@dataclass
class ClipFailure:
    clip_id: int
    reason: str


Message = ClipPart | ClipFailure


def fit_options(settings: ClipSettings) -> FitOptions:
    return FitOptions(size_mode=settings.size_mode, max_side=settings.max_side, short_side=settings.short_side,
                      fps=settings.fps, max_frames=settings.max_frames, chunk_latents=settings.chunk_latents)


@contextmanager
def segment_file(segment: Segment, scratch: Path | None = None) -> Iterator[Path]:
    """A readable path for the segment: the file itself, or its tar member copied to a temporary file."""
    if not segment.member:
        yield Path(segment.path)
        return
    suffix = "." + Path(segment.member).name.split(".", 1)[1] if "." in Path(segment.member).name else ""
    fd, name = tempfile.mkstemp(prefix="onevae-member-", suffix=suffix, dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out, open(segment.path, "rb") as shard:
            shard.seek(segment.offset)
            out.write(shard.read(segment.size))
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _reason(error: BaseException, tmp: Path, segment: Segment) -> str:
    """The error's message, naming the segment rather than a temporary file."""
    return str(error).replace(str(tmp), segment.label)


# ------------------------------------------------------------------------------------------------ planning
def plan_segment(segment: Segment, settings: ClipSettings) -> SegmentPlan:
    """Probe a segment and count its clips (ids are given later, by :func:`onevae.corpus.plan.number_clips`)."""
    plan = SegmentPlan(segment)
    try:
        with segment_file(segment) as path:
            try:
                info = probe_video(path, sequence_fps=settings.fps)  # a frame sequence: --fps is its shot rate
            except OneVAEError as error:
                plan.error = _reason(error, path, segment)
                return plan
    except OSError as error:
        plan.error = f"{segment.label}: cannot read ({error.strerror or error})"
        return plan
    options = fit_options(settings)
    plan.probe = {"width": info.width, "height": info.height, "fps": info.fps, "num_frames": info.num_frames,
                  "duration_s": info.duration_s, "codec": info.codec, "is_image": info.is_image,
                  "is_frame_sequence": info.is_frame_sequence, "variable_frame_rate": info.variable_frame_rate,
                  "sample_aspect_ratio": aspect_text(info.sample_aspect_ratio)}
    plan.rate = output_fps(info, options)
    try:
        geometry = fit_size(info.height, info.width, settings.spatial_factor, settings.size_mode, settings.short_side,
                            settings.max_side)
    except OneVAEError as error:
        plan.error = f"{segment.label}: {error}"
        return plan
    plan.geometry = geometry.to_dict()
    if segment.start_s is not None and not info.is_image and segment.start_s >= info.duration_s > 0:
        plan.error = f"{segment.label}: start {segment.start_s} s is at or after the end of the video ({info.duration_s:.3f} s)"
        return plan
    resampled = read_fps(info, options) is not None and not info.is_frame_sequence
    plan.frames = expected_frames(plan.probe, plan.rate, resampled, segment.start_s, segment.end_s, settings.max_frames)
    plan.num_clips = count_clips(plan.frames, settings)
    if plan.num_clips == 0:
        plan.error = f"{segment.label}: {plan.frames} frame(s), fewer than --clip-frames {settings.clip_frames}"
    return plan


# ------------------------------------------------------------------------------------------------ reading
def read_clips(plan: SegmentPlan, settings: ClipSettings, wanted: set[int] | None = None,
               scratch: Path | None = None) -> Iterator[Message]:
    """The planned clips of a segment (only ``wanted`` ids, if given), as parts, or failures with the reason.

    A truncated or corrupt file fails the clip being read when the damage is met, and every later clip."""
    ids = [c for c in plan.clip_ids() if wanted is None or c in wanted]
    if not ids:
        return
    pending = list(ids)
    try:
        with segment_file(plan.segment, scratch) as path:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", VideoReadWarning)
                    for message in _read(path, plan, settings, list(pending)):
                        if message.final:
                            pending.remove(message.clip_id)
                        yield message
            except (OneVAEError, VideoReadWarning, OSError, RuntimeError, ValueError) as error:
                reason = _reason(error, path, plan.segment)
                for clip_id in pending:
                    yield ClipFailure(clip_id, reason)
                return
    except OSError as error:
        for clip_id in pending:
            yield ClipFailure(clip_id, f"{plan.segment.label}: cannot read ({error.strerror or error})")
        return
    for clip_id in pending:  # the video ended before these clips were complete
        yield ClipFailure(clip_id, f"{plan.segment.label}: the video ended before clip {clip_id} was complete "
                                   f"(planned {plan.frames} frames)")


def _read(path: Path, plan: SegmentPlan, settings: ClipSettings, ids: list[int]) -> Iterator[ClipPart]:
    geometry = Geometry.from_dict(plan.geometry)
    lossless = not geometry.resized
    start_s = plan.segment.start_s or 0.0
    info = _Probe(plan)
    if settings.clip_frames is None:  # a whole video: read to its real end, whatever the probe estimated
        limits = [settings.max_frames, _frames_before_end(plan)]
        limit = min((x for x in limits if x is not None), default=None)
    else:
        limit = clip_start(plan, ids[-1], settings) + settings.clip_frames
    windows = iter_video_windows(path, settings.window_frames, fps=info.read_fps(settings), max_frames=limit,
                                 start_s=start_s, geometry=geometry)
    convert = (lambda w: tensor_to_frames(w)) if lossless else (lambda w: w.numpy())
    if settings.clip_frames is None:
        yield from _whole(windows, plan, ids[0], convert, lossless, geometry)
    else:
        yield from _fixed(windows, plan, settings, ids, convert, lossless, geometry)


def _frames_before_end(plan: SegmentPlan) -> int | None:
    segment = plan.segment
    if segment.end_s is None or plan.probe.get("is_image"):
        return None
    if plan.probe.get("is_frame_sequence"):
        return plan.frames  # exact
    return max(1, math.ceil((segment.end_s - (segment.start_s or 0.0)) * plan.rate - 1e-6))


class _Probe:
    """The probe summary seen as the VideoInfo fields the frame-rate rule needs."""

    def __init__(self, plan: SegmentPlan) -> None:
        self.fps = plan.probe.get("fps", 0.0)
        self.variable_frame_rate = plan.probe.get("variable_frame_rate")

    def read_fps(self, settings: ClipSettings) -> float | None:
        return read_fps(self, fit_options(settings))  # type: ignore[arg-type]


def _first_time(plan: SegmentPlan) -> float:
    """When the segment's first frame read is shown: its start, or for a frame sequence the first frame at or after it."""
    start = plan.segment.start_s or 0.0
    return frame_at(start, plan.rate) / plan.rate if plan.probe.get("is_frame_sequence") else start


def _clip_meta(plan: SegmentPlan, first: int, frames: int, geometry: Geometry) -> dict[str, Any]:
    segment = plan.segment
    offset = _first_time(plan)
    return {
        "source": {"path": segment.path, "member": segment.member, "origin": segment.origin, "segment": segment.index,
                   **plan.probe},
        "clip": {"start_frame": first, "frames": frames, "start_s": offset + first / plan.rate,
                 "end_s": offset + (first + frames) / plan.rate},
        "fps": plan.rate,
        "fit": geometry.to_dict(),
        "columns": segment.columns,
    }


def _whole(windows, plan: SegmentPlan, clip_id: int, convert, lossless: bool, geometry: Geometry) -> Iterator[ClipPart]:
    count = 0
    previous = None
    for window in windows:  # (3, t, H, W) float, fitted
        if previous is not None:
            yield ClipPart(clip_id, previous)
        previous = convert(window)
        count += window.shape[1]
    if previous is None:
        raise OneVAEError(f"{plan.segment.label}: no frame could be read")
    yield ClipPart(clip_id, previous, final=True, meta=_clip_meta(plan, 0, count, geometry))


def _fixed(windows, plan: SegmentPlan, settings: ClipSettings, ids: list[int], convert, lossless: bool,
           geometry: Geometry) -> Iterator[ClipPart]:
    size = settings.clip_frames
    starts = {clip_start(plan, c, settings): c for c in ids}
    recent: deque = deque(maxlen=size)  # the last `size` frames, each (H, W, 3) uint8 or (3, H, W) float
    index = 0
    for window in windows:
        frames = convert(window)
        count = window.shape[1]
        for i in range(count):
            recent.append(frames[i] if lossless else frames[:, i])
            first = index - size + 1
            index += 1
            if first in starts:
                stacked = np.stack(list(recent), axis=0 if lossless else 1)
                yield ClipPart(starts[first], stacked, final=True, meta=_clip_meta(plan, first, size, geometry))
