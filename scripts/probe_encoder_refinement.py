"""Probe: how much better could the shipped decoder reconstruct a clip from *other* tokens?

Optimises the continuous latent (the encoder's output, before FSQ) with Adam so that the decoded tokens reconstruct
the clip, straight through the rounding, and prints the tokens path's PSNR as it goes. A diagnostic of the
encoder's share of the error (the amortisation gap), not an encoding mode: the refined tokens are far from what
the encoder writes. docs/default_model.md, "Is it the encoder or the decoder?".

    python scripts/probe_encoder_refinement.py --frames 17 --steps 30 --lr 0.05
"""

from __future__ import annotations

import argparse
import time

import torch

from onevae import OneVAE
from onevae.eval import heldout
from onevae.eval.metrics import psnr_per_frame
from onevae.latents import Latents


def psnr(recon: torch.Tensor, video: torch.Tensor) -> float:
    """The mean of the frames' PSNR, as ``onevae eval`` reports it."""
    return psnr_per_frame(video, recon).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped one)")
    parser.add_argument("--clip", default="carphone", help="a held-out clip's name")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    model = OneVAE.from_pretrained(args.model).eval().requires_grad_(False)
    video, _ = heldout.load(heldout.select([args.clip])[0])
    video = video[None, :, : args.frames]  # (1, 3, T, H, W)
    with torch.no_grad():
        start = model.encode_latents(video, pad=True)
        start_tokens = model.latents_to_tokens(start)
        print(f"start: tokens {psnr(model.decode_tokens(start_tokens), video):.3f} dB, "
              f"latents {psnr(model.decode_latents(start), video):.3f} dB", flush=True)
    z = start.rest.clone().requires_grad_(True)  # (1, z, t, h, w); the shipped model has no high-res frame 0
    optimiser = torch.optim.Adam([z], lr=args.lr)
    began = time.time()
    for step in range(1, args.steps + 1):
        quantised, _ = model.quantize(Latents(rest=z))
        loss = ((model.model.decode(quantised) - video) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 5 == 0 or step == args.steps:
            with torch.no_grad():
                tokens = model.latents_to_tokens(Latents(rest=z.detach()))
                changed = (tokens.rest != start_tokens.rest).float().mean().item()
                print(f"step {step}: tokens {psnr(model.decode_tokens(tokens), video):.3f} dB, "
                      f"{changed:.1%} of the tokens changed ({time.time() - began:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
