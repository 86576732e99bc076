"""Clip planning: which clips each segment gives, numbered over the whole corpus, and which shard holds each.

Clip ``n`` (in segment order, then time order) goes to shard ``n // clips_per_shard``: the assignment depends on
the sources and options only, never on the engine or the number of workers. A segment that cannot be read at
planning time gives no clip (and an entry in ``errors.jsonl``); a clip that fails later leaves a gap in its shard.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError
from ..io.frame_files import frame_at
from .sources import Segment

_EPS = 1e-6


@dataclass(frozen=True)
class ClipSettings:
    """What the readers need to know (picklable; no model)."""

    spatial_factor: int
    temporal_factor: int
    size_mode: str = "crop"
    short_side: int | None = None
    max_side: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    clip_frames: int | None = None  # None: one clip per segment (the whole video)
    stride: int | None = None
    chunk_latents: int = 2

    @property
    def window_frames(self) -> int:
        return self.chunk_latents * self.temporal_factor

    @property
    def clip_stride(self) -> int:
        return self.stride or self.clip_frames or 1

    def validate(self) -> None:
        tf = self.temporal_factor
        if self.clip_frames is not None and (self.clip_frames < 1 or (self.clip_frames - 1) % tf):
            valid = ", ".join(str(1 + k * tf) for k in range(5))
            raise InputError(f"--clip-frames {self.clip_frames} is not 1 + k*{tf} for this model (valid: {valid}, ...)")
        if self.stride is not None and self.clip_frames is None:
            raise InputError("--stride needs --clip-frames")
        if self.stride is not None and self.stride < 1:
            raise InputError(f"--stride must be >= 1, got {self.stride}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise InputError(f"--fps must be a positive number, got {self.fps}")
        if self.chunk_latents < 1:
            raise InputError("--chunk must be >= 1")


@dataclass
class SegmentPlan:
    """A probed segment: where its clips start, or why it has none."""

    segment: Segment
    error: str = ""
    probe: dict[str, Any] = field(default_factory=dict)  # width, height, fps, num_frames, duration_s, codec, is_image
    rate: float = 0.0  # frame rate of the frames read (the --fps or the source's)
    frames: int | None = None  # frames expected in the segment (None: read to the end)
    geometry: dict[str, Any] = field(default_factory=dict)
    first_clip: int = 0
    num_clips: int = 0

    def clip_ids(self) -> range:
        return range(self.first_clip, self.first_clip + self.num_clips)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "segment": self.segment.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentPlan:
        return cls(**{**data, "segment": Segment.from_dict(data["segment"])})


def expected_frames(probe: dict[str, Any], rate: float, resampled: bool, start_s: float | None, end_s: float | None,
                    max_frames: int | None) -> int:
    """Frames the reader should give for a segment (exact for constant-rate files whose count is known, and for
    frame sequences)."""
    if probe["is_image"]:
        return 1
    if probe.get("is_frame_sequence"):
        frames = _sequence_frames(probe["num_frames"], rate, start_s, end_s)
    else:
        frames = _video_frames(probe, rate, resampled, start_s, end_s)
    if max_frames is not None:
        frames = min(frames, max_frames)
    return max(frames, 0)


def _video_frames(probe: dict[str, Any], rate: float, resampled: bool, start_s: float | None, end_s: float | None) -> int:
    start = start_s or 0.0
    if resampled or start_s is not None:
        frames = math.ceil(max(probe["duration_s"] - start, 0.0) * rate - _EPS)
        if not resampled:
            frames = min(frames, probe["num_frames"])
    else:
        frames = probe["num_frames"]
    if end_s is not None:
        frames = min(frames, math.ceil((end_s - start) * rate - _EPS))
    return frames


def _sequence_frames(count: int, rate: float, start_s: float | None, end_s: float | None) -> int:
    """The frames of a sequence (never resampled; frame k shot at k / rate) shown from ``start_s`` until ``end_s``."""
    end = count if end_s is None else min(count, frame_at(end_s, rate))
    return end - frame_at(start_s or 0.0, rate)


def count_clips(frames: int, settings: ClipSettings) -> int:
    if settings.clip_frames is None:
        return 1 if frames > 0 else 0
    if frames < settings.clip_frames:
        return 0
    return 1 + (frames - settings.clip_frames) // settings.clip_stride


def clip_start(plan: SegmentPlan, clip_id: int, settings: ClipSettings) -> int:
    """The first frame (in the segment's frames) of a planned clip."""
    return (clip_id - plan.first_clip) * settings.clip_stride if settings.clip_frames else 0


def number_clips(plans: list[SegmentPlan]) -> int:
    """Give the planned clips consecutive ids in segment order; returns the number of clips."""
    next_id = 0
    for plan in sorted(plans, key=lambda p: p.segment.index):
        plan.first_clip = next_id
        next_id += plan.num_clips
    return next_id


def shard_of(clip_id: int, clips_per_shard: int) -> int:
    return clip_id // clips_per_shard


def clips_by_shard(plans: list[SegmentPlan], clips_per_shard: int) -> dict[int, list[int]]:
    shards: dict[int, list[int]] = {}
    for plan in plans:
        for clip_id in plan.clip_ids():
            shards.setdefault(shard_of(clip_id, clips_per_shard), []).append(clip_id)
    return shards


def plan_errors(plans: list[SegmentPlan]) -> Iterator[dict[str, Any]]:
    for plan in plans:
        if plan.error:
            segment = plan.segment
            yield {"segment": segment.index, "source": segment.label, "origin": segment.origin, "clip_id": None,
                   "error": plan.error}
