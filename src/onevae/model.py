"""OneVAE: one causal video VAE that gives both continuous latents and discrete FSQ tokens.

Representations (for a valid clip of T = 1 + k*tf frames, H and W multiples of sf):

* continuous latents: the encoder's deterministic mean, a list of grids (B, z_dim, t, h, w): ``[all]``, or for
  first-frame-high-res ("fe") models ``[first_frame, rest]`` with the first frame at twice the resolution;
* tokens: the same grids through Linear(z_dim -> K*d) and FSQ, int64 (B, t, h, w, K), K tokens per position.

Both decode with the same decoder. Two execution modes give the same numbers (to float rounding):
``mode="full"`` runs the whole clip in one pass (fastest, used for training); ``mode="stream"`` runs it chunk by
chunk with causal caches, so memory is bounded by the chunk whatever the clip length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import OneVAEConfig, preset
from .errors import InputError
from .nn.layers import StreamCache
from .nn.vae import CausalVAE
from .quantizers.factory import build_quantizer

Grids = list[torch.Tensor]
# Values a little outside [-1, 1] come from resampling filters and codecs: tolerate them, refuse the rest.
RANGE_TOLERANCE = 1e-2


@dataclass
class Padding:
    """What :meth:`OneVAE.pad_video` added (repeated last frame, replicated bottom/right edge)."""

    frames: int = 0
    height: int = 0
    width: int = 0

    def crop(self, video: torch.Tensor) -> torch.Tensor:
        """Undo the padding on a decoded video (B, 3, T, H, W)."""
        t, h, w = video.shape[2] - self.frames, video.shape[3] - self.height, video.shape[4] - self.width
        return video[:, :, :t, :h, :w]

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "height": self.height, "width": self.width}


@dataclass
class ModelOutput:
    """What a training forward pass returns."""

    recon: torch.Tensor  # (B, 3, T, H, W)
    latents: Grids  # continuous means
    logvars: Grids
    tokens: Optional[Grids]  # None on the continuous path
    decoded_latents: Grids  # what the decoder was given (latents, or their quantised version)


class OneVAE(nn.Module):
    """The tokenizer. Build it from a config or a preset name; load weights with :meth:`from_pretrained`
    (our directory format) or the functions of :mod:`onevae.checkpoints`."""

    def __init__(self, config: Union[OneVAEConfig, str]) -> None:
        super().__init__()
        self.config = preset(config) if isinstance(config, str) else config
        self.model = CausalVAE(self.config)
        if self.config.discrete:
            self.quant_conv = nn.Linear(self.config.z_dim, self.config.embed_dim)
            self.post_quant_conv = nn.Linear(self.config.embed_dim, self.config.z_dim)
            self.quantizer = build_quantizer(self.config)  # FSQ unless config.quantizer says otherwise

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_video(self, video: torch.Tensor, require_valid_size: bool = True) -> None:
        """Refuse, with one clear message, anything that is not a (B, 3, T, H, W) float video in [-1, 1]."""
        if not isinstance(video, torch.Tensor):
            raise InputError(f"video must be a torch.Tensor, got {type(video).__name__}")
        if video.dim() != 5:
            hint = " (add the batch dimension with video.unsqueeze(0))" if video.dim() == 4 else ""
            raise InputError(f"video must have 5 dimensions (B, 3, T, H, W), got shape {tuple(video.shape)}{hint}")
        if video.shape[1] != 3:
            raise InputError(f"video must have 3 channels (RGB) in dimension 1, got shape {tuple(video.shape)}")
        if video.numel() == 0:
            raise InputError(f"video is empty: shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise InputError(f"video must be a float tensor with values in [-1, 1], got {video.dtype}")
        lo, hi = float(video.min()), float(video.max())
        if not (torch.isfinite(torch.tensor([lo, hi])).all()):
            raise InputError("video contains NaN or infinite values")
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise InputError(
                f"video values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}] (uint8 frames map as x / 127.5 - 1)"
            )
        if require_valid_size:
            self._check_size(*video.shape[2:])

    def _check_size(self, t: int, h: int, w: int) -> None:
        tf, sf = self.config.temporal_factor, self.config.spatial_factor
        problems = []
        if (t - 1) % tf:
            problems.append(f"{t} frames is not 1 + k*{tf}")
        if h % sf or w % sf:
            problems.append(f"{h}x{w} is not a multiple of {sf}")
        if problems:
            raise InputError(
                f"{self.config.name} cannot take this clip: {'; '.join(problems)}. "
                "Pass pad=True to pad it (last frame repeated, bottom/right edge replicated) and crop back after decoding."
            )

    def pad_video(self, video: torch.Tensor) -> tuple[torch.Tensor, Padding]:
        """Pad (B, 3, T, H, W) to the next valid size: repeat the last frame, replicate the bottom/right edge."""
        self.check_video(video, require_valid_size=False)
        tf, sf = self.config.temporal_factor, self.config.spatial_factor
        t, h, w = video.shape[2:]
        padding = Padding(frames=(-(t - 1)) % tf, height=(-h) % sf, width=(-w) % sf)
        if padding.height or padding.width:
            b, c = video.shape[:2]
            flat = video.reshape(b, c * t, h, w)
            flat = F.pad(flat, (0, padding.width, 0, padding.height), mode="replicate")
            video = flat.reshape(b, c, t, h + padding.height, w + padding.width)
        if padding.frames:
            video = torch.cat([video, video[:, :, -1:].expand(-1, -1, padding.frames, -1, -1)], dim=2)
        return video, padding

    def _require_discrete(self) -> None:
        if not self.config.discrete:
            raise InputError(f"{self.config.name} is a continuous-only model: it has no tokens (use the latent functions)")

    # -------------------------------------------------------------------------------------- continuous
    def encode_moments(self, video: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mean, log-variance) per latent grid, full-sequence; used by training (KL term)."""
        self.check_video(video)
        return self.model.encode_moments(video)

    def encode_latents(self, video: torch.Tensor, mode: str = "full", chunk_frames: Optional[int] = None, pad: bool = False) -> Grids:
        """Video (B, 3, T, H, W) in [-1, 1] -> continuous latent grids (the encoder's mean)."""
        if pad:
            video, _ = self.pad_video(video)
        self.check_video(video)
        if mode == "full":
            return [mean for mean, _ in self.model.encode_moments(video)]
        if mode == "stream":
            chunk = chunk_frames or self.config.temporal_factor
            encoder = StreamingEncoder(self, chunk_frames=chunk)
            parts = [encoder.push(video[:, :, :1])]
            parts += [encoder.push(video[:, :, i : i + chunk]) for i in range(1, video.shape[2], chunk)]
            parts.append(encoder.finish()[0])  # a last chunk shorter than chunk_frames (no padding: T is valid)
            return concat_grids([p for p in parts if p])
        raise InputError(f"mode must be 'full' or 'stream', got {mode!r}")

    def decode_latents(self, latents: Grids, mode: str = "full", chunk_latents: int = 1) -> torch.Tensor:
        """Continuous latent grids -> video (B, 3, T, H, W), not clamped (clamp to [-1, 1] for display)."""
        latents = self._check_grids(latents)
        if mode == "full":
            return self.model.decode(latents)
        if mode == "stream":
            decoder = StreamingDecoder(self)
            return torch.cat(list(decoder.iter_decode(latents, chunk_latents)), dim=2)
        raise InputError(f"mode must be 'full' or 'stream', got {mode!r}")

    def _check_grids(self, grids: Grids) -> Grids:
        expected = 2 if self.config.first_frame_highres else 1
        if not isinstance(grids, (list, tuple)) or len(grids) != expected:
            names = "[first_frame, rest]" if expected == 2 else "[all]"
            raise InputError(f"{self.config.name} expects a list of {expected} latent grid(s) {names}")
        for grid in grids:
            if not isinstance(grid, torch.Tensor) or grid.dim() != 5 or grid.shape[1] != self.config.z_dim:
                shape = tuple(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__
                raise InputError(f"latent grids must be (B, {self.config.z_dim}, t, h, w), got {shape}")
        if expected == 2:
            first, rest = grids
            if first.shape[2] != 1:
                raise InputError(f"the first-frame latent must hold 1 frame, got {first.shape[2]}")
            if rest.shape[2] and (first.shape[3] != 2 * rest.shape[3] or first.shape[4] != 2 * rest.shape[4]):
                raise InputError(f"the first-frame latent must be twice the size of the rest: {tuple(first.shape)} vs {tuple(rest.shape)}")
        elif grids[0].shape[2] == 0:
            raise InputError("the latent grid holds no frames")
        return list(grids)

    # ---------------------------------------------------------------------------------------- discrete
    def project(self, latents: Grids) -> Grids:
        """Latent grids (B, z, t, h, w) -> FSQ inputs (B, t, h, w, K*d) (before bounding and rounding)."""
        self._require_discrete()
        return [self.quant_conv(grid.permute(0, 2, 3, 4, 1)) for grid in latents]

    def quantize(self, latents: Grids) -> tuple[Grids, Grids]:
        """Latent grids -> (their quantised version for the decoder, with a straight-through gradient; tokens)."""
        quantised, tokens = [], []
        for pre in self.project(latents):
            codes, indices = self.quantizer(pre)  # (B, t, h, w, K*d), (B, t, h, w, K)
            quantised.append(self._codes_to_latent(codes))
            tokens.append(indices)
        return quantised, tokens

    def _codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        return self.post_quant_conv(codes.to(self.post_quant_conv.weight.dtype)).permute(0, 4, 1, 2, 3)

    def latents_to_tokens(self, latents: Grids) -> Grids:
        return self.quantize(latents)[1]

    def tokens_to_latents(self, tokens: Grids) -> Grids:
        """Token grids (B, t, h, w, K) -> the decoder's input grids (B, z, t, h, w)."""
        self._require_discrete()
        expected = 2 if self.config.first_frame_highres else 1
        if not isinstance(tokens, (list, tuple)) or len(tokens) != expected:
            raise InputError(f"{self.config.name} expects a list of {expected} token grid(s)")
        for grid in tokens:
            if not isinstance(grid, torch.Tensor) or grid.dim() != 5:
                raise InputError(f"token grids must be (B, t, h, w, {self.config.num_codebooks}) integer tensors")
        return [self.token_grid_to_latent(grid) for grid in tokens]

    def token_grid_to_latent(self, grid: torch.Tensor) -> torch.Tensor:
        """One token grid (B, t, h, w, K) -> the decoder's input grid (B, z, t, h, w) (any number of frames)."""
        self._require_discrete()
        return self._codes_to_latent(self.quantizer.indices_to_codes(grid.to(self.device)))

    def encode_tokens(self, video: torch.Tensor, mode: str = "full", chunk_frames: Optional[int] = None, pad: bool = False) -> Grids:
        """Video (B, 3, T, H, W) in [-1, 1] -> token grids, int64 (B, t, h, w, K) in [0, vocab_size)."""
        self._require_discrete()
        return self.latents_to_tokens(self.encode_latents(video, mode, chunk_frames, pad))

    def decode_tokens(self, tokens: Grids, mode: str = "full", chunk_latents: int = 1) -> torch.Tensor:
        """Token grids -> video (B, 3, T, H, W), not clamped."""
        return self.decode_latents(self.tokens_to_latents(tokens), mode, chunk_latents)

    # ---------------------------------------------------------------------------------------- training
    def forward(self, video: torch.Tensor, discrete: bool = True) -> ModelOutput:
        """Full-sequence reconstruction through the discrete (FSQ, straight-through) or continuous path."""
        moments = self.encode_moments(video)
        latents = [mean for mean, _ in moments]
        tokens = None
        decoded = latents
        if discrete:
            decoded, tokens = self.quantize(latents)
        recon = self.model.decode(decoded)
        return ModelOutput(recon, latents, [logvar for _, logvar in moments], tokens, decoded)

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor, discrete: bool = True, mode: str = "full") -> torch.Tensor:
        """Encode and decode any clip (padded to a valid size, cropped back), output clamped to [-1, 1]."""
        padded, padding = self.pad_video(video)
        latents = self.encode_latents(padded, mode)
        if discrete:
            recon = self.decode_tokens(self.latents_to_tokens(latents), mode)
        else:
            recon = self.decode_latents(latents, mode)
        return padding.crop(recon).clamp(-1, 1)

    # -------------------------------------------------------------------------------- pretrained format
    @classmethod
    def from_pretrained(cls, path: Union[str, Path], device: Union[str, torch.device] = "cpu", dtype: Optional[torch.dtype] = None) -> "OneVAE":
        """Load a model directory (``config.json`` + ``model.safetensors``) or a preset name with no weights."""
        from .checkpoints.pretrained import load_pretrained

        return load_pretrained(path, device=device, dtype=dtype)

    def save_pretrained(
        self, path: Union[str, Path], metadata: Optional[dict[str, str]] = None, dtype: Optional[torch.dtype] = None
    ) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``path`` (atomically); ``dtype`` (e.g.
        ``torch.float16``) stores the weights in that precision."""
        from .checkpoints.pretrained import save_pretrained

        save_pretrained(self, path, metadata=metadata, dtype=dtype)


def concat_grids(parts: list[Grids], time_dim: int = 2) -> Grids:
    """Concatenate per-chunk grid lists along time (dim 2 for latents (B, z, t, h, w), dim 1 for tokens
    (B, t, h, w, K)); for fe models the first chunk holds [first, rest]."""
    width = max(len(p) for p in parts)
    out: list[list[torch.Tensor]] = [[] for _ in range(width)]
    for part in parts:
        for i, grid in enumerate(part):
            out[i + width - len(part)].append(grid)
    return [torch.cat(pieces, dim=time_dim) for pieces in out]


class StreamingEncoder:
    """Encode a clip pushed piece by piece (any piece sizes), holding only causal caches between pieces.

    The first push must start with frame 0. Frames are processed as frame 0 alone, then chunks of
    ``chunk_frames`` (a multiple of the temporal factor), as the official code does. ``finish`` pads the last
    incomplete chunk by repeating the last frame and returns the number of frames added.
    """

    def __init__(self, model: OneVAE, chunk_frames: Optional[int] = None, tokens: bool = False) -> None:
        tf = model.config.temporal_factor
        self.chunk = chunk_frames or tf
        if self.chunk % tf:
            raise InputError(f"chunk_frames must be a multiple of the temporal factor {tf}, got {self.chunk}")
        self.model = model
        self.tokens = tokens
        self.cache = StreamCache()
        self.pending: Optional[torch.Tensor] = None
        self.started = False
        self.frames_in = 0
        self.time_dim = 1 if tokens else 2

    def push(self, frames: torch.Tensor) -> Grids:
        """Frames (B, 3, t, H, W) -> grids of the latent frames completed so far (possibly empty in time)."""
        self.model.check_video(frames, require_valid_size=False)
        self.model._check_size(1, *frames.shape[3:])
        self.frames_in += frames.shape[2]
        self.pending = frames if self.pending is None else torch.cat([self.pending, frames], dim=2)
        parts: list[Grids] = []
        if not self.started:
            parts.append(self._encode(self.pending[:, :, :1]))
            self.pending = self.pending[:, :, 1:]
            self.started = True
        while self.pending.shape[2] >= self.chunk:
            parts.append(self._encode(self.pending[:, :, : self.chunk]))
            self.pending = self.pending[:, :, self.chunk :]
        return concat_grids(parts, self.time_dim) if parts else self._empty()

    def finish(self) -> tuple[Grids, int]:
        """Encode what is left, padded with copies of the last frame to a whole number of latent frames."""
        if self.pending is None or self.pending.shape[2] == 0:
            return self._empty(), 0
        tf = self.model.config.temporal_factor
        added = (-self.pending.shape[2]) % tf
        last = self.pending[:, :, -1:].expand(-1, -1, added, -1, -1)
        grids = self._encode(torch.cat([self.pending, last], dim=2))
        self.pending = self.pending[:, :, :0]
        return grids, added

    @torch.no_grad()
    def _encode(self, frames: torch.Tensor) -> Grids:
        latents = [mean for mean, _ in self.model.model.encode_moments(frames, self.cache)]
        return self.model.latents_to_tokens(latents) if self.tokens else latents

    def _empty(self) -> Grids:
        return []


class StreamingDecoder:
    """Decode latent grids chunk by chunk with causal caches (memory bounded by the chunk)."""

    def __init__(self, model: OneVAE) -> None:
        self.model = model
        self.cache = StreamCache()
        self.started = False

    @torch.no_grad()
    def push(self, grids: Grids) -> torch.Tensor:
        """Latent grids of the next latent frames (the first push of an fe model: [first, rest]) -> frames."""
        frames = self.model.model.decode(grids, self.cache)
        self.started = True
        return frames

    def iter_decode(self, latents: Grids, chunk_latents: int = 1) -> Iterator[torch.Tensor]:
        """Yield decoded frames chunk by chunk: frame 0 first, then ``chunk_latents`` latent frames at a time."""
        rest = latents[-1]
        if self.model.config.first_frame_highres:
            yield self.push([latents[0], rest[:, :, :0]])
            start = 0
        else:
            yield self.push([rest[:, :, :1]])
            start = 1
        for i in range(start, rest.shape[2], chunk_latents):
            yield self.push([rest[:, :, i : i + chunk_latents]])

