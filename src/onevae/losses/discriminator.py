"""A 3-D (spatio-temporal) PatchGAN discriminator for video, as used with hinge loss in VQGAN-style training."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(32, channels), channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.Identity()


class PatchDiscriminator3D(nn.Module):
    """Stacked Conv3d (kernel 3x4x4; stride 2 in space, and in time while the clip is long enough),
    LeakyReLU(0.2), returning patch logits (B, 1, t, h, w). One-frame clips (images) work too: the temporal
    kernel is padded causally-agnostic (symmetric 1) so any T >= 1 keeps a valid shape."""

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 2, norm: str = "none", use_spectral_norm: bool = True) -> None:
        super().__init__()
        wrap = spectral_norm if use_spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [wrap(nn.Conv3d(in_channels, base_channels, (3, 4, 4), (1, 2, 2), (1, 1, 1))), nn.LeakyReLU(0.2)]
        channels = base_channels
        for i in range(1, num_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = (1, 2, 2) if i == num_layers else (2, 2, 2)
            layers += [wrap(nn.Conv3d(channels, out, (3, 4, 4), stride, (1, 1, 1), bias=norm == "none")), _norm(norm, out), nn.LeakyReLU(0.2)]
            channels = out
        layers.append(wrap(nn.Conv3d(channels, 1, (3, 4, 4), 1, (1, 1, 1))))
        self.main = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() == 4:  # images
            video = video.unsqueeze(2)
        return self.main(video)


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv3d):
        weight = getattr(module, "parametrizations", None)
        target = module.parametrizations.weight.original if weight is not None else module.weight
        nn.init.normal_(target, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm3d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_discriminator(config) -> PatchDiscriminator3D:
    """From an ``AdversarialConfig`` (onevae.train.config)."""
    return PatchDiscriminator3D(3, config.base_channels, config.num_layers, config.norm, config.spectral_norm)
