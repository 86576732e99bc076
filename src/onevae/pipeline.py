"""File-level inference: video file -> tokens/latents file -> video file, and reconstruction with metrics.

Everything streams: frames are read in windows, encoded and decoded chunk by chunk with causal caches, and
written as they come, so a long or large video never has to fit in memory (only the tokens do).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .guards import check_finite
from .io.fit import Geometry, aspect_text, fit_size
from .io.outputs import check_output
from .io.paths import PathLike
from .io.tokens import (
    TokenFileMeta,
    check_same_model,
    load_token_file,
    save_token_file,
    source_sample_aspect,
    token_meta_for,
    undone_size,
)
from .io.video import VideoInfo, iter_video_windows, probe_video
from .io.writer import Writer, open_writer
from .latent_stats import LatentStatsAccumulator, stats_tensors
from .latent_stats import denormalize as denormalize_latents
from .latent_stats import normalize as normalize_latents
from .latents import Grids, Latents
from .model import OneVAE
from .padding import padding_for
from .progress import FrameProgress
from .streaming import (
    MIN_TILE_POSITIONS,
    StreamingDecoder,
    StreamingEncoder,
    TiledDecoder,
    TiledEncoder,
    Tiling,
    decoder_for,
    default_overlap,
    encoder_for,
)

# Rough activation memory of one streamed chunk, in units of (dim channels x frames x H x W x 4 bytes).
_ACTIVATION_FACTOR = 10
# Plan to use at most this share of the memory available, leaving room for the rest of the process.
_MEMORY_SHARE = 0.8


@dataclass
class FitOptions:
    """How a file is read and brought to a valid size (see onevae.io.video for the policies)."""

    size_mode: str = "crop"  # crop | pad | resize
    max_side: int | None = None  # downscale first so that the long side is at most this
    short_side: int | None = None  # downscale first so that the short side is at most this
    fps: float | None = None  # resample the frame rate (a variable-rate file is resampled to its mean rate); for a
    # frame sequence, the rate its frames were shot at (nothing resampled)
    max_frames: int | None = None
    chunk_latents: int = 2  # latent frames per streamed chunk (memory vs speed)


def plan_geometry(model: OneVAE, info: VideoInfo, options: FitOptions) -> Geometry:
    return fit_size(info.height, info.width, model.config.spatial_factor, options.size_mode, options.short_side, options.max_side)


def output_fps(info: VideoInfo, options: FitOptions) -> float:
    if options.fps:
        return float(options.fps)
    return float(info.fps) if info.fps and info.fps > 0 else 25.0


def read_fps(info: VideoInfo, options: FitOptions) -> float | None:
    """The rate to resample to: the asked one, or the mean rate for a variable-frame-rate file. A frame sequence
    is never resampled: the asked rate is the one its frames were shot at (probed with it, and what the reader
    takes ``fps`` as for a sequence)."""
    if options.fps:
        return float(options.fps)
    return float(info.fps) if info.variable_frame_rate and info.fps > 0 else None


def piece_frames(model: OneVAE, chunk_frames: int, clip_frames: int | None) -> int:
    """Frames of the largest piece a clip of ``clip_frames`` (None: unknown) streams in: frame 0 goes alone, then
    ``chunk_frames`` at a time, the last padded to a multiple of tf, so a clip shorter than a chunk needs memory
    for its own frames only (what :func:`plan_tiling` is given); never less than tf (a 1-frame clip plans for tf)."""
    if not clip_frames:
        return chunk_frames
    tf = model.config.temporal_factor
    padded = padding_for(clip_frames, 1, 1, tf, 1).frames  # time only: the frames encode repeats at the end
    return min(chunk_frames, max(clip_frames - 1 + padded, tf))


def _chunk_bytes(model: OneVAE, height: int, width: int, chunk_frames: int) -> int:
    return _ACTIVATION_FACTOR * model.config.dim * (chunk_frames + 2) * height * width * 4


def _cache_bytes(model: OneVAE, height: int, width: int) -> int:
    """Bytes of the causal caches that streaming keeps for frames of (height, width): measured once per model
    configuration and dtype on a tiny clip (they are proportional to the frame's area)."""
    return _cache_bytes_per_pixel(model) * height * width


_CACHE_PER_PIXEL: dict[tuple[str, str, str], float] = {}


def _cache_bytes_per_pixel(model: OneVAE) -> float:
    key = (json.dumps(model.config.to_dict(), sort_keys=True), str(model.encode_dtype), str(model.decode_dtype))
    if key not in _CACHE_PER_PIXEL:
        side, tf = 2 * model.config.spatial_factor, model.config.temporal_factor
        encoder, decoder = StreamingEncoder(model, tf, check_input=False), StreamingDecoder(model, check_input=False)
        with torch.no_grad():
            for frames in (1, tf, tf):  # frame 0, then two chunks: every cache holds its full past
                video = torch.zeros(1, 3, frames, side, side, device=model.device, dtype=model.encode_dtype)
                decoder.push(encoder.push(video))
        _CACHE_PER_PIXEL[key] = (encoder.cache.num_bytes() + decoder.cache.num_bytes()) / side**2
    return _CACHE_PER_PIXEL[key]


def plan_tiling(model: OneVAE, height: int, width: int, chunk_frames: int, tile_by_tile: bool = False) -> Tiling | None:
    """The tiling to stream frames of (height, width) with: the model's own (``enable_tiling``), else none if a
    whole frame fits in memory, else the largest tile that fits (overlap a quarter of it). ``tile_by_tile``: the
    tiles will run one after the other over the whole clip (:meth:`TiledEncoder.encode_rereading`), so only one
    tile's causal caches are alive; otherwise every tile keeps its caches (overlaps included: up to 2x the
    frame's), and a frame whose tiles' caches would not fit is refused."""
    budget = available_memory(model.device)
    if budget is None:
        return model.tiling
    budget = int(budget * _MEMORY_SHARE)
    if model.tiling is None and _chunk_bytes(model, height, width, chunk_frames) + _cache_bytes(model, height, width) <= budget:
        return None

    def need(tiling: Tiling) -> int:
        tile = min(tiling.tile, max(height, width))
        caches = _cache_bytes(model, tile, tile) if tile_by_tile else _cache_bytes_per_pixel(model) * tiling.covered_area(height, width)
        return int(_chunk_bytes(model, tile, tile, chunk_frames) + caches)

    tiling = model.tiling or _largest_tiling(model, need, budget, max(height, width))
    smallest = MIN_TILE_POSITIONS * model.config.spatial_factor
    reported = tiling or Tiling(smallest, default_overlap(smallest, model.config.spatial_factor))
    if tiling is None or need(tiling) > budget:
        raise InputError(
            f"a {height}x{width} (HxW) video needs about {need(reported) / 2**30:.1f} GiB even in tiles, more than the "
            f"{budget / 2**30:.1f} GiB available; downscale it with --max-side (e.g. --max-side 1280) or lower --chunk"
        )
    return tiling


def plan_decode_tiling(model: OneVAE, meta: TokenFileMeta, grids: Grids, chunk_latents: int, tile_by_tile: bool = False) -> Tiling | None:
    """:func:`plan_tiling` for decoding ``grids`` (their frame size, and the source size that ``meta`` says the
    frames are brought back to), before anything is allocated."""
    config = model.config
    sizes = []
    for name, shape in zip(meta.grid_names, (g.shape for g in grids.to_list())):
        h, w = (shape[2], shape[3]) if meta.kind == "tokens" else (shape[3], shape[4])
        factor = config.first_frame_spatial_factor if name == "first_frame" else config.spatial_factor
        sizes.append((h * factor, w * factor))
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    if meta.fit:  # frames are brought back to the source size after decoding
        out_h, out_w = undone_size(meta.fit)
        height, width = max(height, out_h), max(width, out_w)
    frames = 1 + (grids.num_frames - 1) * config.temporal_factor
    return plan_tiling(model, height, width, piece_frames(model, chunk_latents * config.temporal_factor, frames), tile_by_tile)


def plan_streaming(plan: Callable[[bool], Tiling | None], height: int, width: int) -> tuple[Tiling | None, bool]:
    """(tiling, tile_by_tile) for frames of (height, width): frame by frame, every tile keeping its caches, when
    ``plan(False)`` fits; else tile by tile (``plan(True)``: one tile's caches alive) if tiles are what is missing;
    else ``plan(False)``'s error (the frame is too large even for one tile)."""
    try:
        return plan(False), False
    except InputError as error:
        tiling = plan(True)
        if tiling is None or not tiling.applies(height, width):
            raise error from None
        return tiling, True


def _largest_tiling(model: OneVAE, need: Callable[[Tiling], int], budget: int, largest: int) -> Tiling | None:
    """The largest tile (a multiple of the spatial factor, at most ``largest``; overlap a quarter of it) whose
    ``need(tiling)`` fits."""
    sf = model.config.spatial_factor
    for side in range(largest // sf * sf, MIN_TILE_POSITIONS * sf - 1, -sf):
        if need(tiling := Tiling(side, default_overlap(side, sf))) <= budget:
            return tiling
    return None


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this process on ``device`` (``ONEVAE_AVAILABLE_MEMORY`` overrides it on the CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    override = os.environ.get("ONEVAE_AVAILABLE_MEMORY")
    if override:
        return int(override)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _windows(path: Path, model: OneVAE, info: VideoInfo, geometry: Geometry, options: FitOptions) -> Iterator[torch.Tensor]:
    chunk = options.chunk_latents * model.config.temporal_factor
    for window in iter_video_windows(path, chunk, fps=read_fps(info, options), max_frames=options.max_frames, geometry=geometry):
        yield window.unsqueeze(0).to(model.device, model.encode_dtype)  # (1, 3, t, H, W)


def _tile_reads(path: Path, model: OneVAE, info: VideoInfo, geometry: Geometry, options: FitOptions, bar: FrameProgress,
                tiles: int, name: str | None = None) -> Callable[[], Iterator[torch.Tensor]]:
    """``read`` for :meth:`TiledEncoder.encode_rereading` over a file (once per tile), counted on ``bar`` as a pass
    of ``tiles`` tiles (``name``: the pass's name): each frame once it has gone through the tile's encoder."""
    bar.start_pass(name, tiles)
    passes = itertools.count()

    def read() -> Iterator[torch.Tensor]:
        tile = next(passes)
        bar.advance(0, tile)
        for window in _windows(path, model, info, geometry, options):
            yield window
            bar.advance(window.shape[2], tile)

    return read


def _expected_frames(info: VideoInfo, options: FitOptions) -> int | None:
    frames = info.num_frames or None
    if options.fps and info.duration_s and not info.is_frame_sequence:
        frames = int(info.duration_s * options.fps)
    if options.max_frames is not None and frames is not None:
        frames = min(frames, options.max_frames)
    return frames


# ------------------------------------------------------------------------------------------------ encode
@torch.no_grad()
def encode_file(
    model: OneVAE, path: PathLike, options: FitOptions, kind: str = "tokens", fingerprint: str = "", progress: bool = False,
    latent_dtype: torch.dtype = torch.float16, normalize: bool = False,
) -> tuple[Grids, TokenFileMeta]:
    """A video file -> token (or latent) grids and the metadata to decode them back to a video.

    Only the grids of the whole video are kept in memory, in their stored type (int32 tokens, ``latent_dtype``
    latents), chunk by chunk as they are produced. ``normalize``: store latents as ``(z - mean) / std`` with the
    model's per-channel statistics (recorded in the metadata; :func:`decode_to_video` undoes it)."""
    path = Path(path)
    store = torch.int32 if kind == "tokens" else latent_dtype
    if kind == "tokens":
        model.require_discrete()
    if normalize and kind != "latents":
        raise InputError("only continuous latents can be stored normalised (tokens are indices)")
    stats = stats_tensors(model.config) if normalize else None
    info = probe_video(path, sequence_fps=options.fps)
    geometry = plan_geometry(model, info, options)
    chunk = options.chunk_latents * model.config.temporal_factor
    planned = piece_frames(model, chunk, _expected_frames(info, options))
    tiling = plan_tiling(model, geometry.height, geometry.width, planned, tile_by_tile=True)
    encoder = encoder_for(model, geometry.height, geometry.width, chunk, tiling=tiling)

    def stored(latents: Latents) -> Grids:  # latents checked finite before FSQ could turn a NaN into token 0
        check_finite(latents.to_list(), "latents", model)
        grids = model.latents_to_tokens(latents) if kind == "tokens" else latents
        if stats is not None:  # normalised in float32, before the (float16) storage rounds them
            grids = normalize_latents(grids.to(torch.float32), *stats)
        return grids.to("cpu", store)

    with FrameProgress(_expected_frames(info, options), f"encode {path.name}", progress) as bar:
        if isinstance(encoder, TiledEncoder):  # tile by tile, reading the file once per tile (one tile's caches alive)
            read = _tile_reads(path, model, info, geometry, options, bar, len(encoder.boxes))
            latents, frames, added = encoder.encode_rereading(read)
            grids = stored(latents) if frames else None
        else:
            grids, frames, added = _encode_frame_by_frame(encoder, _windows(path, model, info, geometry, options), stored, bar)
    if frames == 0:
        raise InputError(f"{path}: no frame could be read")
    meta = token_meta_for(
        model, kind, output_fps(info, options), fingerprint, source={"path": str(path), **_source_dict(info)},
        fit=geometry.to_dict(), frames=frames, padded_frames=added,
        latent_normalization=None if stats is None else {"mean": stats[0].tolist(), "std": stats[1].tolist()},
    )
    return grids, meta


def latent_stats_of_files(
    model: OneVAE, videos: list[PathLike], options: FitOptions, progress: bool = False,
    on_file: Callable[[Path, TokenFileMeta, Grids], None] | None = None,
) -> LatentStatsAccumulator:
    """Per-channel statistics of ``model``'s continuous latents over video files, read and encoded one at a time
    as :func:`encode_file` does (``onevae stats``); ``on_file`` is told of each file once it is counted."""
    accumulator = LatentStatsAccumulator()
    for video in videos:
        latents, meta = encode_file(model, video, options, kind="latents", progress=progress, latent_dtype=torch.float32)
        accumulator.update(latents)
        if on_file is not None:
            on_file(video, meta, latents)
    return accumulator


def _encode_frame_by_frame(encoder: StreamingEncoder, windows: Iterator[torch.Tensor], stored: Callable[[Latents], Grids],
                           bar: FrameProgress) -> tuple[Grids | None, int, int]:
    """Stream windows through the encoder, keeping only the stored grids; (grids, frames read, frames added)."""
    parts: list[Grids] = []
    frames = 0
    for window in windows:
        piece = encoder.push(window)
        if piece is not None:
            parts.append(stored(piece))
        frames += window.shape[2]
        bar.advance(window.shape[2])
    if frames == 0:
        return None, 0, 0
    tail, added = encoder.finish()
    if tail is not None:
        parts.append(stored(tail))
    return type(parts[0]).cat(parts), frames, added


def _source_dict(info: VideoInfo) -> dict[str, Any]:
    return {"width": info.width, "height": info.height, "num_frames": info.num_frames, "fps": info.fps, "codec": info.codec,
            "sample_aspect_ratio": aspect_text(info.sample_aspect_ratio)}


def write_encoded(path: PathLike, grids: Grids, meta: TokenFileMeta) -> None:
    save_token_file(Path(path), grids.to_list(), meta)


# ------------------------------------------------------------------------------------------------ decode
class FrameSink:
    """Crops decoded chunks back to the source geometry, drops padded frames at the end, writes or collects."""

    def __init__(self, geometry: Geometry | None, keep_frames: int, writer: Writer | None) -> None:
        self.geometry, self.remaining, self.writer = geometry, keep_frames, writer

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames[0, :, : max(self.remaining, 0)].float().clamp(-1, 1).cpu()  # (3, t, H, W)
        self.remaining -= frames.shape[1]
        if self.geometry is not None and frames.shape[1]:
            frames = self.geometry.undo(frames)
        if self.writer is not None and frames.shape[1]:
            self.writer.write(frames)
        return frames


@torch.no_grad()
def decode_to_video(model: OneVAE, grids: Grids | list[torch.Tensor], meta: TokenFileMeta, out: PathLike, size_mode_undo: bool = True,
                    progress: bool = False, chunk_latents: int = 2, fingerprint: str | None = None, lossless: bool = False) -> int:
    """Decode grids to a video at the recorded fps (H.264; FFV1 when ``lossless``; images for an image name or a
    frame pattern: :func:`onevae.io.writer.open_writer`), tagged with the source's sample aspect ratio (of the
    fitted frames when ``size_mode_undo`` is off); returns the number of frames written. Grids whose metadata
    names another model (``meta.model_fingerprint``, when recorded) are refused: ``fingerprint`` is the model's,
    computed when not given."""
    out = Path(out)
    if meta.model_fingerprint:
        from .model_dir import model_fingerprint

        check_same_model(meta, model, fingerprint or model_fingerprint(model), meta.source.get("path") or "these grids")
    if not isinstance(grids, Grids):  # the list form, as a token file stores it
        grids = model.as_tokens(grids) if meta.kind == "tokens" else model.as_latents(grids)
    fit = Geometry.from_dict(meta.fit) if meta.fit else None
    geometry = fit if size_mode_undo else None
    sar = source_sample_aspect(meta.source)
    if fit is not None and not size_mode_undo:  # the fitted frames: a resize may have stretched the samples
        sar = fit.fitted_sample_aspect(sar)
    if meta.latent_normalization:  # stored as (z - mean) / std: back to the raw latents the decoder takes
        norm = meta.latent_normalization
        grids = denormalize_latents(grids.to(torch.float32), torch.tensor(norm["mean"]), torch.tensor(norm["std"]))
    sf = model.config.spatial_factor
    h, w = grids.spatial_size
    # tile by tile, the frames blended into a canvas on disk, when every tile's caches at once would not fit
    tiling, tile_by_tile = plan_streaming(lambda tbt: plan_decode_tiling(model, meta, grids, chunk_latents, tbt), h * sf, w * sf)
    decoder = decoder_for(model, h * sf, w * sf, tiling=tiling)
    written = 0
    with (open_writer(out, fps=meta.fps, sample_aspect_ratio=sar, lossless=lossless, frames=meta.frames) as writer,
          FrameProgress(meta.frames, f"decode {out.name}", progress) as bar,
          contextlib.ExitStack() as stack):
        sink = FrameSink(geometry, meta.frames, writer)
        if tile_by_tile:  # a pass decoding the tiles into the canvas, then one writing its frames
            canvas = stack.enter_context(_decoded_canvas(decoder, grids, chunk_latents, out, bar, meta.frames))
            bar.start_pass("write")
            pieces = _canvas_chunks(canvas, chunk_latents * model.config.temporal_factor)
        else:
            pieces = (decoder.push(piece) for piece in grids.chunks(chunk_latents))
        for frames in pieces:
            n = sink.push(check_finite(frames, "frames", model)).shape[1]
            written += n
            bar.advance(n)
    return written


@contextlib.contextmanager
def _decoded_canvas(decoder: TiledDecoder, grids: Grids, chunk_latents: int, out: Path, bar: FrameProgress | None = None,
                    frames: int | None = None, name: str | None = None) -> Iterator[torch.Tensor]:
    """Decode tile by tile (one tile's caches alive) into a float32 canvas memory-mapped from a temporary file
    beside ``out``: the decoded (B, 3, T, H, W) frames, the file removed on leaving, whatever happens. ``bar``:
    counts a pass (``name``) of the tiles over the first ``frames`` frames (the video's; the rest pad the last
    latent frame)."""
    shape = decoder.output_shape(grids)
    need = int(np.prod(shape)) * 4
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise InputError(f"decoding this {shape[4]}x{shape[3]} video tile by tile needs {need / 2**30:.1f} GiB of disk beside "
                         f"{out} ({free / 2**30:.1f} GiB free); write the output elsewhere or downscale it")
    keep = shape[2] if frames is None else frames

    def on_piece(tile: int, start: int, n: int) -> None:
        bar.advance(max(0, min(start + n, keep) - start), tile)

    if bar is not None:
        bar.start_pass(name, len(decoder.boxes))
    path = out.with_name(f".{out.name}.canvas")
    try:
        canvas = np.memmap(path, dtype=np.float32, mode="w+", shape=shape)  # zeros
        yield decoder.decode(grids, chunk_latents, canvas=torch.from_numpy(canvas), on_piece=on_piece if bar else None)
        del canvas
    finally:
        path.unlink(missing_ok=True)


def _canvas_chunks(frames: torch.Tensor, step: int) -> Iterator[torch.Tensor]:
    """(B, 3, T, H, W) frames (a canvas on disk) copied into memory ``step`` frames at a time."""
    for start in range(0, frames.shape[2], step):
        yield frames[:, :, start : start + step].clone()


def load_encoded_for(model: OneVAE, path: PathLike, fingerprint: str) -> tuple[Grids, TokenFileMeta]:
    path = Path(path)
    grids, meta = load_token_file(path)
    check_same_model(meta, model, fingerprint, str(path))
    if grids[0].shape[0] != 1:
        raise InputError(f"{path} holds a batch of {grids[0].shape[0]} clips; decode writes one video per file")
    if meta.kind == "tokens":
        return model.as_tokens(grids), meta
    return model.as_latents(grids), meta


# ------------------------------------------------------------------------------------------------ reconstruct
@dataclass
class Reconstruction:
    fps: float
    frames: int
    per_frame: dict[str, dict[str, list[float]]]  # path -> metric -> values
    geometry: Geometry
    info: VideoInfo

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            path: {
                "psnr": float(np.mean(m["psnr"])), "ssim": float(np.mean(m["ssim"])),
                "psnr_min": float(np.min(m["psnr"])), "psnr_first_frame": float(m["psnr"][0]),
            }
            for path, m in self.per_frame.items()
        }


@torch.no_grad()
def reconstruct_file(
    model: OneVAE,
    path: PathLike,
    options: FitOptions,
    out: PathLike | None,
    side_by_side: bool = False,
    output_path: str = "tokens",
    progress: bool = False,
    on_frames: Callable[[torch.Tensor, dict[str, torch.Tensor]], None] | None = None,
    lossless: bool = False,
) -> Reconstruction:
    """Encode and decode a file through tokens and through latents; PSNR/SSIM per frame against the fitted
    input; optionally write ``out`` (one path, or input | tokens | latents side by side), at the source's scale
    (``geometry.undo``), so tagged with its sample aspect ratio: a video (FFV1 when ``lossless``), an image or a
    frame pattern (:func:`onevae.io.writer.open_writer`).

    Frame by frame with causal caches (one pass over the file) when every tile's caches fit in memory; else tile
    by tile (one tile's caches alive: the file is read once per tile, then the decoded frames wait in a canvas
    on disk beside ``out`` while the file is read a last time to compare)."""
    from .eval.metrics import psnr_per_frame, ssim_per_frame  # torchmetrics: heavy, and only reconstruct needs it

    path, out = Path(path), (Path(out) if out is not None else None)
    info = probe_video(path, sequence_fps=options.fps)
    if out is not None:  # open_writer checks it again below; here before the planning and the progress bar start
        check_output(out, lossless=lossless, frames=_expected_frames(info, options))
    geometry = plan_geometry(model, info, options)
    paths = ["tokens", "latents"] if model.config.discrete else ["latents"]
    if output_path not in paths:
        raise InputError(f"this model has no {output_path} path (it is continuous only)")
    chunk = options.chunk_latents * model.config.temporal_factor
    h, w = geometry.height, geometry.width
    planned = piece_frames(model, chunk, _expected_frames(info, options))
    tiling, tile_by_tile = plan_streaming(lambda tbt: plan_tiling(model, h, w, planned, tbt), h, w)
    bar = FrameProgress(_expected_frames(info, options), f"reconstruct {path.name}", progress)
    if tile_by_tile:
        canvas_beside = out if out is not None else Path(tempfile.gettempdir()) / f"onevae-reconstruct-{os.getpid()}"
        pairs = _reconstructed_tile_by_tile(model, path, info, geometry, options, tiling, paths, canvas_beside, bar)
    else:
        pairs = _reconstructed_frame_by_frame(model, path, info, geometry, options, tiling, paths)
    per_frame = {p: {"psnr": [], "ssim": []} for p in paths}
    fps = output_fps(info, options)
    writer = None
    frames_total = 0
    try:
        if out is not None:
            writer = open_writer(out, fps=fps, sample_aspect_ratio=info.sample_aspect_ratio, lossless=lossless,
                                 frames=_expected_frames(info, options))
        for inputs, recons in pairs:  # (3, n, H, W) and path -> (3, n, H, W)
            for p in paths:
                per_frame[p]["psnr"] += psnr_per_frame(inputs, recons[p]).tolist()
                per_frame[p]["ssim"] += ssim_per_frame(inputs, recons[p]).tolist()
            if writer is not None:
                writer.write(_compose(inputs, recons, paths, output_path, side_by_side, geometry))
            if on_frames is not None:
                on_frames(inputs, recons)
            frames_total += inputs.shape[1]
            bar.advance(inputs.shape[1])
        if frames_total == 0:
            raise InputError(f"{path}: no frame could be read")
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        pairs.close()  # a tile-by-tile canvas is removed whatever happened
        bar.close()
    return Reconstruction(fps, frames_total, per_frame, geometry, info)


Pairs = Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]  # (input frames, path -> reconstructed frames)


def _reconstructed_frame_by_frame(
    model: OneVAE, path: Path, info: VideoInfo, geometry: Geometry, options: FitOptions, tiling: Tiling | None, paths: list[str],
) -> Pairs:
    """One pass over the file: each chunk is encoded, decoded through every path and paired with its input."""
    chunk = options.chunk_latents * model.config.temporal_factor
    encoder = encoder_for(model, geometry.height, geometry.width, chunk, tiling=tiling)
    decoders = {p: decoder_for(model, geometry.height, geometry.width, tiling=tiling) for p in paths}
    pending: deque[torch.Tensor] = deque()  # input frames (3, H, W) waiting for their reconstruction

    def paired(latents: Latents | None) -> Pairs:
        if latents is None:  # nothing completed in this piece
            return
        check_finite(latents.to_list(), "latents", model)
        recons = {p: check_finite(_decode_chunk(model, decoders[p], latents, p), "frames", model) for p in paths}
        inputs = torch.stack([pending.popleft() for _ in range(min(recons[paths[0]].shape[2], len(pending)))], dim=1)
        yield inputs, {p: recons[p][0, :, : inputs.shape[1]].float().clamp(-1, 1).cpu() for p in paths}

    for window in _windows(path, model, info, geometry, options):
        pending.extend(window[0].float().cpu().unbind(1))
        yield from paired(encoder.push(window))
    if pending:
        tail, _ = encoder.finish()
        yield from paired(tail)


def _reconstructed_tile_by_tile(
    model: OneVAE, path: Path, info: VideoInfo, geometry: Geometry, options: FitOptions, tiling: Tiling, paths: list[str],
    canvas_beside: Path, bar: FrameProgress,
) -> Pairs:
    """Encode tile by tile (the file read once per tile), decode each path tile by tile into a canvas on disk,
    then read the file once more and pair its frames with the canvases'. Each is a pass counted on ``bar``:
    ``encode``, ``decode tokens``, ``decode latents``, then ``compare`` (the pairs, counted by the caller)."""
    h, w, step = geometry.height, geometry.width, options.chunk_latents * model.config.temporal_factor
    encoder = encoder_for(model, h, w, step, tiling=tiling)
    latents, frames, _ = encoder.encode_rereading(_tile_reads(path, model, info, geometry, options, bar, len(encoder.boxes), "encode"))
    if not frames:
        return
    check_finite(latents.to_list(), "latents", model)
    with contextlib.ExitStack() as stack:
        recons = {}
        for p in paths:
            grids = model.latents_to_tokens(latents) if p == "tokens" else latents
            canvas = stack.enter_context(_decoded_canvas(decoder_for(model, h, w, tiling=tiling), grids, options.chunk_latents,
                                                         canvas_beside.with_name(f"{canvas_beside.name}.{p}"), bar, frames, f"decode {p}"))
            recons[p] = _frames_of(check_finite(f, "frames", model)[0].float().clamp(-1, 1).cpu() for f in _canvas_chunks(canvas, step))
        bar.start_pass("compare")
        source = _frames_of(window[0].float().cpu() for window in _windows(path, model, info, geometry, options))
        while inputs := list(itertools.islice(source, step)):
            yield torch.stack(inputs, dim=1), {p: torch.stack(list(itertools.islice(recons[p], len(inputs))), dim=1) for p in paths}


def _frames_of(chunks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    """(3, t, H, W) chunks -> (3, H, W) frames."""
    for chunk in chunks:
        yield from chunk.unbind(1)


def _decode_chunk(model: OneVAE, decoder, latents: Latents, path: str) -> torch.Tensor:
    return decoder.push(model.latents_to_tokens(latents) if path == "tokens" else latents)


def _compose(inputs: torch.Tensor, recons: dict[str, torch.Tensor], paths: list[str], output_path: str, side_by_side: bool, geometry: Geometry) -> torch.Tensor:
    """The frames to write: one path, or input | tokens | latents; each brought back by ``geometry.undo`` as
    :func:`decode_to_video` does (padding removed, downscale and resize undone; a crop stays cropped)."""
    panels = [inputs] + [recons[p] for p in paths] if side_by_side else [recons[output_path]]
    return torch.cat([geometry.undo(panel) for panel in panels], dim=-1)
