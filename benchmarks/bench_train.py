"""Training step time and peak memory: one optimisation step (encode, both paths' decoders as configured,
backward, AdamW) of a preset on random clips, as the Lightning module runs it.

    python benchmarks/bench_train.py                                  # onevae-small, 17x128x128, batch 1, CPU
    python benchmarks/bench_train.py --preset onevae-888 --device cuda --precision bf16 --batch 1
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


def run_case(args: argparse.Namespace) -> dict:
    from onevae import CONTINUOUS, DISCRETE, OneVAE
    from onevae.config import preset

    torch.manual_seed(0)
    config = preset(args.preset)
    model = OneVAE(config.replace(dim=args.dim) if args.dim else config).to(args.device).train()
    if args.checkpointing:
        from onevae.nn.layers import ResidualBlock

        for module in model.modules():
            if isinstance(module, ResidualBlock):
                module.activation_checkpointing = True
    from onevae.train.runner import apply_speed_options

    apply_speed_options(model, args.channels_last, args.compile)  # as trainer.channels_last / trainer.compile do
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.1)
    video = torch.rand(args.batch, 3, args.frames, args.size, args.size, device=args.device) * 2 - 1
    autocast = torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.precision == "bf16")

    plans = {"continuous": [CONTINUOUS], "discrete": [DISCRETE], "joint": [CONTINUOUS, DISCRETE]}[args.path]

    def step() -> None:
        with autocast:
            out = model(video, plans)  # the forward pass training runs (joint: schedule.kind joint, joint_mode sum)
            loss = sum(p.plan.weight * (p.recon.float() - video).square().mean() for p in out.paths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    start = time.perf_counter()
    step()  # warm-up (and compilation)
    first_s = time.perf_counter() - start
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"path": args.path, "step_s": min(times), "median_s": sorted(times)[len(times) // 2], "first_s": first_s, "peak_mib": peak / 2**20, "params_m": model.num_parameters() / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="onevae-small")
    parser.add_argument("--dim", type=int, default=0, help="the preset at another base width (e.g. 16: onevae-small before stage 10)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16"])
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing of residual blocks")
    parser.add_argument("--paths", default="continuous,discrete,joint")
    parser.add_argument("--channels-last", action="store_true", help="channels_last_3d weights (trainer.channels_last)")
    parser.add_argument("--compile", default="off", help="torch.compile backend of encoder and decoder (trainer.compile), e.g. inductor")
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_case(args)))
        return
    rows = []
    for path in args.paths.split(","):
        cmd = [sys.executable, __file__, "--path", path] + [f"--{k}={getattr(args, k)}" for k in ("preset", "dim", "device", "precision", "frames", "size", "batch", "repeats")]
        cmd += ["--checkpointing"] * args.checkpointing + ["--channels-last"] * args.channels_last + [f"--compile={args.compile}"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            raise SystemExit(f"case {path} failed")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"# training step: {args.preset} ({rows[0]['params_m']:.2f} M), batch {args.batch} x {args.frames}x{args.size}x{args.size}, "
          f"{args.precision} on {args.device} ({device}), torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (", activation checkpointing" if args.checkpointing else "") + (", channels_last_3d" if args.channels_last else "")
          + (f", compile {args.compile}" if args.compile != "off" else ""))
    print("| path(s) per step | step time (s), best / median | clips/s | first step (s) | peak memory MiB |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['step_s']:.3f} / {row['median_s']:.3f} | {args.batch / row['step_s']:.2f} | {row['first_s']:.1f} | {row['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
