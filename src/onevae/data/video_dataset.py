"""Random training clips from video and image files (decoding by :mod:`onevae.io.video`).

Each item is one random clip of a file: ``num_frames`` frames (``1 + k * temporal_factor``) at the chosen frame
rate, starting at a random time (PyAV seeks to the keyframe before it, so long files are not decoded from the
beginning), one random resized crop for all frames, and a random horizontal flip. Values are float32 in [-1, 1],
shaped (3, T, H, W).

Images are one-frame clips (T = 1) when ``images_as_clips``; with ``simulate_motion`` they become ``num_frames``
frames of a slow pan/zoom over the still. Mixing T = 1 images with videos in one batch is impossible: use
``batch_size=1``, ``simulate_motion=True`` or separate datasets.

Files are probed at construction (first frame decoded, a few packets demuxed): unreadable or too-short files are
skipped and counted (:attr:`VideoClipDataset.skipped`), with one warning at the end. A file that fails later
(damage after the probed part) is replaced by another file and counted in :attr:`VideoClipDataset.failures`.

Reproducibility: the randomness of item ``i`` comes from ``(seed, epoch, i)`` only, so a run gives the same clips
whatever the number of DataLoader workers; call :meth:`VideoClipDataset.set_epoch` each epoch (with
non-persistent workers, which copy the dataset at each epoch).
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError, OneVAEError
from ..io.fit import resize_video
from ..io.paths import PathLike
from ..io.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoInfo, frames_to_tensor, iter_video_frames, probe_video

LIST_EXTENSIONS = (".txt", ".lst", ".list")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
DEFAULT_EXCLUDE = ("carphone_pristine*",)  # the public evaluation clip: never train on it
_MAX_ATTEMPTS = 10  # files tried for one item before giving up


class DataWarning(UserWarning):
    """Files of a dataset were skipped (unreadable, too short) or failed while reading."""


# ============================================================================================ file lists


def is_media_file(path: Path) -> bool:
    """A video or image by extension; ``.gz`` files by the extension before it (``box.mp4.gz``)."""
    suffix = Path(path.stem).suffix.lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    return suffix in MEDIA_EXTENSIONS


def is_image_file(path: Path) -> bool:
    suffix = Path(path.stem).suffix.lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    return suffix in IMAGE_EXTENSIONS


def is_excluded(path: PathLike, patterns: Sequence[str]) -> bool:
    """True when the file name (or the whole path) matches one of the glob patterns, case-insensitively."""
    name, full = Path(path).name.lower(), str(path).lower()
    return any(fnmatch.fnmatch(name, p.lower()) or fnmatch.fnmatch(full, p.lower()) for p in patterns)


def list_media_files(
    sources: PathLike | Iterable[PathLike], exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> list[Path]:
    """Media files from folders (recursive, sorted), single files and list files, without the excluded ones."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        found.extend(_expand_source(Path(source)))
    unique = list(dict.fromkeys(found))
    return [p for p in unique if not is_excluded(p, exclude)]


def missing_paths(sources: Iterable[PathLike]) -> list[str]:
    """The entries of ``sources`` that name no existing file or folder (the lines of a list file are checked
    when it is read: a missing one is skipped with a warning)."""
    return [str(source) for source in sources if not Path(source).exists()]


def relative_paths_note(paths: Iterable[PathLike]) -> str:
    """`` (relative paths are read from the current directory, CWD)`` when one of ``paths`` is relative."""
    if all(Path(p).is_absolute() for p in paths):
        return ""
    return f" (relative paths are read from the current directory, {Path.cwd()})"


def _expand_source(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and is_media_file(p))
    if source.suffix.lower() in LIST_EXTENSIONS and source.is_file():
        return _read_list_file(source)
    if source.exists():
        return [source]  # an unreadable file is reported (skipped) at indexing
    raise InputError(f"data source {source} does not exist{relative_paths_note([source])}")


def _read_list_file(path: Path) -> list[Path]:
    """One path per line (relative to the list file's folder); blank lines and '#' comments ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    paths = [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines if line]
    return [p for entry in paths for p in (_expand_source(entry) if entry.is_dir() else [entry])]


def validate_num_frames(num_frames: int, temporal_factor: int) -> None:
    """Raise :class:`InputError` unless ``num_frames = 1 + k * temporal_factor``."""
    if num_frames < 1 or (num_frames - 1) % temporal_factor:
        valid = ", ".join(str(1 + k * temporal_factor) for k in range(4))
        raise InputError(
            f"num_frames={num_frames} is not 1 + k * {temporal_factor} (the temporal factor); valid: {valid}, ..."
        )


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one item, independent of which worker draws it."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch, index])


# ============================================================================================ clip sampling


@dataclass(frozen=True)
class ClipSampler:
    """Cuts one random, augmented clip out of a probed file (shared by the file and tar-shard datasets)."""

    num_frames: int
    height: int
    width: int
    fps: float | None = None
    random_crop_scale: tuple[float, float] = (0.6, 1.0)
    hflip: bool = True
    images_as_clips: bool = True
    simulate_motion: bool = False

    def unusable_reason(self, info: VideoInfo) -> str | None:
        """Why the file cannot give a clip (None when it can)."""
        if info.is_image:
            return None if self.images_as_clips else "an image (images_as_clips is off)"
        if self.fps is None and info.num_frames < self.num_frames:
            return f"too short: {info.num_frames} frames, {self.num_frames} needed"
        if self.fps is not None and info.duration_s + 1e-3 < self.num_frames / self.fps:  # 1 ms: container rounding
            return f"too short: {info.duration_s:.2f} s, {self.num_frames / self.fps:.2f} s needed at {self.fps:g} fps"
        return None

    def sample(self, path: Path, info: VideoInfo, rng: np.random.Generator) -> torch.Tensor:
        """A float32 (3, T, height, width) clip in [-1, 1] (T = 1 for a still without simulated motion)."""
        if info.is_image:
            image = next(iter_video_frames(path))  # (H, W, 3) uint8
            clip = self._still_motion(image, rng) if self.simulate_motion else self._crop_resize(image[None], rng)
        else:
            clip = self._crop_resize(self._read_frames(path, info, rng), rng)
        if self.hflip and rng.random() < 0.5:
            clip = clip.flip(-1)
        return clip.clamp_(-1, 1).contiguous()  # resizing can overshoot by rounding errors

    def _read_frames(self, path: Path, info: VideoInfo, rng: np.random.Generator) -> np.ndarray:
        """``num_frames`` consecutive frames (T, H, W, 3) uint8 from a random start time."""
        start_s = self._random_start(info, rng)
        frames = list(iter_video_frames(path, fps=self.fps, max_frames=self.num_frames, start_s=start_s))
        if len(frames) < self.num_frames and start_s > 0:  # the header promised more than there is
            frames = list(iter_video_frames(path, fps=self.fps, max_frames=self.num_frames))
        if len(frames) < self.num_frames:
            raise InputError(f"{path}: only {len(frames)} frames could be read, {self.num_frames} needed")
        return np.stack(frames)

    def _random_start(self, info: VideoInfo, rng: np.random.Generator) -> float:
        if self.fps is None:
            first = int(rng.integers(0, info.num_frames - self.num_frames + 1))
            return first / info.fps if info.fps > 0 else 0.0
        latest = max(0.0, info.duration_s - self.num_frames / self.fps)
        return float(rng.uniform(0.0, latest)) if latest > 0 else 0.0

    def _crop_resize(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """One random crop of the target aspect for all frames, resized: (T, H, W, 3) uint8 -> (3, T, h, w)."""
        h, w = frames.shape[1:3]
        top, left, crop_h, crop_w = self._random_box(h, w, rng)
        crop_h, crop_w = min(h, max(1, round(crop_h))), min(w, max(1, round(crop_w)))
        top, left = min(round(top), h - crop_h), min(round(left), w - crop_w)
        clip = frames_to_tensor(frames[:, top : top + crop_h, left : left + crop_w])  # (3, T, crop_h, crop_w)
        return resize_video(clip, self.height, self.width)

    def _random_box(self, h: int, w: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
        """(top, left, height, width) of a crop with the output's aspect ratio covering a random fraction
        (``random_crop_scale``) of the largest such crop."""
        aspect = self.width / self.height
        full_h = min(float(h), w / aspect)
        side = math.sqrt(rng.uniform(*self.random_crop_scale))
        crop_h, crop_w = full_h * side, full_h * aspect * side
        return rng.uniform(0, h - crop_h), rng.uniform(0, w - crop_w), crop_h, crop_w

    def _still_motion(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """A slow pan/zoom over a still: the crop box glides from one random box to another (smoothstep)."""
        h, w = image.shape[:2]
        start, end = np.array(self._random_box(h, w, rng)), np.array(self._random_box(h, w, rng))
        steps = np.linspace(0.0, 1.0, self.num_frames)
        eased = steps * steps * (3 - 2 * steps)
        boxes = start[None] + (end - start)[None] * eased[:, None]  # (T, 4) top, left, height, width
        still = frames_to_tensor(image)[:, 0]  # (3, H, W)
        shrink = min(1.0, 1.5 * self.width / boxes[:, 3].min())  # pre-shrink so sampling does not alias
        if shrink < 1.0:
            still = resize_video(still, max(1, round(h * shrink)), max(1, round(w * shrink)))
            boxes = boxes * shrink
            h, w = still.shape[-2:]
        return _sample_boxes(still, boxes, h, w, self.height, self.width)


def _sample_boxes(still: torch.Tensor, boxes: np.ndarray, h: int, w: int, out_h: int, out_w: int) -> torch.Tensor:
    """Bilinear crops of a (3, h, w) still at (T, 4) sub-pixel boxes -> (3, T, out_h, out_w)."""
    boxes_t = torch.as_tensor(boxes, dtype=torch.float32)
    top, left, bh, bw = boxes_t.unbind(1)
    theta = torch.zeros(len(boxes_t), 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = bw / w, 2 * (left + bw / 2) / w - 1
    theta[:, 1, 1], theta[:, 1, 2] = bh / h, 2 * (top + bh / 2) / h - 1
    grid = F.affine_grid(theta, [len(boxes_t), 3, out_h, out_w], align_corners=False)
    stills = still.expand(len(boxes_t), -1, -1, -1)  # (T, 3, h, w)
    frames = F.grid_sample(stills, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return frames.permute(1, 0, 2, 3).clamp_(-1, 1)  # (3, T, out_h, out_w)


# ============================================================================================ dataset


@dataclass(frozen=True)
class _Entry:
    path: Path
    info: VideoInfo


class VideoClipDataset(Dataset):
    """Random clips from video/image files (see the module doc); items are float32 (3, T, H, W) in [-1, 1]."""

    def __init__(
        self,
        sources: PathLike | Iterable[PathLike],
        num_frames: int,
        size: int | tuple[int, int],
        fps: float | None = None,
        temporal_factor: int = 8,
        random_crop_scale: tuple[float, float] = (0.6, 1.0),
        hflip: bool = True,
        images_as_clips: bool = True,
        simulate_motion: bool = False,
        seed: int = 0,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        clips_per_file: int = 1,
        warn: bool = True,
    ) -> None:
        validate_num_frames(num_frames, temporal_factor)
        height, width = (size, size) if isinstance(size, int) else size
        self.sampler = ClipSampler(
            num_frames, height, width, fps, tuple(random_crop_scale), hflip, images_as_clips, simulate_motion
        )
        self.seed, self.epoch, self.clips_per_file = seed, 0, clips_per_file
        self.skipped: dict[str, str] = {}  # path -> reason, from indexing
        self.failures = 0  # items whose file failed after indexing (this process only)
        self._warned_paths: set[str] = set()
        sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
        files = list_media_files(sources, exclude)
        if not images_as_clips:
            files = [p for p in files if not is_image_file(p)]
        self.entries = self._index(files)
        if warn and self.skipped:
            warnings.warn(_skipped_message(self.skipped, len(files)), DataWarning, stacklevel=2)
        if not self.entries:
            where = ", ".join(map(str, sources))
            found = f"{len(self.skipped)} file(s), all skipped" if self.skipped else "no video or image file found"
            raise InputError(f"no usable video or image in {where} ({found})")

    def _index(self, files: list[Path]) -> list[_Entry]:
        entries = []
        for path in files:
            try:
                info = probe_video(path)
            except OneVAEError as error:
                self.skipped[str(path)] = str(error)
                continue
            reason = self.sampler.unusable_reason(info)
            if reason:
                self.skipped[str(path)] = f"{path}: {reason}"
                continue
            entries.append(_Entry(path, info))
        return entries

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def set_epoch(self, epoch: int) -> None:
        """Change the random clips and augmentations (call before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries) * self.clips_per_file

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        rng = item_rng(self.seed, self.epoch, index)
        entry = self.entries[index % len(self.entries)]
        last_error: Exception | None = None
        for _ in range(_MAX_ATTEMPTS):
            try:
                return self.sampler.sample(entry.path, entry.info, rng)
            except OneVAEError as error:
                last_error = error
                self._record_failure(entry.path, error)
                entry = self.entries[int(rng.integers(len(self.entries)))]
        raise InputError(f"no readable clip after {_MAX_ATTEMPTS} files (last error: {last_error})")

    def _record_failure(self, path: Path, error: Exception) -> None:
        self.failures += 1
        if str(path) not in self._warned_paths:
            self._warned_paths.add(str(path))
            warnings.warn(f"skipping a clip: {error}", DataWarning, stacklevel=3)


def _skipped_message(skipped: dict[str, str], total: int, shown: int = 3) -> str:
    examples = "; ".join(list(skipped.values())[:shown])
    more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"skipped {len(skipped)} of {total} file(s) (unreadable or too short): {examples}{more}"
