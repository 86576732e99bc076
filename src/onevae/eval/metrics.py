"""PSNR and SSIM per frame (torchmetrics, no downloads) and codebook usage.

Videos are (3, T, H, W) or (B, 3, T, H, W) in [-1, 1]; metrics are computed on [0, 1] with data range 1.
Identical frames have infinite PSNR: it is capped at ``PSNR_CAP`` dB so that means stay finite.
"""

from __future__ import annotations

from collections import deque
from typing import Union

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

PSNR_CAP = 100.0


def _frames01(video: torch.Tensor) -> torch.Tensor:
    """(3, T, H, W) or (B, 3, T, H, W) in [-1, 1] -> (N, 3, H, W) in [0, 1], N = B*T."""
    if video.dim() == 4:
        video = video.unsqueeze(0)
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"expected a video (3, T, H, W) or (B, 3, T, H, W), got {tuple(video.shape)}")
    b, c, t, h, w = video.shape
    return ((video.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def psnr_per_frame(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of every frame, (T,) (or (B*T,) for batches), capped at 100 dB."""
    a, b = _frames01(ref), _frames01(rec)
    mse = (a - b).square().mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-30))
    return psnr.clamp(max=PSNR_CAP)


def ssim_per_frame(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """SSIM (Gaussian window 11, sigma 1.5) of every frame, (T,)."""
    a, b = _frames01(ref), _frames01(rec)
    return structural_similarity_index_measure(b, a, data_range=1.0, reduction="none")


def clip_metrics(ref: torch.Tensor, rec: torch.Tensor) -> dict:
    psnr, ssim = psnr_per_frame(ref, rec), ssim_per_frame(ref, rec)
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "psnr_per_frame": psnr.tolist(), "ssim_per_frame": ssim.tolist()}


def torchmetrics_psnr(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """The whole clip's PSNR from torchmetrics (one MSE over all frames), for cross-checks."""
    return float(peak_signal_noise_ratio(_frames01(rec), _frames01(ref), data_range=1.0))


def codebook_usage(indices: torch.Tensor, vocab_size: int) -> list[float]:
    """Share of the vocabulary used, per token position: ``indices`` (..., K) -> K floats."""
    flat = indices.reshape(-1, indices.shape[-1])
    return [torch.unique(flat[:, k]).numel() / vocab_size for k in range(flat.shape[1])]


class CodebookUsageTracker:
    """Usage over a rolling buffer of the last ``window`` indices per token position (65,536 officially)."""

    def __init__(self, vocab_size: int, num_codebooks: int, window: int = 65536) -> None:
        self.vocab_size = vocab_size
        self.buffers = [deque(maxlen=window) for _ in range(num_codebooks)]

    def update(self, indices: Union[torch.Tensor, list]) -> None:
        flat = torch.as_tensor(indices).reshape(-1, len(self.buffers))
        for k, buffer in enumerate(self.buffers):
            buffer.extend(flat[:, k].tolist())

    def usage(self) -> list[float]:
        return [len(set(buffer)) / self.vocab_size for buffer in self.buffers]
