"""What the command line prints and writes: the metrics table, the reconstruction report, ``info``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import OneVAEError
from ..padding import padding_for


def print_table(video: Path, model, result) -> None:
    summary = result.summary()
    g = result.geometry
    print(f"{video.name}: {result.frames} frames at {result.fps:g} fps, encoded at {g.height}x{g.width} (HxW, {g.mode}), model {model.config.name}")
    print(f"{'path':<10} {'PSNR (dB)':>10} {'SSIM':>8} {'min PSNR':>10} {'frame 0 PSNR':>13}")
    for path, m in summary.items():
        print(f"{path:<10} {m['psnr']:>10.2f} {m['ssim']:>8.4f} {m['psnr_min']:>10.2f} {m['psnr_first_frame']:>13.2f}")


def write_report(directory: Path, video: Path, model, result) -> None:
    """metrics.json (summary + per frame), metrics.csv (one row per frame), psnr.png (PSNR per frame)."""
    from ..io.atomic import atomic_path

    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "video": str(video), "model": model.config.name, "frames": result.frames, "fps": result.fps,
        "geometry": result.geometry.to_dict(), "summary": result.summary(), "per_frame": result.per_frame,
    }
    with atomic_path(directory / "metrics.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    paths = list(result.per_frame)
    with atomic_path(directory / "metrics.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame"] + [f"{metric}_{p}" for p in paths for metric in ("psnr", "ssim")])
        for i in range(result.frames):
            writer.writerow([i] + [f"{result.per_frame[p][metric][i]:.4f}" for p in paths for metric in ("psnr", "ssim")])
    _plot_psnr(directory / "psnr.png", video, model, result)


def _plot_psnr(path: Path, video: Path, model, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    for name, metrics in result.per_frame.items():
        mean = sum(metrics["psnr"]) / len(metrics["psnr"])
        ax.plot(metrics["psnr"], label=f"{name} (mean {mean:.2f} dB)", linewidth=1.4)
    tf = model.config.temporal_factor
    for boundary in range(1, result.frames, tf):
        ax.axvline(boundary - 0.5, color="0.85", linewidth=0.6, zorder=0)
    ax.set_xlabel(f"frame (grey lines: latent-frame boundaries, every {tf} frames after frame 0)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{video.name} - {model.config.name}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _parse_size(size: str) -> tuple[int, int, int]:
    try:
        t, h, w = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise OneVAEError(f"--size must look like 17x256x256 (frames x height x width), got {size!r}") from None
    return t, h, w


def _check_clip_size(config, t: int, h: int, w: int) -> None:
    """Refuse a ``--size`` the model does not take as it is (its token counts would be those of another clip),
    saying what ``onevae encode`` makes of it."""
    tf, sf = config.temporal_factor, config.spatial_factor
    if min(t, h, w) < 1:
        raise OneVAEError(f"--size values must be >= 1, got {t}x{h}x{w}")
    problems = []
    padding = padding_for(t, h, w, tf, sf)  # the rule onevae encode pads by
    if padding.frames:
        problems.append(f"{t} frames is not 1 + k*{tf} (onevae encode pads it to {t + padding.frames} frames, repeating the last one)")
    if padding.height or padding.width:
        problems.append(f"{h}x{w} (HxW) is not a multiple of {sf} (onevae encode fits it by --crop, the default, --pad or --resize)")
    if problems:
        raise OneVAEError(f"--size {t}x{h}x{w}: {'; '.join(problems)}; give the size {config.name} encodes")


def describe_model(model, size: str, fps: float) -> dict[str, Any]:
    from ..model_dir import model_fingerprint

    c = model.config
    t, h, w = _parse_size(size)
    _check_clip_size(c, t, h, w)
    info: dict[str, Any] = {
        "name": c.name,
        "source": str(model.source_dir or "preset (random weights)"),
        "parameters": f"{model.num_parameters() / 1e6:.2f} M",
        "compression (T x H x W)": f"{c.temporal_factor} x {c.spatial_factor} x {c.spatial_factor}",
        "first frame high-res": c.first_frame_highres,
        "latent channels (z_dim)": c.z_dim,
        "representations": "continuous latents + discrete tokens" if c.discrete else "continuous latents only",
        "valid clip lengths": f"1 + k*{c.temporal_factor}",
        "config": c.to_dict(),
    }
    if c.discrete:
        tokens = c.tokens_per_clip(t, h, w)
        latent_frames_per_s = fps / c.temporal_factor
        per_frame_grid = (h // c.spatial_factor) * (w // c.spatial_factor) * c.num_codebooks
        info.update({
            "FSQ levels": c.fsq_levels,
            "tokens per position": c.num_codebooks,
            "vocabulary (per token)": c.vocab_size,
            f"tokens per {t}x{h}x{w} clip": tokens,
            f"tokens per second at {h}x{w}, {fps:g} fps": round(latent_frames_per_s * per_frame_grid, 1),
        })
    info["latent grids"] = [list(s) for s in c.latent_shapes(t, h, w)]
    if c.has_latent_stats:  # see onevae.latent_stats: what a diffusion model sees is (z - mean) / std
        info["latents mean (per channel)"] = [round(v, 4) for v in c.latents_mean]
        info["latents std (per channel)"] = [round(v, 4) for v in c.latents_std]
    else:
        info["latent statistics"] = "none (measure them: onevae stats VIDEOS... --model MODEL --save)"
    if model.source_dir is not None:
        info["fingerprint"] = model_fingerprint(model)
    return info


def describe_target(target: str | None, size: str, fps: float) -> dict[str, Any]:
    from ..config import PRESETS
    from ..model import OneVAE
    from ..model_dir import DEFAULT_MODEL_NAME

    # a preset name describes the architecture; the default model's name is the shipped model, as in from_pretrained
    if target is not None and target in PRESETS and target != DEFAULT_MODEL_NAME and not Path(target).exists():
        import torch

        with torch.device("meta"):
            return describe_model(OneVAE(target), size, fps)
    if target is not None and Path(target).is_file():
        return describe_file(Path(target))
    return describe_model(OneVAE.from_pretrained(target), size, fps)


INFO_TAKES = "onevae info takes a token/latent file (.safetensors from onevae encode), a model directory or a preset name"


def describe_file(path: Path) -> dict[str, Any]:
    """A token/latent file's metadata; a video, an image (or any other file) is refused with what ``info`` takes."""
    from ..errors import InputError
    from ..io.tokens import describe, load_token_file
    from ..io.video import is_still_image

    try:
        return describe(load_token_file(path)[1])
    except InputError:
        if path.suffix.lower() == ".safetensors":
            raise  # a token file's own problem, said precisely
        if not looks_like_video(path):
            raise InputError(f"{path} is not a token or latent file; {INFO_TAKES}") from None
        if is_still_image(path):
            raise InputError(f"{path} is an image; {INFO_TAKES} (onevae encode makes one from an image, "
                             "read as a 1-frame clip)") from None
        raise InputError(f"{path} looks like a video; {INFO_TAKES} (onevae encode makes one from a video)") from None


def looks_like_video(path: Path) -> bool:
    """Whether FFmpeg finds a video stream (or an image) in ``path``: a probe of the header, nothing decoded."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return False
