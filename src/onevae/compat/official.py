"""The official release's tensor layout, for conformance fixtures and outside checks.

Latents and tokens are lists in the official order: ``[all]`` or, for first-frame-high-res models,
``[first_frame, rest]``. Latents are (B, z_dim, t, h, w) float; tokens are (B, t, h, w, num_codebooks) int64.
Videos are (B, 3, T, H, W) in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import torch

from ..checkpoints.official import load_official
from ..config import OneVAEConfig
from ..model import OneVAE


def load(weights_path: str, config: dict[str, Any]) -> OneVAE:
    """A model from official-naming weights (``.safetensors`` or Lightning ``.ckpt``) and an official-style
    config dict (``temperal_downsample`` accepted)."""
    model, _ = load_official(weights_path, OneVAEConfig.from_dict(dict(config)), strict=True)
    return model.eval()


@torch.no_grad()
def encode_latents(model: OneVAE, video: torch.Tensor) -> list[torch.Tensor]:
    return model.encode_latents(video).to_list()


@torch.no_grad()
def encode_tokens(model: OneVAE, video: torch.Tensor) -> list[torch.Tensor]:
    return model.encode_tokens(video).to_list()


@torch.no_grad()
def decode_tokens(model: OneVAE, tokens: list[torch.Tensor]) -> torch.Tensor:
    return model.decode_tokens(model.as_tokens(list(tokens)))


@torch.no_grad()
def decode_latents(model: OneVAE, latents: list[torch.Tensor]) -> torch.Tensor:
    return model.decode_latents(model.as_latents(list(latents)))
