"""Preparing the default tokenizer's training set from offline sources (``scripts/prepare_training_data.py``).

Four folders under the output directory, each a ``data.sources`` entry of the training configs:

``videos/``  the training part of every real clip (held-out frames cut, see :mod:`onevae.eval.heldout`),
             whole frames downscaled to a short side of 144 px: scene-level content and motion.
``tiles/``   native-scale spatial tiles of the same clips (``TILE`` px squares at scales 1, 0.75 and 0.5 of the
             source), so that the model sees the detail people encode rather than only shrunk frames; a share
             get a random hue rotation and saturation gain (colour augmentation).
``photos/``  real photographs (scikit-image's stills, Debian wallpaper packages): tiles at scales 1, 0.5 and
             0.25 and the whole image shrunk, also colour-augmented; the loader moves a simulated camera over them.
``charts/``  synthetic flat-colour charts (random saturated hues, skin tones and greys as flat shapes), so
             that every hue appears flat and saturated, which real footage rarely shows; and gamut charts
             (``gamut_NNN.png``): the RGB cube's corners and full-value hues, the colours a model most easily
             pulls towards grey.

Every input that cannot be read is skipped and counted (:class:`PrepareReport`), never fatal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..eval.heldout import source_stem, train_end
from ..extras import require
from ..io.fit import resize_video
from ..io.image_writer import write_image
from ..io.video import IMAGE_EXTENSIONS, frames_to_tensor, iter_video_frames, probe_video, tensor_to_frames
from ..io.writer import VideoWriter

TILE = 128
VIDEO_SCALES = (1.0, 0.75, 0.5)
PHOTO_SCALES = ((1.0, 1), (0.5, 1), (0.25, 1))  # (scale, tiles per image)
TILES_PER_SCALE = 8  # most tiles per video source and scale
MAX_VIDEO_FRAMES = 480  # frames read per source (memory); vtest has 795
MAX_TILE_FRAMES = 240  # frames per tile clip (long sources are cut)
COLOUR_AUG_SHARE = 0.5
SHORT_SIDE = 144
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "motorcycle_right", "cat",
                  "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel")


@dataclass
class PrepareReport:
    """What was written and what was skipped (input -> reason)."""

    written: dict[str, int] = field(default_factory=dict)  # folder -> files
    skipped: dict[str, str] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)  # held-out sources, not read

    def add(self, folder: str, count: int = 1) -> None:
        self.written[folder] = self.written.get(folder, 0) + count

    def summary(self) -> str:
        parts = [f"{folder}: {n} files" for folder, n in sorted(self.written.items())]
        line = "wrote " + (", ".join(parts) or "nothing")
        line += f"; skipped {len(self.skipped)} unreadable input(s)"
        if self.skipped:
            line += " (" + "; ".join(f"{Path(k).name}: {v}" for k, v in list(self.skipped.items())[:5]) + ")"
        if self.excluded:
            line += f"; held out, not read: {', '.join(sorted(self.excluded))}"
        return line


# ------------------------------------------------------------------------------------------------ colour
def hue_rotate(frames: np.ndarray, degrees: float, saturation: float = 1.0) -> np.ndarray:
    """Rotate the hue of uint8 RGB frames (..., 3) by ``degrees`` and scale the chroma by ``saturation``, in
    YIQ (luma kept; a rotation of the I/Q plane is a hue rotation), clipped to [0, 255]."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    theta = math.radians(degrees)
    rot = np.array([[1, 0, 0], [0, math.cos(theta), -math.sin(theta)], [0, math.sin(theta), math.cos(theta)]])
    gain = np.diag([1.0, saturation, saturation])
    matrix = np.linalg.inv(to_yiq) @ gain @ rot @ to_yiq
    out = frames.astype(np.float32) @ matrix.T.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colour_augment(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random hue rotation (30-330 degrees) and saturation gain (1.0-1.5)."""
    return hue_rotate(frames, float(rng.uniform(30, 330)), float(rng.uniform(1.0, 1.5)))


# ------------------------------------------------------------------------------------------------ geometry
def resize_frames(frames: np.ndarray, h: int, w: int, chunk: int = 32) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, h, w, 3), antialiased, ``chunk`` frames at a time (bounded memory)."""
    parts = [tensor_to_frames(resize_video(frames_to_tensor(frames[i : i + chunk]), h, w)) for i in range(0, len(frames), chunk)]
    return np.concatenate(parts)


def rescale(frames: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (T, H, W, 3) resized by ``scale`` (antialiased); scale 1 is returned as is."""
    if scale == 1.0:
        return frames
    h, w = frames.shape[1:3]
    return resize_frames(frames, max(1, round(h * scale)), max(1, round(w * scale)))


def tile_origins(h: int, w: int, tile: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``count`` distinct top-left corners of a non-overlapping ``tile`` grid, chosen at random."""
    grid = [(y * tile, x * tile) for y in range(h // tile) for x in range(w // tile)]
    if not grid:
        return []
    picks = rng.permutation(len(grid))[:count]
    return [grid[i] for i in sorted(picks)]


def short_side_size(h: int, w: int, short: int) -> tuple[int, int]:
    """(h, w) scaled so that the short side is ``short`` (even sizes; never upscaled)."""
    scale = min(1.0, short / min(h, w))
    return max(2, 2 * round(h * scale / 2)), max(2, 2 * round(w * scale / 2))


# ------------------------------------------------------------------------------------------------ writers
def write_clip(path: Path, frames: np.ndarray, fps: float) -> None:
    with VideoWriter(path, fps=fps, crf=10, preset="fast") as writer:
        writer.write(frames)


# ------------------------------------------------------------------------------------------------ sources
def training_frames(path: Path) -> np.ndarray | None:
    """The frames of ``path`` that training may use (uint8 (T, H, W, 3)), None for a held-out source."""
    end = train_end(path)
    if end == 0:
        return None
    limit = MAX_VIDEO_FRAMES if end is None else min(end, MAX_VIDEO_FRAMES)
    frames = list(iter_video_frames(path, max_frames=limit))
    if not frames:
        raise ValueError("no frame could be decoded")
    return np.stack(frames)


def prepare_video(path: Path, out: Path, rng: np.random.Generator, report: PrepareReport) -> None:
    """The whole-frame clip (short side 144) and the native-scale tiles of one real clip."""
    fps = float(probe_video(path).fps or 25.0)
    frames = training_frames(path)
    if frames is None:
        report.excluded.append(source_stem(path))
        return
    stem = source_stem(path)
    h, w = short_side_size(*frames.shape[1:3], SHORT_SIDE)
    whole = resize_frames(frames, h, w)
    write_clip(out / "videos" / f"{stem}.mp4", whole, fps)
    report.add("videos")
    frames = frames[:MAX_TILE_FRAMES]
    for scale in VIDEO_SCALES:
        scaled = rescale(frames, scale)
        for top, left in tile_origins(*scaled.shape[1:3], TILE, TILES_PER_SCALE, rng):
            tile = scaled[:, top : top + TILE, left : left + TILE]
            name = f"{stem}_s{int(scale * 100)}_{top}_{left}"
            write_clip(out / "tiles" / f"{name}.mp4", tile, fps)
            report.add("tiles")
            if rng.random() < COLOUR_AUG_SHARE:
                write_clip(out / "tiles" / f"{name}_hue.mp4", colour_augment(tile, rng), fps)
                report.add("tiles")


def prepare_photo(image: np.ndarray, stem: str, out: Path, rng: np.random.Generator, report: PrepareReport) -> None:
    """Tiles of one photo at several scales plus the whole photo shrunk, a share colour-augmented."""
    pieces = []
    for scale, count in PHOTO_SCALES:
        scaled = rescale(image[None], scale)[0]
        for top, left in tile_origins(*scaled.shape[:2], TILE, count, rng):
            pieces.append((f"{stem}_s{int(scale * 100)}_{top}_{left}", scaled[top : top + TILE, left : left + TILE]))
    h, w = short_side_size(*image.shape[:2], 160)
    pieces.append((f"{stem}_whole", tensor_to_frames(resize_video(frames_to_tensor(image), h, w))[0]))
    for name, piece in pieces:
        if rng.random() < COLOUR_AUG_SHARE:
            piece, name = colour_augment(piece, rng), f"{name}_hue"
        write_image(out / "photos" / f"{name}.png", np.ascontiguousarray(piece))
        report.add("photos")


def flat_colour_chart(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """A (size, size, 3) uint8 image of flat shapes: saturated random hues, skin tones, greys."""
    import colorsys

    def colour() -> tuple[int, int, int]:
        kind = rng.random()
        if kind < 0.6:  # saturated hue
            rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.45, 1.0))
        elif kind < 0.8:  # skin tones
            rgb = colorsys.hsv_to_rgb(rng.uniform(0.02, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
        else:  # greys
            rgb = (rng.random(),) * 3
        return tuple(int(round(255 * c)) for c in rgb)

    return _flat_shapes(rng, colour, size, shapes=(2, 7), min_radius=size // 8)


def _flat_shapes(rng: np.random.Generator, colour, size: int, shapes: tuple[int, int], min_radius: int) -> np.ndarray:
    """A (size, size, 3) uint8 image: a flat background and a few flat discs and squares, colours from ``colour()``."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = colour()
    yy, xx = np.mgrid[:size, :size]
    for _ in range(int(rng.integers(*shapes))):
        cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(min_radius, size // 2))]
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r if rng.random() < 0.5 else (abs(yy - cy) < r) & (abs(xx - cx) < r)
        image[mask] = colour()
    return image


GAMUT_CORNERS = [(r, g, b) for r in (0, 255) for g in (0, 255) for b in (0, 255)]  # primaries, secondaries, black, white


def gamut_chart(rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """A (size, size, 3) uint8 chart of flat shapes in the colours at the edge of the RGB gamut, which natural
    footage and :func:`flat_colour_chart` rarely reach: the cube's corners (pure primaries and secondaries, black,
    white) and full-value, full-saturation hues (one channel 0, one 255)."""

    def colour() -> tuple[int, int, int]:
        if rng.random() < 0.6:
            return GAMUT_CORNERS[int(rng.integers(len(GAMUT_CORNERS)))]
        rgb = [0, 255, int(rng.integers(0, 256))]
        order = rng.permutation(3)
        return tuple(rgb[i] for i in order)

    return _flat_shapes(rng, colour, size, shapes=(1, 5), min_radius=size // 6)


def write_gamut_charts(out: str | Path, count: int, seed: int = 0) -> int:
    """``count`` gamut charts as ``charts/gamut_NNN.png``, from their own random stream (the same files whatever
    else was prepared)."""
    rng = np.random.default_rng([seed, 1])
    (Path(out) / "charts").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        write_image(Path(out) / "charts" / f"gamut_{index:03d}.png", gamut_chart(rng))
    return count


def iter_images(folders: Iterable[str | Path]) -> Iterable[Path]:
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            yield folder
        elif folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def load_image(path: Path, max_side: int = 2048) -> np.ndarray:
    """An RGB uint8 image, shrunk so that its long side is at most ``max_side``."""
    frame = next(iter_video_frames(path))
    scale = min(1.0, max_side / max(frame.shape[:2]))
    return rescale(frame[None], scale)[0] if scale < 1.0 else frame


def skimage_photos() -> list[tuple[str, np.ndarray]]:
    skimage_data = require("skimage.data", "data", "photos from scikit-image", package="scikit-image")

    photos = []
    for name in SKIMAGE_PHOTOS:
        loader = getattr(skimage_data, name, None)
        if loader is None:
            continue
        image = np.asarray(loader())
        if image.ndim == 3 and image.shape[2] >= 3 and min(image.shape[:2]) >= TILE:
            photos.append((name, np.ascontiguousarray(image[..., :3].astype(np.uint8))))
    return photos


def prepare(
    out: str | Path,
    videos: Iterable[str | Path],
    image_folders: Iterable[str | Path] = (),
    use_skimage: bool = True,
    charts: int = 40,
    seed: int = 0,
    gamut_charts: int = 40,
) -> PrepareReport:
    """Write the four folders (see the module doc) under ``out``; unreadable inputs are skipped and counted."""
    out = Path(out)
    for folder in ("videos", "tiles", "photos", "charts"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    report = PrepareReport()
    for path in map(Path, videos):
        try:
            prepare_video(path, out, rng, report)
        except Exception as exc:  # any decoding failure: skip the input, count it, go on
            report.skipped[str(path)] = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    photos: list[tuple[str, np.ndarray | Path]] = list(skimage_photos()) if use_skimage else []
    photos += [(f"{p.parent.name}_{p.stem}", p) for p in iter_images(image_folders)]
    for stem, source in photos:
        try:
            image = load_image(source) if isinstance(source, Path) else source
            prepare_photo(image, stem, out, rng, report)
        except Exception as exc:
            report.skipped[str(source) if isinstance(source, Path) else stem] = str(exc).splitlines()[0][:120] or type(exc).__name__
    for index in range(charts):
        write_image(out / "charts" / f"chart_{index:03d}.png", flat_colour_chart(rng))
        report.add("charts")
    for _ in range(write_gamut_charts(out, gamut_charts, seed)):
        report.add("charts")
    return report
