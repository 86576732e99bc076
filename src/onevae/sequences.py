"""Decoding what a generative model generates.

Tokens (an autoregressive model): a flattened token sequence (docs/tokens.md order), one clip ``(N,)`` or a batch
``(B, N)``, with its grid given as a frame count and image size or as a latent grid. ``grid=(t, h, w)``: ``t`` latent
frames (the first frame included) of ``h x w`` positions — the whole grid for standard models, the low-resolution
"rest" grid for first-frame-high-res models (whose first frame then has ``2h x 2w`` positions). It means
``1 + (t-1)*tf`` frames of ``h*sf x w*sf`` pixels.

Latents (a diffusion model): a float tensor ``(z, t, h, w)`` or ``(B, z, t, h, w)``, raw or normalised as
``(z - mean) / std`` with the model's latent statistics; its shape is its grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .io.paths import existing_file
from .quantizers.fsq import ids_to_int64


@dataclass(frozen=True)
class SequenceGrid:
    """The clip a sequence describes and its token grids' (t, h, w, K)."""

    frames: int
    height: int
    width: int
    shapes: list[tuple[int, int, int, int]]

    @property
    def length(self) -> int:
        return sum(t * h * w * k for t, h, w, k in self.shapes)


def sequence_grid(config, frames: int | None = None, size: tuple[int, int] | None = None,
                  grid: tuple[int, int, int] | None = None) -> SequenceGrid:
    """The grids of a clip of ``frames`` frames at ``size`` (H, W), or of latent ``grid`` (t, h, w)."""
    tf, sf = config.temporal_factor, config.spatial_factor
    if grid is not None:
        t, h, w = grid
        if min(t, h, w) < 1:
            raise InputError(f"--grid values must be >= 1, got {t},{h},{w}")
        implied = (1 + (t - 1) * tf, h * sf, w * sf)
        if frames is not None and frames != implied[0]:
            raise InputError(f"--grid {t},{h},{w} means {implied[0]} frames for {config.name}, not --frames {frames}")
        if size is not None and tuple(size) != implied[1:]:
            raise InputError(f"--grid {t},{h},{w} means {implied[1]}x{implied[2]} pixels (HxW) for {config.name}, not --size {size[0]}x{size[1]}")
        frames, size = implied[0], implied[1:]
    if frames is None or size is None:
        raise InputError("give the sequence's grid: --frames N with --size HxW, or --grid t,h,w")
    height, width = size
    if frames < 1 or (frames - 1) % tf:
        raise InputError(f"{frames} frames is not 1 + k*{tf} for {config.name}")
    if height < 1 or width < 1 or height % sf or width % sf:
        raise InputError(f"{height}x{width} is not a multiple of {sf} for {config.name}")
    k = config.num_codebooks
    shapes = [(t, h, w, k) for t, h, w in config.latent_shapes(frames, height, width)]
    return SequenceGrid(frames, height, width, shapes)


def load_token_sequence(path: str | Path) -> torch.Tensor:
    """A sequence file (.npy, .safetensors with one tensor or a ``tokens`` tensor, .pt tensor or dict with
    ``tokens``) -> int64 (B, N)."""
    return as_sequence_batch(load_generated(path), str(path))


def load_generated(path: str | Path) -> torch.Tensor:
    """The tensor of a file a generative model wrote: .npy, .safetensors (one tensor, or one named ``tokens`` or
    ``latents``), .pt (a tensor or such a dict; read with ``weights_only=True``)."""
    path = existing_file(path, "token sequence or latent file", InputError)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            tensor = torch.from_numpy(np.load(path, allow_pickle=False))
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            tensor = _pick(load_file(str(path)), path)
        elif suffix in (".pt", ".pth"):
            tensor = torch.load(path, map_location="cpu", weights_only=True)
            tensor = _pick(tensor, path) if isinstance(tensor, dict) else tensor
        else:
            raise InputError(f"{path}: a token sequence or latent tensor must be .npy, .safetensors or .pt")
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - any unreadable file gets one line
        raise InputError(f"{path}: not a readable {suffix} file ({type(error).__name__}: {error})") from None
    if not isinstance(tensor, torch.Tensor):
        raise InputError(f"{path}: expected a tensor of token ids or latents, got {type(tensor).__name__}")
    return tensor


def _pick(tensors: dict, path: Path) -> torch.Tensor:
    for name in ("tokens", "latents"):
        if name in tensors:
            return tensors[name]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise InputError(f"{path} holds several tensors ({', '.join(map(str, tensors))}); name the one to decode 'tokens' or 'latents'")


def as_sequence_batch(tensor, source: str = "the sequence") -> torch.Tensor:
    """(N,) or (B, N) integers -> int64 (B, N); a batch of no sequence is refused."""
    if isinstance(tensor, np.ndarray):
        tensor = torch.from_numpy(tensor)
    if not isinstance(tensor, torch.Tensor):
        raise InputError(f"{source}: expected a tensor of token ids, got {type(tensor).__name__}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise InputError(f"{source}: token ids must be integers, got {tensor.dtype}")
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2:
        raise InputError(f"{source}: a token sequence must be (N,) or (B, N), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise InputError(f"{source} holds no sequence (a batch of 0, shape {tuple(tensor.shape)}): nothing to decode")
    return ids_to_int64(tensor, source)


def sequence_to_grids(sequence: torch.Tensor, grid: SequenceGrid, vocab_size: int, source: str = "the sequence") -> list[torch.Tensor]:
    """Check the length and the id range, then unflatten (B, N) into token grids [(B, t, h, w, K)]."""
    from .io.tokens import unflatten_tokens

    sequence = as_sequence_batch(sequence, source)
    if sequence.shape[1] != grid.length:
        raise InputError(
            f"{source} has {sequence.shape[1]} tokens per clip, but {grid.frames} frames of {grid.height}x{grid.width} (HxW) "
            f"(grids {[s[:3] for s in grid.shapes]} x {grid.shapes[0][3]} tokens) need {grid.length}")
    if sequence.numel():
        low, high = int(sequence.min()), int(sequence.max())
        if low < 0 or high >= vocab_size:
            raise InputError(f"{source}: token ids must lie in [0, {vocab_size}), got values in [{low}, {high}]")
    return unflatten_tokens(sequence, grid.shapes)


def require_tokens(model) -> None:
    if not model.config.discrete:
        raise InputError(f"{model.config.name} is a continuous-only model: it has no tokens to decode")


def decode_token_sequence(model, sequence, frames: int | None = None, size: tuple[int, int] | None = None,
                          grid: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Flattened token sequence(s) -> video (B, 3, T, H, W), not clamped (as ``decode_tokens``)."""
    require_tokens(model)
    shape = sequence_grid(model.config, frames, size, grid)
    grids = sequence_to_grids(sequence, shape, model.config.vocab_size)
    with torch.no_grad():
        return model.decode_tokens(grids, mode="stream", chunk_latents=2)


def write_sequence_videos(model, sequence: torch.Tensor, grid: SequenceGrid, outputs: list[Path], fps: float,
                          fingerprint: str, source: str = "the sequence", progress: bool = False, lossless: bool = False) -> int:
    """Decode each clip of a (B, N) batch to its own video file (or images: see decode_to_video), streamed;
    returns the frames written per clip."""
    from .io.tokens import token_meta_for
    from .pipeline import decode_to_video

    grids = sequence_to_grids(sequence, grid, model.config.vocab_size, source)
    written = 0
    for i, out in enumerate(outputs):
        meta = token_meta_for(model, "tokens", fps, fingerprint, frames=grid.frames)
        meta.grid_shapes = [list(g[i : i + 1].shape) for g in grids]
        written = decode_to_video(model, [g[i : i + 1] for g in grids], meta, out, size_mode_undo=False, progress=progress,
                                  fingerprint=fingerprint, lossless=lossless)
    return written


# ------------------------------------------------------------------------------------------------ latents
def as_latent_batch(tensor: torch.Tensor, config, source: str = "the latents") -> torch.Tensor:
    """Generated latents (z, t, h, w) or (B, z, t, h, w), float -> float32 (B, z, t, h, w), checked against the
    model: its z_dim, finite values, one grid (first-frame-high-res models' latents are two grids of different
    sizes, which one tensor cannot hold)."""
    if not tensor.is_floating_point():
        raise InputError(f"{source}: latents must be floating point, got {tensor.dtype}")
    if config.first_frame_highres:
        raise InputError(f"{source}: {config.name} keeps frame 0 at twice the resolution, so its latents are two grids, "
                         "which one tensor cannot hold; decode them in Python (model.decode_latents(Latents(first, rest))) "
                         "or from a file written by onevae encode --continuous")
    if tensor.dim() == 4:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 5:
        raise InputError(f"{source}: latents must be (z, t, h, w) or (B, z, t, h, w), got shape {tuple(tensor.shape)}")
    if tensor.shape[1] != config.z_dim:
        raise InputError(f"{source}: latents of {tensor.shape[1]} channels (dimension 1 of {tuple(tensor.shape)}), but "
                         f"{config.name} has z_dim {config.z_dim}")
    if 0 in tensor.shape:
        raise InputError(f"{source} holds no latent (shape {tuple(tensor.shape)}): nothing to decode")
    tensor = tensor.to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise InputError(f"{source}: the latents contain NaN or infinite values")
    return tensor


def write_latent_videos(model, latents: torch.Tensor, outputs: list[Path], fps: float, fingerprint: str,
                        normalized: bool = False, progress: bool = False, lossless: bool = False) -> int:
    """Decode each clip of (B, z, t, h, w) latents (``normalized``: stored as (z - mean) / std with the model's
    statistics) to its own file, streamed; returns the frames written per clip."""
    from .io.tokens import token_meta_for
    from .latent_stats import stats_tensors
    from .pipeline import decode_to_video

    stats = stats_tensors(model.config) if normalized else None
    frames = 1 + (latents.shape[2] - 1) * model.config.temporal_factor
    written = 0
    for i, out in enumerate(outputs):
        meta = token_meta_for(model, "latents", fps, fingerprint, frames=frames,
                              latent_normalization=None if stats is None else {"mean": stats[0].tolist(), "std": stats[1].tolist()})
        meta.grid_shapes = [list(latents[i : i + 1].shape)]
        written = decode_to_video(model, [latents[i : i + 1]], meta, out, size_mode_undo=False, progress=progress,
                                  fingerprint=fingerprint, lossless=lossless)
    return written
