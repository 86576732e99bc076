"""Token and latent files, and the flattening of token grids into one sequence.

A file is a safetensors archive: ``tokens.0``, ``tokens.1`` … (int32 grids (B, t, h, w, K), in the model's grid
order) or ``latents.0`` … (float grids (B, z, t, h, w)), plus one JSON string under the metadata key
``onevae`` (see :class:`TokenFileMeta`). Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from ..config import architecture_fields
from ..configtools import NON_NEGATIVE, Range, build_dataclass
from ..errors import CheckpointError, InputError, OneVAEError
from ..latents import Grids
from ..quantizers.fsq import ids_to_int64
from .fit import parse_aspect

FORMAT = "onevae-tokens"
FORMAT_VERSION = 1
KINDS = ("tokens", "latents")
MAX_FPS = 10_000.0  # far above any camera; bounds the frames a decode may be asked to write per second of video


@dataclass
class TokenFileMeta:
    """What a token/latent file records besides the grids."""

    kind: Literal["tokens", "latents"]
    model_name: str
    model_fingerprint: str  # hash of the model's config and weights (see onevae.checkpoints.model_fingerprint)
    model_config: dict[str, Any]
    grid_names: list[Literal["all", "first_frame", "rest"]]  # ["all"] or ["first_frame", "rest"]
    grid_shapes: list[list[Annotated[int, NON_NEGATIVE]]]
    num_codebooks: Annotated[int, NON_NEGATIVE]
    vocab_size: Annotated[int, NON_NEGATIVE]
    fps: Annotated[float, Range(0, MAX_FPS, low_open=True)]
    # path, width, height, num_frames, fps, codec of the input, and its "sample_aspect_ratio" ("num:den"; a file
    # without it, written before it was recorded, has square pixels: see source_sample_aspect)
    source: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)  # resize/crop/pad applied (onevae.io.video.Geometry)
    frames: Annotated[int, NON_NEGATIVE] = 0  # frames encoded (after fitting, before length padding)
    padded_frames: Annotated[int, NON_NEGATIVE] = 0  # frames added at the end (repeat of the last frame) to reach 1 + k*tf
    format: str = FORMAT
    version: int = FORMAT_VERSION
    # latents stored normalised, (z - mean) / std per channel: {"mean": [...], "std": [...]} (decoding undoes it)
    latent_normalization: dict[str, list[float]] | None = None

    def to_json(self) -> str:
        data = asdict(self)
        if data["latent_normalization"] is None:  # absent: files of raw latents and tokens stay readable by older versions
            del data["latent_normalization"]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, source: str) -> TokenFileMeta:
        """Parse and validate the metadata's schema (types, choices, ranges), not yet against the tensors."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise InputError(f"{source}: its metadata is not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise InputError(f"{source}: not a onevae token file (format {found!r})")
        version = data.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InputError(f"{source}: invalid metadata: version must be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise InputError(f"{source}: written by a newer onevae (format version {version}); upgrade onevae")
        try:
            return build_dataclass(cls, data, "metadata", strict=True)
        except OneVAEError as exc:
            raise InputError(f"{source}: invalid metadata: {exc}") from None


grid_names = Grids.names


def save_token_file(path: str | Path, grids: Grids | list[torch.Tensor], meta: TokenFileMeta) -> None:
    """Write grids (:class:`~onevae.latents.Tokens`/``Latents`` or their list form) and metadata atomically."""
    if isinstance(grids, Grids):
        grids = grids.to_list()
    from ..io.atomic import write_safetensors

    if meta.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    path = Path(path)
    if not path.parent.is_dir():
        raise OneVAEError(f"cannot write {path}: the directory {path.parent} does not exist")
    tensors = {}
    for i, grid in enumerate(grids):
        grid = grid.detach().to("cpu").contiguous()
        tensors[f"{meta.kind}.{i}"] = grid.to(torch.int32) if meta.kind == "tokens" else grid  # no copy if already int32
    meta.grid_shapes = [list(g.shape) for g in grids]
    write_safetensors(path, tensors, metadata={"onevae": meta.to_json()})


def has_onevae_metadata(path: str | Path) -> bool | None:
    """Whether a safetensors file carries onevae's metadata (a token/latent file ``onevae encode`` wrote); None when
    it is not a readable safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return "onevae" in (f.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return None


def load_token_file(path: str | Path) -> tuple[list[torch.Tensor], TokenFileMeta]:
    """Read a token/latent file: grids (int64 tokens or float latents) and metadata."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such token file")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a token file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("onevae")
            if raw_meta is None:
                raise InputError(f"{path}: not a onevae token file (no onevae metadata)")
            meta = TokenFileMeta.from_json(raw_meta, str(path))
            names = [f"{meta.kind}.{i}" for i in range(len(meta.grid_names))]
            if sorted(f.keys()) != sorted(names):
                raise InputError(f"{path}: holds tensors {sorted(f.keys())}, its metadata names {names}")
            grids = [f.get_tensor(name) for name in names]
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable token file ({' '.join(str(exc).split())})") from None
    validate_token_file(grids, meta, str(path))
    if meta.kind == "tokens":
        grids = [ids_to_int64(g, str(path)) for g in grids]
    return grids, meta


def validate_token_file(grids: list[torch.Tensor], meta: TokenFileMeta, source: str) -> None:
    """Refuse a file whose tensors, metadata and recorded model contradict each other, so that neither
    ``decode`` nor ``info`` ever acts on, or shows, a claim the file does not hold."""
    from ..config import OneVAEConfig

    def refuse(message: str) -> None:
        raise InputError(f"{source}: {message}")

    try:
        config = OneVAEConfig.from_dict(meta.model_config)
    except OneVAEError as exc:
        raise InputError(f"{source}: invalid metadata: {exc}") from None
    if meta.grid_names != grid_names(config.first_frame_highres):
        refuse(f"grid names {meta.grid_names} do not fit its model (expected {grid_names(config.first_frame_highres)})")
    if meta.kind == "tokens":
        if not config.discrete:
            refuse("holds tokens, but its model is continuous only")
        if (meta.num_codebooks, meta.vocab_size) != (config.num_codebooks, config.vocab_size):
            refuse(f"metadata says {meta.num_codebooks} tokens per position from {meta.vocab_size} codes, its model "
                   f"{config.num_codebooks} from {config.vocab_size}")
    for i, grid in enumerate(grids):
        _check_grid(grid, meta.kind, config, refuse, name=meta.grid_names[i])
    if meta.grid_shapes != [list(g.shape) for g in grids]:
        refuse(f"metadata says grids {meta.grid_shapes}, the file holds {[list(g.shape) for g in grids]}")
    if len({g.shape[0] for g in grids}) != 1:
        refuse("its grids hold different batch sizes")
    time_dim = 1 if meta.kind == "tokens" else 2
    latent_frames = sum(g.shape[time_dim] for g in grids)
    decoded = 1 + (latent_frames - 1) * config.temporal_factor
    if meta.frames < 1 or meta.frames + meta.padded_frames != decoded:
        refuse(f"metadata says {meta.frames} + {meta.padded_frames} padded frames, its grids decode to {decoded}")
    rest = grids[-1]
    height, width = (rest.shape[2], rest.shape[3]) if meta.kind == "tokens" else (rest.shape[3], rest.shape[4])
    if config.first_frame_highres:
        first = grids[0]
        if first.shape[time_dim] != 1:
            refuse(f"its first-frame grid holds {first.shape[time_dim]} latent frames, not 1")
        fh, fw = (first.shape[2], first.shape[3]) if meta.kind == "tokens" else (first.shape[3], first.shape[4])
        if rest.shape[time_dim] and (fh, fw) != (2 * height, 2 * width):
            refuse(f"its first-frame grid ({fh}x{fw}) is not twice the size of the rest ({height}x{width})")
        height, width = fh * config.first_frame_spatial_factor, fw * config.first_frame_spatial_factor
    else:
        height, width = height * config.spatial_factor, width * config.spatial_factor
    if meta.fit:
        check_geometry(meta.fit, height, width, refuse)
    try:
        source_sample_aspect(meta.source)
    except InputError as exc:
        refuse(f"invalid metadata: source: {exc}")
    if meta.latent_normalization is not None:
        _check_normalization(meta, config, refuse)


def _check_normalization(meta: TokenFileMeta, config, refuse) -> None:
    """A recorded normalisation must be latents' and hold z_dim finite means and positive stds."""
    norm = meta.latent_normalization
    if meta.kind != "latents":
        refuse("records a latent normalisation, but holds tokens")
    if sorted(norm) != ["mean", "std"]:
        refuse(f"its latent normalisation must hold 'mean' and 'std', got {sorted(norm)}")
    try:
        config.replace(latents_mean=norm["mean"], latents_std=norm["std"])
    except OneVAEError as exc:
        refuse(f"invalid latent normalisation: {exc}")


def _check_grid(grid: torch.Tensor, kind: str, config, refuse, name: str) -> None:
    if kind == "tokens":
        if grid.dtype.is_floating_point or grid.dtype.is_complex or grid.dtype == torch.bool:
            refuse(f"token grid {name} has dtype {grid.dtype}; tokens are integers")
        channels_ok = grid.dim() == 5 and grid.shape[4] == config.num_codebooks
        layout = f"(B, t, h, w, {config.num_codebooks})"
    else:
        if not grid.dtype.is_floating_point:
            refuse(f"latent grid {name} has dtype {grid.dtype}; latents are floating point")
        if not bool(torch.isfinite(grid).all()):
            refuse(f"latent grid {name} holds NaN or inf values")
        channels_ok = grid.dim() == 5 and grid.shape[1] == config.z_dim
        layout = f"(B, {config.z_dim}, t, h, w)"
    if not channels_ok:
        refuse(f"{kind} grid {name} has shape {list(grid.shape)}, expected {layout}")
    time_dim = 1 if kind == "tokens" else 2
    sizes = [s for d, s in enumerate(grid.shape) if d != time_dim or name != "rest"]
    if min(sizes) < 1:
        refuse(f"{kind} grid {name} has an empty dimension: {list(grid.shape)}")


def check_geometry(fit: dict[str, Any], height: int, width: int, refuse) -> None:
    """The recorded fit (onevae.io.fit.Geometry) must be well-formed and produce the decoded ``height`` x ``width``."""
    from .fit import PADDING_MODES, SIZE_MODES, Geometry

    try:
        g = build_dataclass(Geometry, fit, "fit", strict=True)
    except OneVAEError as exc:
        refuse(f"invalid metadata: {exc}")
    sizes = (g.source_height, g.source_width, g.resized_height, g.resized_width, g.height, g.width, g.multiple)
    offsets = (g.crop_top, g.crop_left, g.pad_bottom, g.pad_right)
    if g.mode not in SIZE_MODES or g.padding not in PADDING_MODES or min(sizes) < 1 or min(offsets) < 0:
        refuse(f"invalid metadata: fit {fit} is not a valid geometry")
    if (g.height, g.width) != (height, width):
        refuse(f"metadata says frames of {g.height}x{g.width} (HxW), its grids decode to {height}x{width}")
    kept = {
        "crop": g.crop_top + g.height <= g.resized_height and g.crop_left + g.width <= g.resized_width and not (g.pad_bottom or g.pad_right),
        "pad": (g.height, g.width) == (g.resized_height + g.pad_bottom, g.resized_width + g.pad_right) and not (g.crop_top or g.crop_left),
        "resize": (g.height, g.width) == (g.resized_height, g.resized_width) and not (g.crop_top or g.crop_left or g.pad_bottom or g.pad_right),
    }[g.mode]
    if not kept:
        refuse(f"invalid metadata: fit {fit} is not a consistent {g.mode} geometry")


def source_sample_aspect(source: dict[str, Any]) -> Fraction:
    """The source's sample aspect ratio recorded in a token file's ``source`` (1, square pixels, when absent)."""
    value = source.get("sample_aspect_ratio")
    return Fraction(1) if value is None else parse_aspect(value)


def undone_size(fit: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of the frames a decode writes for a (validated) ``fit``, as Geometry.undo makes them."""
    h, w = fit["height"] - fit["pad_bottom"], fit["width"] - fit["pad_right"]
    if (fit["resized_height"], fit["resized_width"]) != (fit["source_height"], fit["source_width"]):
        h = round(h * fit["source_height"] / fit["resized_height"])
        w = round(w * fit["source_width"] / fit["resized_width"])
    return h, w


def check_same_model(meta: TokenFileMeta, model, fingerprint: str, source: str) -> None:
    """Refuse to decode a file with a model other than the one that wrote it. Latent statistics measured since
    (``onevae stats --save``) do not count: they are not part of the fingerprint either. A config not recorded
    (``{}``, a tokenized shard's clip) leaves the fingerprint alone to decide."""
    recorded = architecture_fields(meta.model_config)
    if meta.model_fingerprint != fingerprint or (recorded and recorded != architecture_fields(model.config.to_dict())):
        raise CheckpointError(
            f"{source} was encoded by model {meta.model_name!r} (fingerprint {meta.model_fingerprint}), "
            f"not by the model given ({model.config.name!r}, fingerprint {fingerprint}); decode it with --model pointing at that model"
        )


# ------------------------------------------------------------------------------------------ flattening
def flatten_tokens(grids: list[torch.Tensor] | Grids) -> torch.Tensor:
    """Token grids [(B, t, h, w, K), …] (or a :class:`~onevae.latents.Tokens`) -> one sequence (B, N): grids in
    order, raster (t, h, w) within a grid, the K tokens of a position adjacent."""
    if isinstance(grids, Grids):
        grids = grids.to_list()
    if not grids:
        raise InputError("no token grids to flatten")
    batch = grids[0].shape[0]
    if any(g.shape[0] != batch for g in grids):  # reshape(batch, -1) would mix the clips' tokens silently
        raise InputError(f"token grids of one sequence must hold the same clips, got batches of {[g.shape[0] for g in grids]}")
    return torch.cat([g.reshape(batch, -1) for g in grids], dim=1)


def unflatten_tokens(sequence: torch.Tensor, shapes: list[tuple[int, int, int, int]]) -> list[torch.Tensor]:
    """The inverse of :func:`flatten_tokens`: ``shapes`` are the grids' (t, h, w, K)."""
    expected = sum(t * h * w * k for t, h, w, k in shapes)
    if sequence.dim() != 2 or sequence.shape[1] != expected:
        raise InputError(f"a token sequence for grids {shapes} must be (B, {expected}), got {tuple(sequence.shape)}")
    grids, start = [], 0
    for t, h, w, k in shapes:
        n = t * h * w * k
        grids.append(sequence[:, start : start + n].reshape(sequence.shape[0], t, h, w, k))
        start += n
    return grids


def token_meta_for(model, kind: str, fps: float, fingerprint: str, **extra: Any) -> TokenFileMeta:
    config = model.config
    return TokenFileMeta(
        kind=kind, model_name=config.name, model_fingerprint=fingerprint, model_config=config.to_dict(),
        grid_names=grid_names(config.first_frame_highres), grid_shapes=[], num_codebooks=config.num_codebooks,
        vocab_size=config.vocab_size, fps=fps, **extra,
    )


def describe(meta: TokenFileMeta) -> dict[str, Any]:
    """A summary for ``onevae info``: what applies to the file's kind (tokens or latents), nothing set to None."""
    shapes = meta.grid_shapes
    info: dict[str, Any] = {
        "kind": meta.kind,
        "model": meta.model_name,
        "model_fingerprint": meta.model_fingerprint,
        "grids": dict(zip(meta.grid_names, shapes)),
    }
    if meta.kind == "tokens":
        info.update(tokens_per_clip=sum(_prod(s[1:]) for s in shapes), vocab_size=meta.vocab_size)
    else:
        info["latents"] = "normalised per channel, (z - mean) / std (decode undoes it)" if meta.latent_normalization else "raw"
    info.update(fps=meta.fps, frames=meta.frames, padded_frames=meta.padded_frames)
    if meta.fps:
        info["duration_s"] = meta.frames / meta.fps
    info.update(source=meta.source, fit=meta.fit, format_version=meta.version)
    return info


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
