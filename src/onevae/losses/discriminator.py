"""A 3-D (spatio-temporal) PatchGAN discriminator for video, VQGAN's ``NLayerDiscriminator`` lifted to Conv3d.

Layout for ``num_layers`` = n (all kernels 3x4x4, temporal padding 1, spatial padding 1):

    conv(in -> c, stride (2, 2, 2)), LeakyReLU(0.2)
    n - 1 x  conv(stride (2, 2, 2)), norm, LeakyReLU(0.2)     channels c * min(2^i, 8)
    conv(stride 1), norm, LeakyReLU(0.2)
    conv(-> 1, stride 1)                                      patch logits (B, 1, t, h, w)

A temporal kernel of 3 with padding 1 and stride 2 maps T frames to ceil(T / 2) >= 1, so any clip length
works, one-frame clips (images) included: time is halved where T allows and stays 1 otherwise.
Spatially each strided layer halves H and W; the two stride-1 layers remove one pixel each, so frames need
H, W >= 2^n * 3 (12 for the default n = 2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import InputError, OneVAEError

NORMS = ("none", "group", "batch")
_KERNEL = (3, 4, 4)
_PADDING = (1, 1, 1)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(32, channels), channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.Identity()


class PatchDiscriminator3D(nn.Module):
    """Patch logits for videos (B, C, T, H, W) or images (B, C, H, W) (treated as T = 1)."""

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 2,
        norm: str = "none",
        use_spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise OneVAEError(f"discriminator norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if num_layers < 1:
            raise OneVAEError(f"discriminator num_layers must be at least 1, got {num_layers}")
        self.in_channels = in_channels
        self.num_layers = num_layers
        self.use_spectral_norm = use_spectral_norm
        bias = norm == "none"  # a norm layer after the conv makes its bias redundant (VQGAN)
        layers: list[nn.Module] = [self._conv(in_channels, base_channels, 2, True), nn.LeakyReLU(0.2)]
        channels = base_channels
        for i in range(1, num_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [self._conv(channels, out, stride, bias), _norm(norm, out), nn.LeakyReLU(0.2)]
            channels = out
        layers.append(self._conv(channels, 1, 1, True))
        self.main = nn.Sequential(*layers)
        for module in self.main:
            if isinstance(module, (nn.BatchNorm3d, nn.GroupNorm)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def _conv(self, cin: int, cout: int, stride: int, bias: bool) -> nn.Module:
        conv = nn.Conv3d(cin, cout, _KERNEL, stride, _PADDING, bias=bias)
        nn.init.normal_(conv.weight, 0.0, 0.02)  # VQGAN init, before spectral norm's power iteration
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
        return spectral_norm(conv) if self.use_spectral_norm else conv

    @property
    def min_size(self) -> int:
        """The smallest frame height/width that still gives at least one patch."""
        return 2**self.num_layers * 3

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() == 4:  # images (B, C, H, W) -> (B, C, 1, H, W)
            video = video.unsqueeze(2)
        if video.dim() != 5 or video.shape[1] != self.in_channels:
            raise InputError(f"discriminator expects (B, {self.in_channels}, T, H, W) videos, got {tuple(video.shape)}")
        if min(video.shape[-2:]) < self.min_size:
            raise InputError(f"discriminator needs frames of at least {self.min_size}x{self.min_size} pixels, got {video.shape[-2]}x{video.shape[-1]}")
        dtype = next(self.parameters()).dtype  # its own: trainer.precision bf16-true / 16-true casts it
        return self.main(video.to(dtype)).float()  # (B, 1, t, h, w) float32 logits


def _field(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if hasattr(config, name):
            return getattr(config, name)
    return default


def build_discriminator(config: Any) -> PatchDiscriminator3D:
    """From a :class:`~onevae.losses.config.DiscriminatorConfig` (or the training ``AdversarialConfig``)."""
    return PatchDiscriminator3D(
        in_channels=_field(config, "in_channels", default=3),
        base_channels=_field(config, "base_channels", default=64),
        num_layers=_field(config, "num_layers", default=2),
        norm=_field(config, "norm", default="none"),
        use_spectral_norm=_field(config, "use_spectral_norm", "spectral_norm", default=True),
    )
