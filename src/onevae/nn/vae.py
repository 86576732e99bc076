"""The causal 3-D convolutional encoder and decoder (Wan2.1 layout, OneVAE's first-frame high-res option).

Attribute names follow the official release so that its state dicts load unchanged:
``encoder.{conv1,downsamples,middle,head}``, ``conv1``/``conv2`` (1x1x1 around the latent),
``decoder.{conv1,middle,upsamples,head,downsample_highres_first,upsample_highres}``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import OneVAEConfig
from ..latents import Latents
from .layers import (
    AttentionBlock,
    CausalConv3d,
    Resample,
    ResidualBlock,
    RMSNorm,
    SiLU,
    StreamCache,
    fold_time,
    unfold_time,
)


def _run(layers: nn.Sequential | list[nn.Module], x: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
    """Apply layers in order, passing the stream cache to those that keep causal context."""
    for layer in layers:
        x = layer(x, cache) if isinstance(layer, (CausalConv3d, ResidualBlock, AttentionBlock, Resample)) else layer(x)
    return x


def _head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(RMSNorm(in_dim), SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1))


def _is_stream_start(owner: nn.Module, cache: StreamCache | None) -> bool:
    """True for a full-sequence call and for the first chunk of a stream (the one holding frame 0)."""
    if cache is None:
        return True
    started = cache.get(owner) is not None
    cache.set(owner, True)
    return not started


class Encoder3d(nn.Module):
    """Video (B, 3, T, H, W) -> features (B, 2*z_dim, 1 + (T-1)/tf, H/sf, W/sf).

    With ``first_frame_highres``, frame 0 also leaves at twice the spatial resolution: its features are taken
    before the last spatial down-sampling and sent, without caches, through the same later layers.
    """

    def __init__(self, config: OneVAEConfig) -> None:
        super().__init__()
        dim, dropout = config.dim, config.dropout
        dims = [dim * m for m in [1] + config.dim_mult]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers: list[nn.Module] = []
        scale = 1.0
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(config.num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim, dropout))
                if scale in config.attn_scales:
                    layers.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if i != len(config.dim_mult) - 1:
                mode = "downsample3d" if config.temporal_downsample[i] else "downsample2d"
                layers.append(Resample(out_dim, mode))
                scale /= 2.0
        self.downsamples = nn.Sequential(*layers)
        self.middle = nn.Sequential(ResidualBlock(out_dim, out_dim, dropout), AttentionBlock(out_dim), ResidualBlock(out_dim, out_dim, dropout))
        self.head = _head(out_dim, config.z_dim * 2)
        resamples = [i for i, layer in enumerate(layers) if isinstance(layer, Resample)]
        self.highres_index: int | None = resamples[-1] if config.first_frame_highres else None

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (features of the sequence, high-res features of frame 0 or None)."""
        with_highres = self.highres_index is not None and _is_stream_start(self, cache)
        x = self.conv1(x, cache)
        highres = None
        for i, layer in enumerate(self.downsamples):
            if with_highres and i == self.highres_index:
                highres = x[:, :, :1]  # (B, C, 1, H/(sf/2), W/(sf/2)): frame 0 before the last spatial stride
            x = layer(x, cache)
        x = _run(self.head, _run(self.middle, x, cache), cache)
        if highres is not None:
            rest = list(self.downsamples)[self.highres_index + 1:]
            highres = _run(self.head, _run(self.middle, _run(rest, highres, None), None), None)
        return x, highres


class HighresProjection(nn.Module):
    """1x1 Conv2d applied per frame (the decoder's ``upsample_highres``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.resample = nn.Conv2d(in_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unfold_time(self.resample(fold_time(x)), x.shape[0])


class Decoder3d(nn.Module):
    """Latent (B, z_dim, t, h, w) -> video (B, 3, 1 + (t-1)*tf, h*sf, w*sf), not clamped.

    With ``first_frame_highres`` the stream's frame 0 is a learned stride-2 down-sampling of the high-res
    first-frame latent; after the first up-sampling stage it is replaced by the high-res latent decoded through
    the same early layers, and later frames see it through the causal context.
    """

    def __init__(self, config: OneVAEConfig) -> None:
        super().__init__()
        dim, dropout = config.dim, config.dropout
        dims = [dim * m for m in [config.dim_mult[-1]] + config.dim_mult[::-1]]
        temporal_upsample = config.temporal_downsample[::-1]
        scale = 1.0 / 2 ** (len(config.dim_mult) - 2)
        self.conv1 = CausalConv3d(config.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0], dropout), AttentionBlock(dims[0]), ResidualBlock(dims[0], dims[0], dropout))
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim = in_dim // 2  # every up-sampling halves the channels
            for _ in range(config.num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim, dropout))
                if scale in config.attn_scales:
                    layers.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if i != len(config.dim_mult) - 1:
                layers.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
                scale *= 2.0
        self.upsamples = nn.Sequential(*layers)
        self.head = _head(out_dim, 3)
        self.highres_index: int | None = None
        if config.first_frame_highres:
            self.highres_index = next(i for i, layer in enumerate(layers) if isinstance(layer, Resample))
            self.downsample_highres_first = Resample(config.z_dim, "downsample2d")
            self.upsample_highres = HighresProjection(dims[0], dims[1] // 2)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None, highres: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: conv2-projected latent frames of this chunk; ``highres``: the first-frame latent (fe models,
        first chunk only), which then becomes frame 0 of the stream."""
        if highres is not None:
            x = torch.cat([self.downsample_highres_first(highres), x], dim=2)
            highres = self._decode_highres_first(highres)
        x = _run(self.middle, self.conv1(x, cache), cache)
        for i, layer in enumerate(self.upsamples):
            x = layer(x, cache)
            if highres is not None and i == self.highres_index:
                x = torch.cat([highres, x[:, :, 1:]], dim=2)
        return _run(self.head, x, cache)

    def _decode_highres_first(self, z: torch.Tensor) -> torch.Tensor:
        """The first-frame latent (B, z, 1, 2h, 2w) through conv1, middle and stage 0, at high resolution."""
        x = _run(self.middle, self.conv1(z), None)
        x = _run(list(self.upsamples)[: self.highres_index], x, None)
        return self.upsample_highres(x)


class CausalVAE(nn.Module):
    """Encoder, the 1x1x1 ``conv1`` (to mean and log-variance) and ``conv2`` (before the decoder), decoder."""

    def __init__(self, config: OneVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder3d(config)
        self.conv1 = CausalConv3d(config.z_dim * 2, config.z_dim * 2, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder3d(config)

    def encode_moments(self, video: torch.Tensor, cache: StreamCache | None = None) -> tuple[Latents, Latents]:
        """Video (B, 3, T, H, W) -> (mean, log-variance) latents. For fe models, frame 0's normal-resolution
        slot is replaced by its high-res latent (``first``) in the first chunk of a stream."""
        features, highres = self.encoder(video.to(self.conv1.weight.dtype), cache)
        mean, logvar = self.conv1(features).chunk(2, dim=1)  # (B, z, t, h, w) each
        if highres is None:
            return Latents(mean), Latents(logvar)
        first_mean, first_logvar = self.conv1(highres).chunk(2, dim=1)  # (B, z, 1, 2h, 2w) each
        return Latents(mean[:, :, 1:], first_mean), Latents(logvar[:, :, 1:], first_logvar)

    def decode(self, latents: Latents, cache: StreamCache | None = None) -> torch.Tensor:
        """Latents (a whole clip or the next piece of a stream) -> video (B, 3, T, H, W), not clamped."""
        latents = latents.to(self.conv2.weight.dtype)
        if latents.first is None:
            return self.decoder(self.conv2(latents.rest), cache)
        rest = self.conv2(latents.rest) if latents.rest.shape[2] else latents.rest  # an image has no later frames
        return self.decoder(rest, cache, highres=latents.first)  # the first frame skips conv2
