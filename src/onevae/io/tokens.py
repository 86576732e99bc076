"""Token and latent files, and the flattening of token grids into one sequence.

A file is a safetensors archive: ``tokens.0``, ``tokens.1`` … (int32 grids (B, t, h, w, K), in the model's grid
order) or ``latents.0`` … (float grids (B, z, t, h, w)), plus one JSON string under the metadata key
``onevae`` (see :class:`TokenFileMeta`). Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..errors import CheckpointError, InputError, OneVAEError
from ..latents import Grids

FORMAT = "onevae-tokens"
FORMAT_VERSION = 1
KINDS = ("tokens", "latents")


@dataclass
class TokenFileMeta:
    """What a token/latent file records besides the grids."""

    kind: str  # tokens | latents
    model_name: str
    model_fingerprint: str  # hash of the model's config and weights (see onevae.checkpoints.model_fingerprint)
    model_config: dict[str, Any]
    grid_names: list[str]  # ["all"] or ["first_frame", "rest"]
    grid_shapes: list[list[int]]
    num_codebooks: int
    vocab_size: int
    fps: float
    source: dict[str, Any] = field(default_factory=dict)  # path, width, height, num_frames of the input
    fit: dict[str, Any] = field(default_factory=dict)  # resize/crop/pad applied (onevae.io.video.Geometry)
    frames: int = 0  # frames encoded (after fitting, before length padding)
    padded_frames: int = 0  # frames added at the end (repeat of the last frame) to reach 1 + k*tf
    format: str = FORMAT
    version: int = FORMAT_VERSION
    # latents stored normalised, (z - mean) / std per channel: {"mean": [...], "std": [...]} (decoding undoes it)
    latent_normalization: Optional[dict[str, list[float]]] = None

    def to_json(self) -> str:
        data = asdict(self)
        if data["latent_normalization"] is None:  # absent: files of raw latents and tokens stay readable by older versions
            del data["latent_normalization"]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, source: str) -> "TokenFileMeta":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise InputError(f"{source}: its metadata is not valid JSON") from None
        if data.get("format") != FORMAT:
            raise InputError(f"{source}: not a onevae token file (format {data.get('format')!r})")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise InputError(f"{source}: written by a newer onevae (format version {data['version']}); upgrade onevae")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(f"{source}: unexpected metadata fields ({exc})") from None


grid_names = Grids.names


def save_token_file(path: Union[str, Path], grids: list[torch.Tensor], meta: TokenFileMeta) -> None:
    """Write grids and metadata atomically."""
    from safetensors.torch import save_file

    from ..io.atomic import atomic_path

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
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"onevae": meta.to_json()})


def load_token_file(path: Union[str, Path]) -> tuple[list[torch.Tensor], TokenFileMeta]:
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
            grids = [f.get_tensor(f"{meta.kind}.{i}") for i in range(len(meta.grid_names))]
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable token file ({exc})") from None
    if meta.kind == "tokens":
        grids = [g.to(torch.int64) for g in grids]
    return grids, meta


def check_same_model(meta: TokenFileMeta, model, fingerprint: str, source: str) -> None:
    """Refuse to decode a file with a model other than the one that wrote it."""
    if meta.model_fingerprint != fingerprint:
        raise CheckpointError(
            f"{source} was encoded by model {meta.model_name!r} (fingerprint {meta.model_fingerprint}), "
            f"not by the model given ({model.config.name!r}, fingerprint {fingerprint}); decode it with --model pointing at that model"
        )


# ------------------------------------------------------------------------------------------ flattening
def flatten_tokens(grids: list[torch.Tensor]) -> torch.Tensor:
    """Token grids [(B, t, h, w, K), …] -> one sequence (B, N): grids in order, raster (t, h, w) within a
    grid, the K tokens of a position adjacent."""
    if not grids:
        raise InputError("no token grids to flatten")
    batch = grids[0].shape[0]
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
    """A summary for ``onevae info``."""
    shapes = meta.grid_shapes
    count = sum(_prod(s[1:]) for s in shapes) if meta.kind == "tokens" else None
    seconds = (meta.frames / meta.fps) if meta.fps else None
    return {
        "kind": meta.kind,
        "model": meta.model_name,
        "model_fingerprint": meta.model_fingerprint,
        "grids": dict(zip(meta.grid_names, shapes)),
        "tokens_per_clip": count,
        "vocab_size": meta.vocab_size if meta.kind == "tokens" else None,
        "fps": meta.fps,
        "frames": meta.frames,
        "padded_frames": meta.padded_frames,
        "duration_s": seconds,
        "source": meta.source,
        "fit": meta.fit,
        "format_version": meta.version,
        "latents": ("normalised per channel, (z - mean) / std (decode undoes it)" if meta.latent_normalization else "raw") if meta.kind == "latents" else None,
    }


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
