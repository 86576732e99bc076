"""Building blocks of the Wan2.1-style causal video VAE used by OneVAE.

Every block runs in two modes that give the same numbers:

* full-sequence (``cache=None``): the whole clip in one call, causal zero padding of the past;
* streaming (``cache`` is a :class:`StreamCache`): a clip fed chunk by chunk; each causal layer keeps the
  frames of the past it still needs, so memory is bounded by the chunk.

Module and parameter names match the official release (``residual.0.gamma``, ``resample.1.weight``,
``time_conv.weight`` ...) so that official checkpoints load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint


class StreamCache:
    """Per-layer causal context carried from one chunk to the next (streaming mode).

    Keys are the layers themselves (by identity); values are whatever the layer needs to continue the
    sequence (the last frames of its input, or a small state tuple).
    """

    def __init__(self) -> None:
        self._state: dict[int, object] = {}

    def get(self, layer: nn.Module) -> object:
        return self._state.get(id(layer))

    def set(self, layer: nn.Module, value: object) -> None:
        self._state[id(layer)] = value

    def num_bytes(self) -> int:
        """Bytes held by cached tensors (the streaming memory overhead)."""
        total = 0
        for value in self._state.values():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, torch.Tensor):
                    total += item.numel() * item.element_size()
        return total


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).permute(0, 2, 1, 3, 4)


class CausalConv3d(nn.Conv3d):
    """A Conv3d that pads the past with zeros (or with cached frames), never the future.

    The temporal padding is ``2 * padding_t`` frames on the left, concatenated here; the spatial padding
    (symmetric zeros) is left to the convolution, which does it without a padded copy of the input.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        pt, ph, pw = self.padding
        self._past = 2 * pt
        self.padding = (0, ph, pw)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        # x: (B, C, T, H, W)
        if self._past:
            x = torch.cat([self._past_frames(x, cache), x], dim=2)  # (B, C, past + T, H, W)
            if cache is not None:  # a copy: a view would keep the whole chunk alive in the cache
                cache.set(self, x[:, :, -self._past:].detach().clone())
        return super().forward(x)

    def _past_frames(self, x: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
        """The cached frames of the previous chunk, or zeros at the start of a stream or clip."""
        past = cache.get(self) if cache is not None else None
        return x.new_zeros(x.shape[:2] + (self._past,) + x.shape[3:]) if past is None else past


class RMSNorm(nn.Module):
    """``normalize(x over channels) * sqrt(C) * gamma``: Wan's RMS_norm, no bias.

    Without autograd the result is scaled in place: one full-size temporary instead of three.
    """

    EPS = 1e-12  # F.normalize's

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        shape = (dim, 1, 1) if images else (dim, 1, 1, 1)
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inverse_norm = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(self.EPS).reciprocal()  # (B, 1, ...)
        y = x * inverse_norm
        gain = self.gamma * self.scale
        return y * gain if torch.is_grad_enabled() else y.mul_(gain)


class SiLU(nn.SiLU):
    """SiLU, in place when no gradient is recorded. Only used right after an :class:`RMSNorm`, whose output
    is a fresh tensor that nothing else reads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=not torch.is_grad_enabled())


class ResidualBlock(nn.Module):
    """RMSNorm, SiLU, CausalConv3d 3x3x3, RMSNorm, SiLU, Dropout, CausalConv3d 3x3x3, plus a shortcut.

    ``activation_checkpointing``: in training (full-sequence), recompute the block in the backward pass
    instead of keeping its activations.
    """

    activation_checkpointing = False

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim),
            SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            SiLU(),
            nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        if self.activation_checkpointing and cache is None and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, None, use_reentrant=False)
        return self._forward(x, cache)

    def _forward(self, x: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions of each frame (no temporal mixing)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        identity = x
        b, c, t, h, w = x.shape
        y = self.norm(fold_time(x))  # (B*T, C, H, W)
        qkv = self.to_qkv(y).reshape(b * t, 1, c * 3, h * w).permute(0, 1, 3, 2)  # (BT, 1, HW, 3C)
        q, k, v = qkv.contiguous().chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)  # (BT, 1, HW, C)
        y = y.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w)
        return unfold_time(self.proj(y), b) + identity


class NearestUpsample2x(nn.Module):
    """Nearest-exact 2x spatial upsampling computed in float32 (as the official code does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=(2.0, 2.0), mode="nearest-exact").type_as(x)


class Resample(nn.Module):
    """Spatial (and optionally temporal) down- or up-sampling. The first frame never goes through the
    temporal part: ``downsample3d`` maps 1 + 2n frames to 1 + n, ``upsample3d`` maps 1 + n to 1 + 2n.
    """

    MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown resample mode {mode!r}")
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(NearestUpsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: torch.Tensor, cache: StreamCache | None = None) -> torch.Tensor:
        # x: (B, C, T, H, W)
        if self.mode == "upsample3d":
            x = self._temporal_upsample(x, cache)
        x = unfold_time(self.resample(fold_time(x)), x.shape[0])
        if self.mode == "downsample3d":
            x = self._temporal_downsample(x, cache)
        return x

    def _temporal_upsample(self, x: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
        """Frame 0 stays one frame; every later frame becomes two (the conv's two channel halves)."""
        first, rest = self._split_first_frame(x, cache)
        if rest.shape[2] == 0:
            return first
        y = self.time_conv(rest, cache)  # (B, 2C, n, H, W), zero past for frame 1
        b, c2, n, h, w = y.shape
        y = y.reshape(b, 2, c2 // 2, n, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c2 // 2, 2 * n, h, w)
        return torch.cat([first, y], dim=2)

    def _temporal_downsample(self, x: torch.Tensor, cache: StreamCache | None) -> torch.Tensor:
        """out[0] = x[0]; out[k] = conv(x[2k-2], x[2k-1], x[2k]) for k >= 1 (stride 2, no padding)."""
        if cache is None:
            windows = x
            first = x[:, :, :1]
        else:
            pending = cache.get(self)  # frames not yet consumed by a full window, or None at the start
            first = x[:, :, :1] if pending is None else x[:, :, :0]
            windows = x if pending is None else torch.cat([pending, x], dim=2)
            n = max(0, (windows.shape[2] - 1) // 2)
            cache.set(self, windows[:, :, 2 * n:].detach().clone())  # a copy, not a view of the chunk
        if windows.shape[2] < 3:
            return first
        return torch.cat([first, self.time_conv(windows)], dim=2)

    def _split_first_frame(self, x: torch.Tensor, cache: StreamCache | None) -> tuple[torch.Tensor, torch.Tensor]:
        if cache is None:
            return x[:, :, :1], x[:, :, 1:]
        if cache.get(self) is None:  # the stream's first call: its first frame is frame 0
            cache.set(self, True)
            return x[:, :, :1], x[:, :, 1:]
        return x[:, :, :0], x
