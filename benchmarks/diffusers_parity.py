"""Our reading of a diffusers AutoencoderKLWan folder against diffusers itself, on the same weights and clip.

With no folder, a full-size Wan2.1 architecture (diffusers' defaults) with seeded random weights is written to
a temporary folder first; give the ``vae/`` folder of a Wan2.1 *-Diffusers repository to check real weights.
Prints the largest absolute differences of the latent means, log-variances and decoded frames (float32).

    python benchmarks/diffusers_parity.py                                   # full-size random weights, 9x64x64
    python benchmarks/diffusers_parity.py --folder Wan2.1-T2V-1.3B-Diffusers/vae --frames 17 --size 256
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="a diffusers AutoencoderKLWan folder (default: full-size random weights)")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import AutoencoderKLWan

    from onevae.checkpoints import load_diffusers

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            torch.manual_seed(0)
            reference = AutoencoderKLWan()
            with torch.no_grad():  # the attention outputs start at zero in diffusers: give them weight
                for name, p in reference.named_parameters():
                    if name.endswith("proj.weight"):
                        p.normal_(0, 0.02)
            reference.save_pretrained(tmp)
            folder = tmp
        reference = AutoencoderKLWan.from_pretrained(folder).eval()
        ours, report = load_diffusers(folder)
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, args.frames, args.size, args.size, generator=g) * 2 - 1
    with torch.no_grad():
        start = time.perf_counter()
        posterior = reference.encode(video).latent_dist
        expected = reference.decode(posterior.mean).sample
        mean, logvar = ours.encode_moments(video)
        frames = ours.decode_latents(mean).clamp(-1, 1)
        seconds = time.perf_counter() - start
    print(json.dumps({
        "folder": args.folder or "full-size Wan2.1 architecture, random weights (seed 0)",
        "config": ours.config.name, "tensors": len(report.copied), "clip": [args.frames, args.size, args.size],
        "max_abs_diff": {
            "latent_mean": float((mean.rest - posterior.mean).abs().max()),
            "latent_logvar": float((logvar.rest - posterior.logvar).abs().max()),
            "frames": float((frames - expected).abs().max()),
        },
        "latent_mean_abs_max": float(posterior.mean.abs().max()),
        "seconds_both": round(seconds, 1), "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
    }, indent=1))


if __name__ == "__main__":
    main()
