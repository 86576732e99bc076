"""Encode/decode throughput, achieved GFLOP/s and peak memory of the execution paths.

Paths:
  full      the whole clip in one pass (causal padding), the training path;
  stream    chunk by chunk with causal caches (encoder: 4 latent frames per chunk; decoder: 4 latent frames);
  official  the official release's schedule: frame 0, then one chunk of `temporal_factor` frames at a time in
            the encoder, and one latent frame at a time in the decoder;
  diffusers diffusers' own AutoencoderKLWan on the same weights (``--preset wan2.1`` only: written with
            onevae.checkpoints.save_diffusers and read back by diffusers), its default (untiled) path.

All paths give the same output (max abs difference printed, decoded frames clamped to [-1, 1] as diffusers
does). Each case runs in a fresh subprocess so that peak memory (RSS on CPU, max allocated on CUDA) is its own.
The network's FLOPs are counted once, on the first path (every path runs the same convolutions).

    python benchmarks/bench_model.py                      # CPU: full-size 8x8x8 preset, 17x128x128, float32
    python benchmarks/bench_model.py --device cuda --dtype bfloat16 --frames 33 --size 256
    python benchmarks/bench_model.py --memory-lengths 17,65,129   # peak memory vs clip length, full vs stream
    python benchmarks/bench_model.py --preset wan2.1 --paths full,stream,official,diffusers   # against diffusers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


def conv_peak_gflops(device: str, dtype: torch.dtype, seconds: float = 3.0) -> float:
    """The machine's measured Conv3d throughput on a layer shaped like the network's biggest ones."""
    conv = torch.nn.Conv3d(128, 128, 3, padding=1).to(device, dtype)
    x = torch.randn(1, 128, 9, 64, 64, device=device, dtype=dtype)
    flops = 2 * 128 * 128 * 27 * 9 * 64 * 64
    with torch.no_grad():
        conv(x)
        _sync(device)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conv(x)
            n += 1
        _sync(device)
    return flops * n / (time.perf_counter() - start) / 1e9


def matmul_peak_gflops(device: str, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """The machine's measured dense matrix-product throughput (the figure GPU peaks are quoted in)."""
    n = 8192 if device.startswith("cuda") else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def parse_size(text: str) -> tuple[int, int]:
    """``256`` (square) or ``WIDTHxHEIGHT`` such as ``1280x720`` -> (height, width)."""
    width, _, height = text.partition("x")
    return (int(height or width), int(width))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def _diffusers_coders(model, video: torch.Tensor):
    """diffusers' AutoencoderKLWan with ``model``'s weights: (encode, decode) returning tensors."""
    import tempfile

    from diffusers import AutoencoderKLWan

    from onevae.checkpoints import save_diffusers

    if model.config.name != "wan2.1":
        raise SystemExit("the diffusers path needs --preset wan2.1 (diffusers' AutoencoderKLWan is that architecture)")
    with tempfile.TemporaryDirectory() as tmp:
        save_diffusers(model.float(), tmp)
        reference = AutoencoderKLWan.from_pretrained(tmp).to(video.device, video.dtype).eval()
    encode = lambda: reference.encode(video).latent_dist.mean  # noqa: E731
    decode = lambda lat: reference.decode(lat).sample  # noqa: E731
    return encode, decode


def _coders(model, video: torch.Tensor, path: str):
    """(encode, decode) of one execution path."""
    tf = model.config.temporal_factor
    if path == "diffusers":
        return _diffusers_coders(model, video)
    if path == "full":
        return (lambda: model.encode_latents(video)), (lambda lat: model.decode_latents(lat))
    if path == "stream":
        return (lambda: model.encode_latents(video, mode="stream", chunk_frames=4 * tf)), (lambda lat: model.decode_latents(lat, mode="stream", chunk_latents=4))
    if path == "official":
        return (lambda: model.encode_latents(video, mode="stream", chunk_frames=tf)), (lambda lat: model.decode_latents(lat, mode="stream", chunk_latents=1))
    raise SystemExit(f"unknown path {path!r}")


def _first_latent(latents) -> torch.Tensor:
    return latents if isinstance(latents, torch.Tensor) else latents.to_list()[0]


def run_case(args: argparse.Namespace) -> dict:
    from onevae import OneVAE

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = OneVAE(args.preset).to(args.device).eval()
    height, width = parse_size(args.size)
    video = (torch.rand(1, 3, args.frames, height, width, device=args.device) * 2 - 1).to(dtype)
    encode, decode = _coders(model, video, args.path)
    model.to(dtype)
    if args.channels_last:
        model.set_memory_format(torch.channels_last_3d)
    if args.compile:
        model.compile()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        if args.warmup:
            decode(encode())
            _sync(args.device)
        times_enc, times_dec = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            latents = encode()
            _sync(args.device)
            mid = time.perf_counter()
            recon = decode(latents)
            _sync(args.device)
            times_enc.append(mid - start)
            times_dec.append(time.perf_counter() - mid)
        flops = (count_flops(encode), count_flops(lambda: decode(latents))) if args.count_flops else None
    peak = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t_enc, t_dec = min(times_enc), min(times_dec)
    out = {"path": args.path, "enc_s": t_enc, "dec_s": t_dec, "enc_fps": args.frames / t_enc, "dec_fps": args.frames / t_dec,
           "flops": flops, "peak_mib": peak / 2**20}
    torch.save({"latent": _first_latent(latents).float().cpu(), "recon": recon.float().clamp(-1, 1).cpu()}, args.dump)
    return out


def run_memory_case(args: argparse.Namespace) -> dict:
    """Encode + decode a clip generated piece by piece; report the process's peak memory."""
    from onevae import OneVAE, StreamingDecoder, StreamingEncoder

    dtype = getattr(torch, args.dtype)
    model = OneVAE(args.preset).to(args.device, dtype).eval()
    tf = model.config.temporal_factor
    g = torch.Generator().manual_seed(0)

    height, width = parse_size(args.size)

    def frames(n: int) -> torch.Tensor:
        return (torch.rand(1, 3, n, height, width, generator=g) * 2 - 1).to(args.device, dtype)

    with torch.no_grad():
        if args.path == "full":
            model.decode_latents(model.encode_latents(frames(args.frames)))
        else:  # frames arrive chunk by chunk (as from a video file) and decoded frames are dropped (as written)
            encoder, decoder = StreamingEncoder(model, chunk_frames=tf), StreamingDecoder(model)
            decoder.push(encoder.push(frames(1)))
            for _ in range((args.frames - 1) // tf):
                decoder.push(encoder.push(frames(tf)))
    _sync(args.device)
    peak = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"path": args.path, "frames": args.frames, "peak_mib": peak / 2**20}


def memory_table(args: argparse.Namespace) -> None:
    lengths = [int(n) for n in args.memory_lengths.split(",")]
    print(f"# peak memory (MiB) vs clip length: {args.preset}, {args.size}, {args.dtype} on {args.device}; "
          "stream = chunks of tf frames in, frames out as they come")
    print("| frames | " + " | ".join(lengths and ["full", "stream"]) + " |")
    print("|---|---|---|")
    for n in lengths:
        row = []
        for path in ("full", "stream"):
            cmd = [sys.executable, __file__, "--memory-case", "--path", path, f"--frames={n}"] + [
                f"--{k}={getattr(args, k)}" for k in ("preset", "device", "dtype", "size")
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                raise SystemExit(f"memory case {path} {n} failed")
            row.append(json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"])
        print(f"| {n} | {row[0]:.0f} | {row[1]:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="onevae-888")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="128", help="frame size: 256 (square) or WIDTHxHEIGHT, e.g. 1280x720")
    parser.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder (model.compile())")
    parser.add_argument("--channels-last", action="store_true", help="channels_last_3d weights and activations")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--paths", default="full,stream,official")
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--count-flops", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--memory-lengths", default=None, help="comma-separated clip lengths: print peak memory of full vs stream instead")
    parser.add_argument("--memory-case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        print(json.dumps(run_memory_case(args)))
        return
    if args.memory_lengths:
        memory_table(args)
        return
    if args.path:  # child process: one case
        print(json.dumps(run_case(args)))
        return
    dtype = getattr(torch, args.dtype)
    peak = conv_peak_gflops(args.device, dtype)
    matmul_peak = matmul_peak_gflops(args.device, dtype)
    rows, dumps = [], {}
    for i, path in enumerate(args.paths.split(",")):
        dump = f"/tmp/onevae_bench_{os.getpid()}_{path}.pt"
        cmd = [sys.executable, __file__, "--path", path, "--dump", dump, f"--count-flops={int(i == 0)}"] + [
            f"--{k}={getattr(args, k)}" for k in ("preset", "device", "dtype", "frames", "size", "repeats", "warmup")
        ] + ["--compile"] * args.compile + ["--channels-last"] * args.channels_last
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            raise SystemExit(f"case {path} failed")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        dumps[path] = torch.load(dump)
        os.unlink(dump)
    ref = dumps[rows[0]["path"]]
    flops_enc, flops_dec = rows[0]["flops"]
    for row in rows:
        row["enc_gflops"], row["dec_gflops"] = flops_enc / row["enc_s"] / 1e9, flops_dec / row["dec_s"] / 1e9
        row["gflop_per_frame"] = (flops_enc + flops_dec) / args.frames / 1e9
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    options = "".join([", compiled"] * args.compile + [", channels_last_3d"] * args.channels_last)
    print(f"# {args.preset}, {args.frames} frames of {args.size}, {args.dtype}{options} on {args.device} ({device_name}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; measured Conv3d peak {peak:.1f} GFLOP/s, "
          f"matrix-product peak {matmul_peak:.1f} GFLOP/s")
    print(f"# network cost: {rows[0]['gflop_per_frame']:.1f} GFLOP per frame (encode + decode)")
    print(f"| path | encode frames/s | decode frames/s | encode GFLOP/s | decode GFLOP/s | % of conv peak (enc/dec) | % of matmul peak (enc/dec) | peak memory MiB | max abs diff vs {rows[0]['path']} (latent / video) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        d_lat = (dumps[row["path"]]["latent"] - ref["latent"]).abs().max().item()
        d_rec = (dumps[row["path"]]["recon"] - ref["recon"]).abs().max().item()
        print(f"| {row['path']} | {row['enc_fps']:.2f} | {row['dec_fps']:.2f} | {row['enc_gflops']:.1f} | {row['dec_gflops']:.1f} | "
              f"{100 * row['enc_gflops'] / peak:.0f}% / {100 * row['dec_gflops'] / peak:.0f}% | "
              f"{100 * row['enc_gflops'] / matmul_peak:.0f}% / {100 * row['dec_gflops'] / matmul_peak:.0f}% | {row['peak_mib']:.0f} | {d_lat:.1e} / {d_rec:.1e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device_name": device_name, "torch": torch.__version__, "conv_peak_gflops": peak,
                       "matmul_peak_gflops": matmul_peak, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
