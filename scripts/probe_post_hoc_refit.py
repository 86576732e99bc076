"""Can a closed-form refit of one linear layer improve a trained tokenizer, every token unchanged?

Two layers are linear in their weights once the rest of the network is frozen:

- ``head``: the decoder's last convolution (C x 3 x 3 x 3 -> RGB), fitted to the input pixels on both paths
  (tokens and latents), by ridge regression towards the current weights;
- ``post-quant``: ``post_quant_conv`` (FSQ codes -> the decoder's latent), fitted to the encoder's continuous
  latents (least squares), i.e. "decode the tokens as the latents they came from".

The normal equations are summed over random clips of a training config's data; the script prints the fitted
objective before and after, writes the refit model (float16) for ``onevae eval``, and reports carphone's first
17 frames through the tokens for a few blends of old and new weights. Session 10's answer for the stage-10
model is in docs/default_model.md ("Post-hoc refits"): neither helps on held-out video.

    python scripts/probe_post_hoc_refit.py head --clips 40 --out /tmp/refit_head
    python scripts/probe_post_hoc_refit.py post-quant --clips 100 --out /tmp/refit_pq
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from onevae import OneVAE
from onevae.eval.evaluate import resolve_clips
from onevae.eval.metrics import clip_metrics
from onevae.train.config import load_train_config
from onevae.train.data import build_base_dataset


# ------------------------------------------------------------------------------------------------ the head
def capture_head_input(model: OneVAE) -> list[torch.Tensor]:
    """Record the input of the decoder's last convolution (past frames already prepended) on every call."""
    conv = model.model.decoder.head[-1]
    captured: list[torch.Tensor] = []
    forward = conv._conv_forward

    def recording(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        captured.append(x.detach())
        return forward(x, weight, bias)

    conv._conv_forward = recording
    return captured


def head_patches(x: torch.Tensor, t: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The 3x3x3 patches the last convolution reads for output positions (t, h, w) of one clip's input
    ``x`` (1, C, T + 2, H, W), flattened as the weight is (C, kt, kh, kw), plus a 1 for the bias: (N, C * 27 + 1)."""
    x = F.pad(x[0], (1, 1, 1, 1))  # (C, T + 2, H + 2, W + 2): the convolution's own spatial zeros
    d = torch.arange(3)
    patches = x[:, (t[:, None] + d)[:, :, None, None], (h[:, None] + d)[:, None, :, None], (w[:, None] + d)[:, None, None, :]]
    patches = patches.permute(1, 0, 2, 3, 4).reshape(len(t), -1)  # (N, C * 27)
    return torch.cat([patches, torch.ones(len(t), 1)], 1)


def head_weights(model: OneVAE) -> torch.Tensor:
    """The last convolution as a (C * 27 + 1, 3) matrix."""
    conv = model.model.decoder.head[-1]
    return torch.cat([conv.weight.reshape(3, -1), conv.bias[:, None]], 1).T.detach().double()


def set_head_weights(model: OneVAE, w: torch.Tensor) -> None:
    conv = model.model.decoder.head[-1]
    conv.weight.data = w[:-1].T.reshape(conv.weight.shape).to(conv.weight.dtype)
    conv.bias.data = w[-1].to(conv.bias.dtype)


@torch.no_grad()
def head_normal_equations(model: OneVAE, clips, per_clip: int, rng: np.random.Generator):
    """sum X^T X, X^T Y, Y^T Y over ``per_clip`` random positions of each clip, tokens and latents path."""
    captured = capture_head_input(model)
    dim = model.model.decoder.head[-1].in_channels * 27 + 1
    gram, cross, energy = torch.zeros(dim, dim, dtype=torch.float64), torch.zeros(dim, 3, dtype=torch.float64), 0.0
    for video in clips:  # (1, 3, T, H, W)
        latents = model.encode_latents(video)
        for decoder_input in (model.tokens_to_latents(model.latents_to_tokens(latents)), latents):
            captured.clear()
            model.decode_latents(decoder_input)
            start = 0
            for x in captured:  # one piece per decoded chunk, each with its own past frames
                t_out, h_out, w_out = x.shape[2] - 2, x.shape[3], x.shape[4]
                n = per_clip * t_out // video.shape[2] + 1
                t, h, w = (torch.from_numpy(rng.integers(size, size=n)) for size in (t_out, h_out, w_out))
                features = head_patches(x, t, h, w).double()
                target = video[0][:, start + t, h, w].T.double()  # (N, 3)
                gram += features.T @ features
                cross += features.T @ target
                energy += float((target * target).sum())
                start += t_out
    return gram, cross, energy


# ------------------------------------------------------------------------------------------------ post-quant
def post_quant_weights(model: OneVAE) -> torch.Tensor:
    """``post_quant_conv`` as a (codes + 1, z) matrix."""
    layer = model.post_quant_conv
    return torch.cat([layer.weight.T, layer.bias[None]], 0).detach().double()


def set_post_quant_weights(model: OneVAE, w: torch.Tensor) -> None:
    layer = model.post_quant_conv
    layer.weight.data = w[:-1].T.to(layer.weight.dtype).contiguous()
    layer.bias.data = w[-1].to(layer.bias.dtype)


@torch.no_grad()
def post_quant_normal_equations(model: OneVAE, clips):
    """sum X^T X, X^T Z, Z^T Z over every latent position: X the FSQ codes (and a 1), Z the continuous latent."""
    k, z_dim = model.post_quant_conv.in_features, model.post_quant_conv.out_features
    gram, cross, energy = torch.zeros(k + 1, k + 1, dtype=torch.float64), torch.zeros(k + 1, z_dim, dtype=torch.float64), 0.0
    for video in clips:
        for grid in model.encode_latents(video).to_list():  # (1, z, t, h, w)
            z = grid.permute(0, 2, 3, 4, 1).reshape(-1, z_dim)  # (N, z)
            codes, _ = model.quantizer(model.quant_conv(z))  # (N, K * d)
            features = torch.cat([codes, torch.ones(len(z), 1)], 1).double()
            gram += features.T @ features
            cross += features.T @ z.double()
            energy += float((z.double() ** 2).sum())
    return gram, cross, energy


# ------------------------------------------------------------------------------------------------ shared
def mean_squared_error(w: torch.Tensor, gram: torch.Tensor, cross: torch.Tensor, energy: float) -> float:
    """|X w - Y|^2 / N from the normal equations (N: the count of the bias column)."""
    return float((energy - 2 * (w * cross).sum() + (w.T @ gram @ w).trace()) / gram[-1, -1])


def ridge_towards(gram: torch.Tensor, cross: torch.Tensor, w0: torch.Tensor, ridge: float) -> torch.Tensor:
    """argmin |X w - Y|^2 + ridge * N * |w - w0|^2."""
    n = gram[-1, -1]
    return torch.linalg.solve(gram + ridge * n * torch.eye(len(gram), dtype=gram.dtype), cross + ridge * n * w0)


def training_clips(config: str, count: int, rng: np.random.Generator):
    dataset = build_base_dataset(load_train_config(config, ["data.num_workers=0"]))
    for _ in range(count):
        yield dataset[int(rng.integers(len(dataset)))][None].float()  # (1, 3, T, H, W)


@torch.no_grad()
def carphone_tokens_psnr(model: OneVAE, frames: int = 17) -> float:
    video = resolve_clips(["carphone"], max_frames=frames)[0].video[None]
    recon = model.decode_tokens(model.latents_to_tokens(model.encode_latents(video))).clamp(-1, 1)
    return clip_metrics(video[0], recon[0])["psnr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layer", choices=["head", "post-quant"])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped onevae-small)")
    parser.add_argument("--config", default="configs/default_wide_gpu.yaml", help="training config whose data to fit on")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--samples-per-clip", type=int, default=20000, help="head: output positions sampled per clip and path")
    parser.add_argument("--ridge", type=float, default=1e-3, help="head: pull towards the current weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="where to write the refit model")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    model = OneVAE.from_pretrained(args.model).float().eval()
    clips = training_clips(args.config, args.clips, rng)
    if args.layer == "head":
        get, put = head_weights, set_head_weights
        gram, cross, energy = head_normal_equations(model, clips, args.samples_per_clip, rng)
        fitted = ridge_towards(gram, cross, get(model), args.ridge)
    else:
        get, put = post_quant_weights, set_post_quant_weights
        gram, cross, energy = post_quant_normal_equations(model, clips)
        fitted = ridge_towards(gram, cross, get(model), 1e-6)
    w0 = get(model)
    print(f"{args.layer}: {int(gram[-1, -1])} samples; mean squared error {mean_squared_error(w0, gram, cross, energy):.5f} "
          f"-> {mean_squared_error(fitted, gram, cross, energy):.5f} (mean square of the target {energy / float(gram[-1, -1]):.5f})")
    for blend in (0.0, 0.5, 1.0):
        put(model, (1 - blend) * w0 + blend * fitted)
        print(f"blend {blend:.1f}: carphone frames 0-16 tokens {carphone_tokens_psnr(model):.2f} dB")
    model.save_pretrained(args.out, dtype=torch.float16)
    print(f"wrote {args.out} (blend 1.0): evaluate it with `onevae eval {args.out} --max-frames 33 --no-x264`")


if __name__ == "__main__":
    main()
