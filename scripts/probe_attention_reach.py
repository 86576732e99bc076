"""Probe: does the mid-level attention's reach explain the shipped model's blur on large frames?

The encoder's and decoder's middle blocks attend over every position of a frame: 64 positions at the 64-pixel crops
the default model trained on, 1,024 at a 256 x 256 clip. This prints the tokens and latents PSNR of a held-out clip
encoded whole, as overlapping tiles the size of the training crops, and with the attention logits scaled by
log(n) / log(n_train) (which undoes the dilution of softmax over more positions). docs/default_model.md, "Is it the
encoder or the decoder?".

    python scripts/probe_attention_reach.py --clip cup --frames 17
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

import onevae.nn.layers as layers
from onevae import OneVAE
from onevae.eval import heldout
from onevae.eval.metrics import psnr_per_frame

PLAIN_ATTENTION = F.scaled_dot_product_attention  # onevae.nn.layers calls it through torch.nn.functional (F)


def psnr_both_paths(model: OneVAE, video: torch.Tensor) -> tuple[float, float]:
    """(tokens, latents) PSNR, the mean of the frames', as ``onevae eval`` reports it."""
    with torch.no_grad():
        latents = model.encode_latents(video, pad=True)
        tokens = model.decode_tokens(model.latents_to_tokens(latents))
        return (psnr_per_frame(video, tokens).mean().item(), psnr_per_frame(video, model.decode_latents(latents)).mean().item())


def attention_scaled_by(factor: Callable[[int], float]):
    """``F.scaled_dot_product_attention`` with its logits multiplied by ``factor(number of positions)``."""
    def scaled(q, k, v):
        return PLAIN_ATTENTION(q, k, v, scale=factor(q.shape[-2]) / math.sqrt(q.shape[-1]))

    return scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped one)")
    parser.add_argument("--clip", default="cup", help="a held-out clip's name")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--tiles", type=int, nargs="*", default=[128, 96], help="tile sizes (pixels) to encode with")
    parser.add_argument("--train-positions", type=int, nargs="*", default=[64, 144],
                        help="positions per frame at training (64: 64-pixel crops; 144: 96-pixel crops)")
    args = parser.parse_args()

    model = OneVAE.from_pretrained(args.model).eval()
    video, _ = heldout.load(heldout.select([args.clip])[0])
    video = video[None, :, : args.frames]  # (1, 3, T, H, W)
    print(f"{args.clip}, {tuple(video.shape[2:])} (T, H, W): tokens / latents PSNR (dB)")
    print("whole frames: {:.3f} / {:.3f}".format(*psnr_both_paths(model, video)), flush=True)
    for tile in args.tiles:
        model.enable_tiling(tile)
        print(f"tiles of {tile} pixels: " + "{:.3f} / {:.3f}".format(*psnr_both_paths(model, video)), flush=True)
        model.disable_tiling()
    for n_train in args.train_positions:
        layers.F.scaled_dot_product_attention = attention_scaled_by(lambda n, n_train=n_train: math.log(n) / math.log(n_train))
        try:
            result = psnr_both_paths(model, video)
        finally:
            layers.F.scaled_dot_product_attention = PLAIN_ATTENTION
        print(f"logits x log(n) / log({n_train}): " + "{:.3f} / {:.3f}".format(*result), flush=True)


if __name__ == "__main__":
    main()
