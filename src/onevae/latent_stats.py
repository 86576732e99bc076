"""Per-channel latent statistics and the normalised latents that diffusion models are trained on.

A latent diffusion model does not see the VAE's raw latents ``z`` (the encoder's means) but
``(z - mean) / std`` per channel, so that every channel is roughly zero-mean and unit-variance. Wan2.1's own
wrapper and diffusers' Wan pipelines do exactly this with the 16 constants carried by the ``wan2.1`` preset
(``OneVAEConfig.latents_mean``/``latents_std``); for other models :class:`LatentStatsAccumulator` and
:func:`measure_latent_stats` measure them on data (``onevae stats``).

Normalisation applies to every grid of a :class:`~onevae.latents.Latents` (the high-res first-frame grid of
fe models too): the statistics are per channel, not per position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .config import OneVAEConfig
from .errors import InputError
from .latents import Latents


def stats_tensors(config: OneVAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The config's (mean, std) as float32 (z_dim,) tensors; refuses a model that carries none."""
    if not config.has_latent_stats:
        raise InputError(
            f"{config.name} carries no latent statistics (latents_mean/latents_std): measure them with "
            "'onevae stats VIDEOS... --model MODEL --save' (or onevae.latent_stats.measure_latent_stats)"
        )
    return torch.tensor(config.latents_mean, dtype=torch.float32), torch.tensor(config.latents_std, dtype=torch.float32)


def _per_channel(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    # (z,) -> (1, z, 1, 1, 1) on the grid's device, in float32 (the division is done in float32, then cast back)
    return values.to(grid.device).view(1, -1, *([1] * (grid.dim() - 2)))


def normalize(latents: Latents, mean: torch.Tensor, std: torch.Tensor) -> Latents:
    """``(z - mean) / std`` per channel, on every grid; keeps the grids' dtype."""
    return latents.map(lambda g: ((g.float() - _per_channel(mean, g)) / _per_channel(std, g)).to(g.dtype))


def denormalize(latents: Latents, mean: torch.Tensor, std: torch.Tensor) -> Latents:
    """The inverse of :func:`normalize`: ``z * std + mean`` per channel."""
    return latents.map(lambda g: (g.float() * _per_channel(std, g) + _per_channel(mean, g)).to(g.dtype))


class LatentStatsAccumulator:
    """Running per-channel mean and standard deviation over latent grids of any number and size.

    Sums are kept in float64 around a shift (the first grid's channel means), so that channels with a large
    mean and a small spread do not lose precision to cancellation."""

    def __init__(self) -> None:
        self.count = 0
        self.shift: torch.Tensor | None = None  # (z,) float64
        self.total: torch.Tensor | None = None  # (z,) sum of (x - shift)
        self.total_sq: torch.Tensor | None = None  # (z,) sum of (x - shift)^2

    def update(self, latents: Latents) -> None:
        for grid in latents.to_list():
            if grid.numel() == 0:
                continue
            channels = grid.detach().to("cpu", torch.float64).transpose(0, 1).reshape(grid.shape[1], -1)  # (z, N)
            if self.shift is None:
                self.shift = channels.mean(dim=1)
                self.total = torch.zeros_like(self.shift)
                self.total_sq = torch.zeros_like(self.shift)
            if channels.shape[0] != self.shift.shape[0]:
                raise InputError(f"latent grids with {channels.shape[0]} channels after grids with {self.shift.shape[0]}")
            centred = channels - self.shift[:, None]
            self.total += centred.sum(dim=1)
            self.total_sq += (centred * centred).sum(dim=1)
            self.count += channels.shape[1]

    def result(self) -> tuple[list[float], list[float]]:
        """(mean, std) per channel, the population standard deviation over every position seen."""
        if self.count < 2:
            raise InputError("latent statistics need at least two latent positions; give more or larger clips")
        mean_shifted = self.total / self.count
        variance = (self.total_sq / self.count - mean_shifted**2).clamp_min(0.0)
        std = variance.sqrt().clamp_min(1e-6)  # a dead channel must not divide by zero when normalising
        return (self.shift + mean_shifted).tolist(), std.tolist()


def measure_latent_stats(model, videos: Iterable[torch.Tensor], mode: str = "stream", chunk_frames: int | None = None) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) of ``model``'s latents over ``videos``: (B, 3, T, H, W) tensors in [-1, 1] of
    any valid size (``pad=True`` brings other sizes to one)."""
    accumulator = LatentStatsAccumulator()
    with torch.no_grad():
        for video in videos:
            accumulator.update(model.encode_latents(video, mode=mode, chunk_frames=chunk_frames, pad=True))
    return accumulator.result()


def with_stats(config: OneVAEConfig, mean: Sequence[float], std: Sequence[float]) -> OneVAEConfig:
    """A copy of ``config`` carrying these statistics (checked: z_dim values each, std > 0)."""
    return config.replace(latents_mean=[float(v) for v in mean], latents_std=[float(v) for v in std])
