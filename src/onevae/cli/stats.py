"""``onevae stats``: measure a model's per-channel latent statistics on videos (see :mod:`onevae.latent_stats`)."""

from __future__ import annotations

import argparse
import json


def add_stats(sub) -> None:
    from .commands import add_fit_options, add_model_options  # the shared option helpers (commands imports this module)

    p = sub.add_parser("stats", help="measure the per-channel mean/std of a model's latents on videos",
                       description="Encode videos to continuous latents and measure each channel's mean and standard deviation "
                       "over every latent position: the statistics that normalise latents for a diffusion model, (z - mean) / std. "
                       "--save writes them into the model directory's config.json (latents_mean, latents_std).")
    p.add_argument("videos", nargs="+", help="video files (anything FFmpeg reads) or images")
    p.add_argument("--save", action="store_true", help="write the statistics into the --model directory's config.json")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_options(p)
    add_fit_options(p)
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    import torch

    from ..errors import OneVAEError
    from ..io.paths import existing_file
    from ..latent_stats import LatentStatsAccumulator
    from ..model_dir import default_model_dir
    from ..pipeline import encode_file
    from .commands import fit_options, load_model_from_args, print_err

    videos = [existing_file(v, "video file") for v in args.videos]
    model = load_model_from_args(args)
    if args.save and (model.source_dir is None or model.source_dir.resolve() == default_model_dir().resolve()):
        raise OneVAEError("--save writes into a model directory of yours: give --model DIR (the shipped model is read-only; copy it first)")
    options = fit_options(args)
    accumulator = LatentStatsAccumulator()
    for video in videos:
        latents, meta = encode_file(model, video, options, kind="latents", progress=not args.quiet, latent_dtype=torch.float32)
        accumulator.update(latents)
        print_err(f"[onevae] {video}: {meta.frames} frames, {sum(g[0, 0].numel() for g in latents.to_list())} latent positions")
    mean, std = accumulator.result()
    if args.save:
        _save_stats(model, mean, std)
        print_err(f"[onevae] wrote latents_mean/latents_std into {model.source_dir}/config.json")
    summary = {"model": model.config.name, "videos": [str(v) for v in videos], "positions": accumulator.count, "latents_mean": mean, "latents_std": std}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{model.config.name}: {accumulator.count} latent positions from {len(videos)} video(s)")
        print(f"{'channel':>7} {'mean':>10} {'std':>10}")
        for channel, (m, s) in enumerate(zip(mean, std)):
            print(f"{channel:>7} {m:>10.4f} {s:>10.4f}")
    return 0


def _save_stats(model, mean: list[float], std: list[float]) -> None:
    """Rewrite the model directory's config.json with the statistics (atomically; the weights are untouched
    and the model's fingerprint, which leaves the statistics out, does not change)."""
    from ..config import OneVAEConfig
    from ..io.atomic import atomic_path
    from ..latent_stats import with_stats
    from ..model_dir import CONFIG_NAME

    path = model.source_dir / CONFIG_NAME
    config = with_stats(OneVAEConfig.load(path), mean, std)
    with atomic_path(path) as tmp:
        config.save(tmp)
