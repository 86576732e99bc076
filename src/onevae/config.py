"""Model configuration: one dataclass, saved as ``config.json`` next to every set of weights."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from .configtools import POSITIVE, Range, build_dataclass, unknown_keys_message
from .errors import CheckpointError, InputError, OneVAEError

# Spellings used by the official release and by Wan2.1 for the same constructor arguments.
_ALIASES = {"temperal_downsample": "temporal_downsample", "fe": "first_frame_highres", "tokens_per_position": "num_codebooks"}
# Keys of official config files that describe the network but are derived here (checked, then dropped).
_DERIVED = {"temporal_factor", "spatial_factor", "embed_dim"}
# Bounds that keep a config.json from asking for absurd allocations: far above every released model (widest
# stage 384 channels, 2 residual blocks, 4 down stages, 6 FSQ channels of at most 8 levels, 2 tokens per position).
MAX_STAGE_CHANNELS = 2048
MAX_STAGES = 8
MAX_VOCAB = 2**31 - 1  # tokens are stored as int32


@dataclass
class OneVAEConfig:
    """Architecture of a OneVAE tokenizer (a Wan2.1-style causal video VAE with an optional FSQ bottleneck).

    ``fsq_levels=None`` makes a continuous-only VAE (the Wan2.1 preset). Otherwise each latent position gives
    ``num_codebooks`` tokens, each from ``len(fsq_levels)`` FSQ channels and a vocabulary of ``prod(fsq_levels)``.

    ``latents_mean``/``latents_std`` (``z_dim`` values each, or None): per-channel statistics of the latents,
    which diffusion models see normalised as ``(z - mean) / std`` (see :mod:`onevae.latent_stats`). They describe
    the weights, not the architecture: they are left out of :meth:`to_dict` when None and of the model's
    fingerprint.
    """

    name: str = "custom"
    dim: Annotated[int, Range(1, MAX_STAGE_CHANNELS)] = 96
    z_dim: Annotated[int, Range(1, MAX_STAGE_CHANNELS)] = 256
    dim_mult: list[Annotated[int, Range(1, 64)]] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: Annotated[int, Range(1, 16)] = 2
    attn_scales: list[Annotated[float, POSITIVE]] = field(default_factory=list)
    temporal_downsample: list[bool] = field(default_factory=lambda: [True, True, True])
    dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    first_frame_highres: bool = False
    fsq_levels: list[Annotated[int, Range(2, 2 ** 16)]] | None = field(default_factory=lambda: [8, 8, 8, 5, 5, 5])
    num_codebooks: Annotated[int, Range(1, 64)] = 2
    latents_mean: list[float] | None = None
    latents_std: list[float] | None = None
    # the bottleneck's quantizer: "fsq" (OneVAE's, the default) or, for comparisons, "vq" / "lfq" from
    # vector-quantize-pytorch (see onevae.quantizers.factory); codebook_size/codebook_dim are theirs only
    quantizer: str = "fsq"
    codebook_size: Annotated[int, Range(2, MAX_VOCAB)] | None = None
    codebook_dim: Annotated[int, Range(1, MAX_STAGE_CHANNELS)] | None = None

    def __post_init__(self) -> None:
        self.dim_mult = [int(m) for m in self.dim_mult]
        self.temporal_downsample = [bool(t) for t in self.temporal_downsample]
        if not 2 <= len(self.dim_mult) <= MAX_STAGES:
            raise ValueError(f"dim_mult needs 2 to {MAX_STAGES} entries, got {len(self.dim_mult)}")
        if self.dim * max(self.dim_mult) > MAX_STAGE_CHANNELS:
            raise ValueError(f"dim * max(dim_mult) = {self.dim * max(self.dim_mult)} channels; at most {MAX_STAGE_CHANNELS} are supported")
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(
                f"temporal_downsample needs {len(self.dim_mult) - 1} entries (one per down stage), "
                f"got {len(self.temporal_downsample)}"
            )
        if self.first_frame_highres and len(self.dim_mult) < 3:
            raise ValueError("first_frame_highres needs at least two down stages")
        if self.fsq_levels is not None:
            self.fsq_levels = [int(level) for level in self.fsq_levels]
            if any(level < 2 for level in self.fsq_levels):
                raise ValueError(f"every FSQ level must be >= 2, got {self.fsq_levels}")
            if not 1 <= len(self.fsq_levels) <= 16 or math.prod(self.fsq_levels) > MAX_VOCAB:
                raise ValueError(f"fsq_levels {self.fsq_levels}: 1 to 16 levels with a vocabulary below 2**31 are supported")
        if self.quantizer != "fsq":
            from .quantizers.factory import check_quantizer_config

            check_quantizer_config(self)
        self._check_latent_stats()

    def _check_latent_stats(self) -> None:
        if (self.latents_mean is None) != (self.latents_std is None):
            raise InputError("latents_mean and latents_std must be given together (or neither)")
        if self.latents_mean is None:
            return
        for values in (self.latents_mean, self.latents_std):
            if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise InputError(f"latents_mean and latents_std must be lists of numbers, got {str(values)[:60]!r}")
        self.latents_mean = [float(v) for v in self.latents_mean]
        self.latents_std = [float(v) for v in self.latents_std]
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise InputError(
                f"latents_mean and latents_std need z_dim={self.z_dim} values each, "
                f"got {len(self.latents_mean)} and {len(self.latents_std)}"
            )
        if not all(math.isfinite(v) for v in self.latents_mean) or not all(math.isfinite(v) and v > 0 for v in self.latents_std):
            raise InputError("latents_mean must be finite and latents_std finite and positive")

    # ----------------------------------------------------------------------------------------- derived
    @property
    def discrete(self) -> bool:
        """Whether the model has a quantized bottleneck (tokens); every model has continuous latents."""
        return self.fsq_levels is not None or self.quantizer != "fsq"

    @property
    def embed_dim(self) -> int:
        """Channels of the quantized bottleneck: FSQ channels per token times tokens per position."""
        if self.quantizer != "fsq":
            from .quantizers.factory import channels_per_token

            return channels_per_token(self) * self.num_codebooks
        return len(self.fsq_levels) * self.num_codebooks if self.fsq_levels else 0

    @property
    def vocab_size(self) -> int:
        if self.quantizer != "fsq":
            return int(self.codebook_size)
        return math.prod(self.fsq_levels) if self.fsq_levels else 0

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def first_frame_spatial_factor(self) -> int:
        return self.spatial_factor // 2 if self.first_frame_highres else self.spatial_factor

    def latent_shapes(self, num_frames: int, height: int, width: int) -> list[tuple[int, int, int]]:
        """(t, h, w) of each latent grid for a valid input: [all] or [first frame, rest]."""
        t = 1 + (num_frames - 1) // self.temporal_factor
        h, w = height // self.spatial_factor, width // self.spatial_factor
        if not self.first_frame_highres:
            return [(t, h, w)]
        f = self.first_frame_spatial_factor
        return [(1, height // f, width // f), (t - 1, h, w)]

    def tokens_per_clip(self, num_frames: int, height: int, width: int) -> int:
        return sum(t * h * w for t, h, w in self.latent_shapes(num_frames, height, width)) * self.num_codebooks

    # -------------------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # optional fields at their defaults are left out, so that config files, token-file metadata and
        # fingerprints of models without them stay what they were before the fields existed
        for key, default in OPTIONAL_FIELD_DEFAULTS.items():
            if data[key] == default:
                del data[key]
        return data

    @property
    def has_latent_stats(self) -> bool:
        return self.latents_mean is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OneVAEConfig:
        """Build from our ``config.json`` or from an official-style config (``temperal_downsample`` ...)."""
        data = {_ALIASES.get(k, k): v for k, v in data.items()}
        derived = {k: data.pop(k) for k in list(data) if k in _DERIVED}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(unknown_keys_message(unknown, known, "model config"))
        try:
            config = build_dataclass(cls, data)
        except OneVAEError as exc:
            raise CheckpointError(f"model config: {exc}") from None
        for key, value in derived.items():
            if value is not None and getattr(config, key) != value:
                raise CheckpointError(f"config says {key}={value} but its architecture gives {getattr(config, key)}")
        return config

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> OneVAEConfig:
        data = read_config_json(path)
        try:
            return cls.from_dict(data)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}{unset_keys_note(data)}") from None

    def replace(self, **changes: Any) -> OneVAEConfig:
        return dataclasses.replace(self, **changes)


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The config mapping of a ``config.json`` (unwrapped when the file nests it under ``config``)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such config file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a valid JSON config ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a valid JSON config (nested too deeply)") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a config must be a JSON object")
    if isinstance(data.get("config"), dict):  # a file that wraps the config (e.g. the conformance fixtures)
        data = data["config"]
    return data


def unset_keys_note(data: dict[str, Any]) -> str:
    """For an error about a config file: the architecture keys it leaves to their defaults (a hand-written or
    truncated ``config.json`` without ``dim`` builds a 96-wide network, and the mismatch alone is a puzzle)."""
    given = {_ALIASES.get(k, k) for k in data}
    skipped = set(OPTIONAL_FIELD_DEFAULTS) | {"name"}
    unset = [f for f in dataclasses.fields(OneVAEConfig) if f.name not in given and f.name not in skipped]
    if not unset:
        return ""
    defaults = ", ".join(f"{f.name}={_field_default(f)!r}" for f in unset)
    return f"; the file does not set {', '.join(f.name for f in unset)}, so the defaults were used: {defaults}"


def _field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


# The fields of OneVAEConfig that describe the weights' latents rather than the architecture.
LATENT_STATS_FIELDS = ("latents_mean", "latents_std")

OPTIONAL_FIELD_DEFAULTS = {"latents_mean": None, "latents_std": None, "quantizer": "fsq", "codebook_size": None, "codebook_dim": None}


def architecture_fields(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict (``OneVAEConfig.to_dict()``, or one recorded in a file) without its latent statistics."""
    return {k: v for k, v in config.items() if k not in LATENT_STATS_FIELDS}


# ------------------------------------------------------------------------------------------------ presets
_OFFICIAL_BASE = dict(dim=96, z_dim=256, num_res_blocks=2, fsq_levels=[8, 8, 8, 5, 5, 5], num_codebooks=2)

PRESETS: dict[str, OneVAEConfig] = {
    # OneVAE_64000_FSQ_888_33_mt2: 8x8x8, two tokens per position.
    "onevae-888": OneVAEConfig(name="onevae-888", dim_mult=[1, 2, 4, 4], temporal_downsample=[True, True, True], **_OFFICIAL_BASE),
    # OneVAE_64000_FSQ_81616_33_mt2_fe: 8x16x16, first frame at 8x8.
    "onevae-81616-fe": OneVAEConfig(
        name="onevae-81616-fe", dim_mult=[1, 2, 4, 4, 4], temporal_downsample=[False, True, True, True],
        first_frame_highres=True, **_OFFICIAL_BASE,
    ),
    # OneVAE_64000_FSQ_161616_33_mt2_fe: 16x16x16, first frame at 8x8.
    "onevae-161616-fe": OneVAEConfig(
        name="onevae-161616-fe", dim_mult=[1, 2, 4, 4, 4], temporal_downsample=[True, True, True, True],
        first_frame_highres=True, **_OFFICIAL_BASE,
    ),
    # Wan2.1 VAE: 4x8x8, 16 latent channels, continuous only. Its per-channel latent statistics are those of
    # Wan's own wrapper (wan/modules/vae.py) and of diffusers' AutoencoderKLWan config (same values).
    "wan2.1": OneVAEConfig(
        name="wan2.1", dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
        temporal_downsample=[False, True, True], fsq_levels=None, num_codebooks=1,
        latents_mean=[
            -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
            0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
        ],
        latents_std=[
            2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
            3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
        ],
    ),
    # The small tokenizer trained by this project, shipped inside the package (see its MODEL_CARD.md and
    # docs/default_model.md): 4x8x8, two FSQ tokens per position (vocabulary 64,000), 11.7 M parameters. Stages 1-9 of
    # the shipped model trained it at dim 16 (7.6 M; their configs say `config: {dim: 16}`), stage 10 grew it to 20.
    "onevae-small": OneVAEConfig(
        name="onevae-small", dim=20, z_dim=32, dim_mult=[1, 2, 4, 8], num_res_blocks=1,
        temporal_downsample=[False, True, True], fsq_levels=[8, 8, 8, 5, 5, 5], num_codebooks=2,
    ),
}


def preset(name: str) -> OneVAEConfig:
    """A copy of a named preset config."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise CheckpointError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
