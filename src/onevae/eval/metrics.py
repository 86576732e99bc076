"""PSNR and SSIM per frame (torchmetrics, no downloads) and codebook usage.

Videos are (3, T, H, W) or (B, 3, T, H, W) in [-1, 1]; both are clamped to [-1, 1] and mapped to [0, 1], and
the metrics use data range 1. For a batch, the per-frame values are averaged over the clips, giving (T,).
Identical frames have infinite PSNR: every frame's PSNR is capped at ``PSNR_CAP`` = 100 dB (an MSE of 1e-10)
so that means stay finite. SSIM uses torchmetrics' defaults (Gaussian window 11, sigma 1.5); frames
smaller than that use a smaller window (see ssim_per_frame).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ..errors import InputError

PSNR_CAP = 100.0
SSIM_MIN_SIZE = 11
USAGE_WINDOW = 65536  # the official image model's rolling buffer of indices


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


def codebook_usage(indices: torch.Tensor, vocab_size: int) -> list[float]:
    """Share of the vocabulary used, per token position: ``indices`` (..., K) -> K floats in [0, 1]."""
    indices = torch.as_tensor(indices)
    if indices.dim() == 0:
        raise InputError("codebook usage needs indices of shape (..., K), got a scalar")
    flat = indices.reshape(-1, indices.shape[-1])  # (N, K)
    return [torch.unique(flat[:, k]).numel() / vocab_size for k in range(flat.shape[1])]


class CodebookUsageTracker:
    """Usage over a rolling buffer of the last ``window`` indices per token position (65,536 officially).

    The official code divides the unique count by 64,000; here it is divided by ``vocab_size``.
    """

    def __init__(self, vocab_size: int, num_positions: Optional[int] = None, window: int = USAGE_WINDOW) -> None:
        if window < 1:
            raise InputError(f"the usage window must hold at least 1 index, got {window}")
        self.vocab_size = vocab_size
        self.window = window
        self.num_positions = num_positions
        self._buffer: Optional[torch.Tensor] = None  # (window, K) ring buffer
        self._next = 0
        self._filled = 0

    def update(self, indices: Union[torch.Tensor, list]) -> None:
        """Add indices (..., K); only the newest ``window`` per position are kept."""
        indices = torch.as_tensor(indices)
        k = self.num_positions or indices.shape[-1]
        if indices.dim() == 0 or indices.shape[-1] != k:
            raise InputError(f"expected indices of shape (..., {k}), got {tuple(indices.shape)}")
        self.num_positions = k
        flat = indices.detach().reshape(-1, k).to("cpu", torch.long)[-self.window:]  # (n, K)
        if self._buffer is None:
            self._buffer = torch.zeros(self.window, k, dtype=torch.long)
        n = flat.shape[0]
        rows = (self._next + torch.arange(n)) % self.window
        self._buffer[rows] = flat
        self._next = (self._next + n) % self.window
        self._filled = min(self.window, self._filled + n)

    def usage(self) -> list[float]:
        """Share of the vocabulary seen in the buffer, per position (zeros before any update)."""
        if self._buffer is None:
            return [0.0] * (self.num_positions or 0)
        return codebook_usage(self._buffer[: self._filled], self.vocab_size)

    def reset(self) -> None:
        self._buffer, self._next, self._filled = None, 0, 0
