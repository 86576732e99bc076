"""``onevae eval``: a tokenizer on held-out clips at native resolution, against simple baselines.

Per clip: PSNR/SSIM of the tokens and the latents path; bicubic x4 and x8 (antialiased bicubic down, bicubic
up); x264 ``veryslow`` at the clip's token bit budget (the bits of the tokens of the padded clip,
``tokens x log2(vocabulary)``; the highest-quality CRF whose stream fits the budget); colour fidelity
(:func:`colour_fidelity`); a side-by-side PNG of the middle frame (input | tokens | latents | bicubic x4 | x264).
Results go to ``results.json`` and ``results.md`` in the output folder, and the table is printed.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, InputRangeWarning
from ..io.atomic import atomic_path
from ..io.frame_files import is_frame_sequence, sequence_name
from ..io.image_writer import write_image
from ..io.video import tensor_to_frames
from .heldout import DEFAULT_OPENCV_DIR, HELD_OUT, check_available, load, read_frames, select
from .metrics import clip_metrics

SATURATED = 0.5  # HSV saturation of the reference at or above which a pixel counts as saturated
BRIGHT = 0.25  # ... and value at or above which (hue is meaningless in the dark)
X264_PRESET = "veryslow"
PANELS = ("input", "tokens", "latents", "bicubic_x4", "x264")


# ------------------------------------------------------------------------------------------------ colour
def rgb_to_hsv(video: torch.Tensor) -> torch.Tensor:
    """(3, ...) RGB in [0, 1] -> (3, ...) HSV, hue in degrees [0, 360), saturation and value in [0, 1]."""
    r, g, b = video.unbind(0)
    value, _ = video.max(dim=0)
    low, _ = video.min(dim=0)
    delta = value - low
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue * 60.0, torch.zeros_like(hue))
    saturation = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), torch.zeros_like(value))
    return torch.stack([hue, saturation, value])


def frame_mean_colours(video: torch.Tensor) -> torch.Tensor:
    """(3, T) mean colour of each frame of a (3, T, H, W) clip in [-1, 1], in 8-bit units (0-255), clamped first."""
    return (video.float().clamp(-1, 1) + 1).mean(dim=(2, 3)) * 127.5


def colour_fidelity(ref: torch.Tensor, rec: torch.Tensor) -> dict[str, Any]:
    """Colour errors of ``rec`` against ``ref`` ((3, T, H, W) in [-1, 1]), in 8-bit units (x/255) and degrees.

    ``mean_colour_error``: per channel (R, G, B), the mean over frames of |mean colour of the reference frame -
    mean colour of the reconstructed frame|, and ``mean_colour_error_mean`` their average.
    ``hue_error_deg``: mean circular hue difference over the reference's saturated pixels (saturation >= 0.5,
    value >= 0.25; None when there are none), ``saturation_ratio``: mean reconstructed / reference saturation
    there (< 1: washed out), ``saturated_share``: the share of such pixels.
    """
    a, b = (ref.float().clamp(-1, 1) + 1) / 2, (rec.float().clamp(-1, 1) + 1) / 2  # (3, T, H, W) in [0, 1]
    per_frame = (frame_mean_colours(ref) - frame_mean_colours(rec)).abs()  # (3, T)
    channel = per_frame.mean(dim=1)  # (3,)
    hsv_a, hsv_b = rgb_to_hsv(a), rgb_to_hsv(b)
    mask = (hsv_a[1] >= SATURATED) & (hsv_a[2] >= BRIGHT)
    out: dict[str, Any] = {
        "mean_colour_error": [round(float(c), 3) for c in channel],
        "mean_colour_error_mean": float(channel.mean()),
        "saturated_share": float(mask.float().mean()),
        "hue_error_deg": None,
        "saturation_ratio": None,
    }
    if mask.any():
        diff = (hsv_a[0][mask] - hsv_b[0][mask]).abs()
        out["hue_error_deg"] = float(torch.minimum(diff, 360 - diff).mean())
        out["saturation_ratio"] = float(hsv_b[1][mask].mean() / hsv_a[1][mask].mean())
    return out


# ------------------------------------------------------------------------------------------------ baselines
def bicubic(video: torch.Tensor, factor: int) -> torch.Tensor:
    """(3, T, H, W) downscaled by ``factor`` (antialiased bicubic) and scaled back up (bicubic), clamped."""
    _, t, h, w = video.shape
    frames = video.transpose(0, 1)  # (T, 3, H, W)
    small = F.interpolate(frames, size=(max(1, math.ceil(h / factor)), max(1, math.ceil(w / factor))), mode="bicubic", antialias=True, align_corners=False)
    back = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    return back.transpose(0, 1).clamp(-1, 1)


def _x264_round_trip(frames: np.ndarray, fps: float, crf: int) -> tuple[np.ndarray, int]:
    """Encode uint8 (T, H, W, 3) (even H, W) with libx264 at ``crf`` and decode: (frames, stream bits)."""
    import av

    t, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = w, h, "yuv420p"
    encoder.time_base, encoder.framerate = 1 / rate, rate
    encoder.options = {"crf": str(crf), "preset": X264_PRESET, "threads": "1"}
    packets = []
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    bits = 8 * sum(p.size for p in packets)
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for packet in packets:
        decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    return np.stack(decoded), bits


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad (T, H, W, 3) to even H and W (edge replicated): yuv420p needs them."""
    return np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")


def x264_at_crf(video: torch.Tensor, fps: float, crf: int) -> torch.Tensor:
    """(3, T, H, W) through x264 (veryslow) at ``crf`` and back."""
    from ..io.video import frames_to_tensor

    _, t, h, w = video.shape
    decoded, _ = _x264_round_trip(_even(tensor_to_frames(video)), fps, crf)
    return frames_to_tensor(np.ascontiguousarray(decoded[:t, :h, :w]))


def x264_at_budget(video: torch.Tensor, fps: float, budget_bits: float) -> tuple[torch.Tensor, dict[str, Any]]:
    """x264 (veryslow) at the lowest CRF whose stream fits ``budget_bits``: ((3, T, H, W), {crf, bits})."""
    from ..io.video import frames_to_tensor

    frames = tensor_to_frames(video)  # (T, H, W, 3) uint8
    t, h, w, _ = frames.shape
    frames = _even(frames)
    low, high, best = 0, 51, None  # bits fall as the CRF rises: the smallest CRF within the budget
    while low <= high:
        crf = (low + high) // 2
        decoded, bits = _x264_round_trip(frames, fps, crf)
        if bits <= budget_bits:
            best, high = (crf, decoded, bits), crf - 1
        else:
            low = crf + 1
    if best is None:  # not even CRF 51 fits: report it at 51, over the budget
        decoded, bits = _x264_round_trip(frames, fps, 51)
        best = (51, decoded, bits)
    crf, decoded, bits = best
    rec = frames_to_tensor(np.ascontiguousarray(decoded[:t, :h, :w]))
    return rec, {"crf": crf, "bits": bits, "over_budget": bits > budget_bits}


# ------------------------------------------------------------------------------------------------ model
@torch.no_grad()
def model_reconstructions(model, video: torch.Tensor, chunk_frames: int = 8) -> dict[str, torch.Tensor]:
    """Tokens and latents reconstructions of a (3, T, H, W) clip, streamed (bounded memory), padded and cropped
    back: ``{"tokens": (3, T, H, W), "latents": ...}`` (tokens only for a discrete model). The clip is one this
    module made from frames (in [-1, 1] by construction), so a bright or flat one raises no InputRangeWarning."""
    x = video[None].to(model.device, model.dtype)  # (1, 3, T, H, W)
    with warnings.catch_warnings():  # both pad_video and encode_latents check the range
        warnings.simplefilter("ignore", InputRangeWarning)
        padded, padding = model.pad_video(x)
        latents = model.encode_latents(padded, mode="stream", chunk_frames=chunk_frames)
    out = {"latents": model.decode_latents(latents, mode="stream", chunk_latents=2)}
    if model.config.discrete:
        out["tokens"] = model.decode_tokens(model.latents_to_tokens(latents), mode="stream", chunk_latents=2)
    return {k: padding.crop(v).float().clamp(-1, 1)[0].cpu() for k, v in out.items()}


def token_budget_bits(model, video: torch.Tensor) -> float:
    """Bits of the tokens of a (3, T, H, W) clip after padding: tokens x log2(vocabulary size)."""
    _, t, h, w = video.shape
    tf, sf = model.config.temporal_factor, model.config.spatial_factor
    t, h, w = t + (-(t - 1)) % tf, h + (-h) % sf, w + (-w) % sf
    return model.config.tokens_per_clip(t, h, w) * math.log2(model.config.vocab_size)


# ------------------------------------------------------------------------------------------------ clips
@dataclass
class EvalClip:
    name: str
    video: torch.Tensor  # (3, T, H, W) in [-1, 1]
    fps: float
    kind: str = ""

    def key(self) -> str:
        """Identifies the pixels (for the baseline cache)."""
        digest = hashlib.sha1(tensor_to_frames(self.video).tobytes()).hexdigest()[:16]
        return f"{self.name}:{tuple(self.video.shape)}:{digest}"


def resolve_clips(names: list[str], opencv_dir: str | Path = DEFAULT_OPENCV_DIR, max_frames: int | None = None) -> list[EvalClip]:
    """Held-out clip names (all of them by default), video files or frame patterns, optionally cut to ``max_frames``."""
    held = {clip.name for clip in HELD_OUT}
    names = names or [clip.name for clip in HELD_OUT]
    check_available([clip for clip in HELD_OUT if clip.name in names], opencv_dir)  # all missing files at once, before any is read
    clips = []
    for name in names:
        if name in held:
            spec = select([name])[0]
            video, fps = load(spec, opencv_dir)
            clips.append(EvalClip(spec.name, video, fps, spec.kind))
        elif Path(name).is_file() or is_frame_sequence(name):  # a file, or numbered frames (frames/%05d.png, 25 fps)
            video, fps = read_frames(name, 0, max_frames, exact=False)
            clip_name = sequence_name(name) if is_frame_sequence(name) else Path(name).name.split(".")[0]
            clips.append(EvalClip(clip_name, video, fps, "file"))
        else:
            raise InputError(f"{name}: neither a held-out clip ({', '.join(sorted(held))}) nor a video file (nor "
                             "numbered frames, frames/%05d.png)")
    if max_frames is not None:
        for clip in clips:
            clip.video = clip.video[:, :max_frames]
    return clips


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class EvalOptions:
    x264: bool = True
    png: bool = True
    chunk_frames: int = 8


@dataclass
class ClipResult:
    name: str
    kind: str
    size: str  # "T x H x W"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> {psnr, ssim}
    colour: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> colour_fidelity
    x264: dict[str, Any] | None = None
    token_bits: float = 0.0
    per_frame: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # model path -> {psnr, ssim} per frame


def _summary(ref: torch.Tensor, rec: torch.Tensor) -> dict[str, float]:
    m = clip_metrics(ref, rec)
    return {"psnr": m["psnr"], "ssim": m["ssim"]}


def evaluate_clip(model, clip: EvalClip, options: EvalOptions, cache: dict[str, Any], png_path: Path | None) -> ClipResult:
    """All methods on one clip; baselines come from ``cache`` when it holds this clip at this budget."""
    ref = clip.video
    t, h, w = ref.shape[1:]
    budget = token_budget_bits(model, ref)
    result = ClipResult(clip.name, clip.kind, f"{t}x{h}x{w}", token_bits=budget)
    recs = model_reconstructions(model, ref, options.chunk_frames)
    key = f"{clip.key()}:{budget:.0f}:{options.x264}"
    cached = cache.get(key)
    baselines = {f"bicubic_x{f}": bicubic(ref, f) for f in (4, 8)}
    x264_rec = None
    if options.x264 and cached is None:
        x264_rec, result.x264 = x264_at_budget(ref, clip.fps, budget)
    elif options.x264 and options.png and cached.get("x264"):  # one encode at the cached CRF, for the picture
        x264_rec = x264_at_crf(ref, clip.fps, cached["x264"]["crf"])
    for name, rec in recs.items():
        m = clip_metrics(ref, rec)
        result.metrics[name] = {"psnr": m["psnr"], "ssim": m["ssim"]}
        result.per_frame[name] = {"psnr": m["psnr_per_frame"], "ssim": m["ssim_per_frame"]}
        result.colour[name] = colour_fidelity(ref, rec)
    if cached is not None:
        result.metrics.update(cached["metrics"])
        result.colour.update(cached["colour"])
        result.x264 = cached["x264"]
    else:
        for name, rec in baselines.items():
            result.metrics[name] = _summary(ref, rec)
            result.colour[name] = colour_fidelity(ref, rec)
        if x264_rec is not None:
            result.metrics["x264"] = _summary(ref, x264_rec)
            result.colour["x264"] = colour_fidelity(ref, x264_rec)
        baseline_names = [n for n in result.metrics if n not in recs]
        cache[key] = {"metrics": {n: result.metrics[n] for n in baseline_names},
                      "colour": {n: result.colour[n] for n in baseline_names}, "x264": result.x264}
    if png_path is not None:
        panels = {"input": ref, **{k: recs[k] for k in ("tokens", "latents") if k in recs}, "bicubic_x4": baselines["bicubic_x4"]}
        if x264_rec is not None:
            panels["x264"] = x264_rec
        write_side_by_side(png_path, panels, t // 2)
    return result


def write_side_by_side(path: Path, panels: dict[str, torch.Tensor], frame: int) -> None:
    """One frame of every panel side by side, each labelled, as a PNG."""
    from PIL import Image, ImageDraw

    images = [tensor_to_frames(video[:, frame : frame + 1])[0] for video in panels.values()]
    h, w = images[0].shape[:2]
    label = 14
    canvas = Image.new("RGB", (w * len(images), h + label), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, (name, image) in enumerate(zip(panels, images)):
        canvas.paste(Image.fromarray(image), (index * w, label))
        draw.text((index * w + 3, 1), name, fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.asarray(canvas))


METHOD_ORDER = ("tokens", "latents", "bicubic_x4", "bicubic_x8", "x264")


def results_table(results: list[ClipResult]) -> str:
    """Markdown: one row per clip, PSNR / SSIM per method, then the colour errors of the tokens path."""
    methods = [m for m in METHOD_ORDER if any(m in r.metrics for r in results)]
    head = "| clip | size (TxHxW) | " + " | ".join(f"{m} PSNR / SSIM" for m in methods) + " | tokens colour err (R,G,B /255) | tokens hue err (deg) / sat. ratio |"
    lines = [head, "|" + "---|" * (len(methods) + 4)]
    for r in results:
        cells = [f"{r.metrics[m]['psnr']:.2f} / {r.metrics[m]['ssim']:.3f}" if m in r.metrics else "-" for m in methods]
        if r.x264 and r.x264["over_budget"] and "x264" in methods:  # even CRF 51 needed more bits than the tokens
            cells[methods.index("x264")] += " (over budget)"
        col = r.colour.get("tokens") or r.colour.get("latents")
        hue = "-" if col["hue_error_deg"] is None else f"{col['hue_error_deg']:.1f} / {col['saturation_ratio']:.2f}"
        lines.append(f"| {r.name} | {r.size} | " + " | ".join(cells) + f" | {', '.join(f'{c:.1f}' for c in col['mean_colour_error'])} | {hue} |")
    if len(results) > 1:
        means = [f"{np.mean([r.metrics[m]['psnr'] for r in results if m in r.metrics]):.2f} / "
                 f"{np.mean([r.metrics[m]['ssim'] for r in results if m in r.metrics]):.3f}" for m in methods]
        err = np.mean([np.mean((r.colour.get('tokens') or r.colour['latents'])['mean_colour_error']) for r in results])
        lines.append("| **mean** | | " + " | ".join(means) + f" | {err:.2f} (mean) | |")
    return "\n".join(lines)


def evaluate(model, clips: list[EvalClip], out: Path | None, options: EvalOptions | None = None,
             baseline_cache: Path | None = None, log: Callable[[str], None] = print) -> list[ClipResult]:
    """Evaluate every clip; write ``results.json``, ``results.md`` and ``side_by_side/CLIP.png`` under ``out``."""
    options = options or EvalOptions()
    cache: dict[str, Any] = {}
    cache_file = baseline_cache or (out / "baselines.json" if out is not None else None)
    if cache_file is not None and cache_file.is_file():
        cache = json.loads(cache_file.read_text())
    results = []
    for clip in clips:
        png = out / "side_by_side" / f"{clip.name}.png" if (out is not None and options.png) else None
        result = evaluate_clip(model, clip, options, cache, png)
        results.append(result)
        if cache_file is not None:  # after every clip, so that an interrupted run keeps what it computed
            write_json(cache_file, cache)
        tokens = result.metrics.get("tokens", result.metrics["latents"])
        log(f"{clip.name}: tokens {tokens['psnr']:.2f} dB, bicubic x4 {result.metrics['bicubic_x4']['psnr']:.2f} dB"
            + (f", x264 {result.metrics['x264']['psnr']:.2f} dB" if "x264" in result.metrics else ""))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        payload = {"model": getattr(model.config, "name", ""), "results": [r.__dict__ for r in results]}
        write_json(out / "results.json", payload)
        with atomic_path(out / "results.md") as tmp:
            tmp.write_text(results_table(results) + "\n")
    return results


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
