"""PSNR and SSIM per frame (torchmetrics, no downloads) and codebook usage.

Videos are (3, T, H, W) or (B, 3, T, H, W) in [-1, 1]; both are clamped to [-1, 1] and mapped to [0, 1], and
the metrics use data range 1. For a batch, the per-frame values are averaged over the clips, giving (T,).
Identical frames have infinite PSNR: every frame's PSNR is capped at ``PSNR_CAP`` = 100 dB (an MSE of 1e-10)
so that means stay finite. SSIM uses torchmetrics' defaults (Gaussian window 11, sigma 1.5); frames
smaller than that use a smaller window (see ssim_per_frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ..errors import InputError
from ..latents import Tokens

PSNR_CAP = 100.0
SSIM_MIN_SIZE = 11


def _frames01(video: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(3, T, H, W) or (B, 3, T, H, W) in [-1, 1] -> ((B*T, 3, H, W) in [0, 1], B)."""
    if video.dim() == 4:
        video = video.unsqueeze(0)
    if video.dim() != 5 or video.shape[1] != 3:
        raise InputError(f"expected a video (3, T, H, W) or (B, 3, T, H, W), got {tuple(video.shape)}")
    b, c, t, h, w = video.shape
    frames = (video.float().clamp(-1, 1) + 1) / 2
    return frames.transpose(1, 2).reshape(b * t, c, h, w), b


def _pair(ref: torch.Tensor, rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    if ref.shape != rec.shape:
        raise InputError(f"reference {tuple(ref.shape)} and reconstruction {tuple(rec.shape)} differ in shape")
    a, b = _frames01(ref)
    r, _ = _frames01(rec.to(ref.device))
    return a, r, b


def psnr_per_frame(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of every frame, (T,), each capped at 100 dB."""
    a, r, b = _pair(ref, rec)
    psnr = peak_signal_noise_ratio(r, a, data_range=1.0, reduction="none", dim=(1, 2, 3))  # (B*T,)
    psnr = torch.nan_to_num(psnr, posinf=PSNR_CAP).clamp(max=PSNR_CAP)
    return psnr.view(b, -1).mean(dim=0)


def ssim_per_frame(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """SSIM (Gaussian window 11, sigma 1.5) of every frame, (T,).

    Frames smaller than the window (the model takes any multiple of its spatial factor, e.g. 8x8) use the
    largest odd window that fits, with sigma scaled alike (1.5 * k / 11): such values are comparable with each
    other, not with the standard SSIM of frames of 11x11 pixels or more."""
    a, r, b = _pair(ref, rec)
    kernel = min(SSIM_MIN_SIZE, *a.shape[-2:])
    kernel -= 1 - kernel % 2  # odd
    ssim = structural_similarity_index_measure(r, a, data_range=1.0, reduction="none", kernel_size=kernel, sigma=1.5 * kernel / SSIM_MIN_SIZE)
    return ssim.view(b, -1).mean(dim=0)


def clip_metrics(ref: torch.Tensor, rec: torch.Tensor) -> dict:
    """``{"psnr", "ssim"}`` (means over frames) and ``{"psnr_per_frame", "ssim_per_frame"}`` (lists)."""
    psnr, ssim = psnr_per_frame(ref, rec), ssim_per_frame(ref, rec)
    return {
        "psnr": float(psnr.mean()),
        "ssim": float(ssim.mean()),
        "psnr_per_frame": psnr.tolist(),
        "ssim_per_frame": ssim.tolist(),
    }


def codebook_usage(tokens: Tokens | torch.Tensor | Sequence[Tokens | torch.Tensor], vocab_size: int) -> list[float]:
    """The share of the vocabulary used, per token position: K floats in [0, 1] for tokens (..., K) (a tensor,
    :class:`~onevae.latents.Tokens`, or a list of them pooled together). This is the one definition used by
    training logs, validation and evaluation (the official code divides by 64,000 over a rolling window)."""
    pieces = tokens if isinstance(tokens, (list, tuple)) else [tokens]
    grids = [g for piece in pieces for g in (piece.to_list() if isinstance(piece, Tokens) else [torch.as_tensor(piece)])]
    if not grids or any(g.dim() == 0 for g in grids):
        raise InputError("codebook usage needs indices of shape (..., K)")
    flat = torch.cat([g.reshape(-1, g.shape[-1]) for g in grids])  # (N, K)
    return [torch.unique(flat[:, k]).numel() / vocab_size for k in range(flat.shape[1])]


def seam_figure(video: torch.Tensor, rows: Sequence[int], cols: Sequence[int]) -> float:
    """How much a video's gradient jumps on given lines: the mean absolute vertical difference across the
    boundaries above ``rows`` and horizontal difference across the boundaries left of ``cols`` (tile borders),
    divided by the same mean over every other boundary. About 1 for a seamless image; compare the figure of a
    tiled reconstruction with the untiled one's. ``video``: (3, T, H, W) or (B, 3, T, H, W)."""
    frames, _ = _frames01(video)  # (N, 3, H, W)
    dy = (frames[:, :, 1:] - frames[:, :, :-1]).abs().mean(dim=(0, 1, 3))  # (H-1,): boundary above row i+1
    dx = (frames[..., 1:] - frames[..., :-1]).abs().mean(dim=(0, 1, 2))  # (W-1,)
    row_set = {r - 1 for r in rows if 0 < r < frames.shape[2]}
    col_set = {c - 1 for c in cols if 0 < c < frames.shape[3]}
    on = [dy[i] for i in row_set] + [dx[j] for j in col_set]
    off = [dy[i] for i in range(len(dy)) if i not in row_set] + [dx[j] for j in range(len(dx)) if j not in col_set]
    if not on or not off:
        raise InputError("seam_figure needs border lines inside the frame and lines elsewhere")
    return float(torch.stack(on).mean() / torch.stack(off).mean().clamp_min(1e-12))
