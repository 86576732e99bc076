"""Deterministic synthetic clips (moving shapes over drifting gradients and textures): no files, fast, for tests."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError


class ProceduralVideoDataset(Dataset):
    """``num_samples`` clips, float32 (3, num_frames, H, W) in [-1, 1]; clip ``i`` depends only on (seed, i)."""

    def __init__(
        self, num_samples: int, num_frames: int, size: int | tuple[int, int], seed: int = 0, num_shapes: int = 3
    ) -> None:
        if num_samples < 1 or num_frames < 1:
            raise InputError(f"num_samples and num_frames must be >= 1, got {num_samples} and {num_frames}")
        self.num_samples, self.num_frames, self.seed, self.num_shapes = num_samples, num_frames, seed, num_shapes
        self.height, self.width = (size, size) if isinstance(size, int) else size

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} clips")
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, index])
        t, y, x = _grid(self.num_frames, self.height, self.width)  # (T, 1, 1), (1, H, 1), (1, 1, W) in [0, 1]
        video = _gradient(rng, t, y, x) + _texture(rng, t, y, x)  # (3, T, H, W)
        for _ in range(self.num_shapes):
            video = _draw_shape(rng, video, t, y, x, self.width / self.height)
        return video.clamp_(-1, 1)


def _grid(frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1) / max(frames - 1, 1)
    y = (torch.arange(height, dtype=torch.float32).view(1, height, 1) + 0.5) / height
    x = (torch.arange(width, dtype=torch.float32).view(1, 1, width) + 0.5) / width
    return t, y, x


def _gradient(rng: np.random.Generator, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A linear colour gradient whose direction turns slowly: (3, T, H, W)."""
    angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.5, 0.5) * t  # (T, 1, 1)
    ramp = torch.cos(angle) * (x - 0.5) + torch.sin(angle) * (y - 0.5)  # (T, H, W)
    low, high = rng.uniform(-0.8, 0.2, 3), rng.uniform(-0.2, 0.8, 3)
    return torch.stack([float(lo) + float(hi - lo) * (ramp + 0.5) for lo, hi in zip(low, high)])


def _texture(rng: np.random.Generator, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Faint sinusoidal stripes drifting over time: (3, T, H, W)."""
    freq, phase_speed = rng.uniform(4, 16), rng.uniform(-6, 6)
    angle = rng.uniform(0, math.pi)
    stripes = torch.sin(2 * math.pi * freq * (math.cos(angle) * x + math.sin(angle) * y) + phase_speed * t)
    weights = torch.as_tensor(rng.uniform(-0.15, 0.15, 3), dtype=torch.float32).view(3, 1, 1, 1)
    return weights * stripes


def _draw_shape(
    rng: np.random.Generator, video: torch.Tensor, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor, aspect: float
) -> torch.Tensor:
    """A disc or a rectangle with soft edges moving on a straight line, in a random colour."""
    start, end = rng.uniform(0.15, 0.85, 2), rng.uniform(0.15, 0.85, 2)
    cx, cy = start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t  # (T, 1, 1)
    radius = rng.uniform(0.08, 0.25)
    dx, dy = (x - cx) * aspect, y - cy
    if rng.random() < 0.5:
        distance = torch.sqrt(dx * dx + dy * dy) - radius
    else:
        distance = torch.maximum(dx.abs(), dy.abs()) - radius
    mask = torch.sigmoid(-distance * 200.0)  # (T, H, W), soft edge about half a percent wide
    colour = torch.as_tensor(rng.uniform(-1, 1, 3), dtype=torch.float32).view(3, 1, 1, 1)
    return video * (1 - mask) + colour * mask
