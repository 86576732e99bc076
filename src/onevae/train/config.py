"""Training configuration: dataclasses that YAML files in ``configs/`` map onto, with ``a.b=value`` overrides.

The resolved config is written next to every run (``config.yaml``) and every exported model.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ..config import OneVAEConfig, preset
from ..configtools import build_dataclass
from ..errors import OneVAEError
from ..losses.config import LossConfig


@dataclass
class ModelSection:
    """Which network to train and where its first weights come from."""

    preset: Optional[str] = "onevae-small"
    config: dict[str, Any] = field(default_factory=dict)  # OneVAEConfig fields that override the preset
    init_from: Optional[str] = None  # model dir, official .ckpt/.safetensors, Wan2.1 .pth or diffusers folder, or our training .ckpt
    init_format: str = "auto"  # auto | onevae | official | wan | diffusers | training
    init_use_ema: bool = False
    trust_checkpoint: bool = False


@dataclass
class ScheduleConfig:
    """How training moves between the continuous and the discrete path (see docs/training.md).

    ``kind``: ``continuous`` (never quantise), ``switch`` (abrupt: discrete from ``start_step`` on), ``ramp``
    (the probability that a step uses the discrete path rises linearly from 0 to ``final_discrete`` over
    ``ramp_steps`` steps from ``start_step``), ``interpolate`` (the decoder gets (1-a)*z + a*quant(z) with a
    ramped the same way), ``joint`` (both paths at once: losses summed with the two weights, or one path per
    step sampled with probability ``final_discrete`` when ``joint_mode`` is ``sample``).
    """

    kind: str = "ramp"
    start_step: int = 0
    ramp_steps: int = 1000
    final_discrete: float = 1.0
    joint_mode: str = "sum"  # sum | sample
    continuous_weight: float = 1.0
    discrete_weight: float = 1.0


@dataclass
class OptimConfig:
    """AdamW with the official defaults (lr 5e-5, betas (0.5, 0.9), eps 1e-6, weight decay 0.1)."""

    lr: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.9)
    eps: float = 1e-6
    weight_decay: float = 0.1
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine
    schedule_steps: Optional[int] = None  # horizon of the cosine decay; None: trainer.max_steps
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    disc_lr: Optional[float] = None  # None: same as lr


@dataclass
class EMAConfig:
    enabled: bool = True
    decay: float = 0.9999
    warmup: bool = False  # decay = min(decay, (1 + n) / (10 + n)) early on, for short runs
    validate_with_ema: bool = True


@dataclass
class DataSection:
    kind: str = "files"  # files | webdataset | procedural
    sources: list[str] = field(default_factory=list)
    num_frames: int = 17
    height: int = 128
    width: int = 128
    fps: Optional[float] = None
    random_crop_scale: tuple[float, float] = (0.6, 1.0)
    hflip: bool = True
    simulate_motion: bool = False
    batch_size: int = 2
    num_workers: int = 0
    exclude: list[str] = field(default_factory=lambda: ["carphone_pristine*"])
    num_samples: int = 64  # procedural only


@dataclass
class ValidationConfig:
    sources: list[str] = field(default_factory=list)  # held-out videos; empty: procedural clips
    num_clips: int = 2
    num_frames: int = 17
    height: int = 128
    width: int = 128
    every_n_steps: int = 500
    save_media: bool = True


@dataclass
class TrainerSection:
    max_steps: int = 1000
    accelerator: str = "auto"
    devices: Union[int, str] = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp
    precision: str = "32-true"  # 32-true | bf16-mixed
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 500
    activation_checkpointing: bool = False
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes, e.g. ["model.encoder"]
    nonfinite: str = "skip"  # skip | stop: what to do with a step whose loss is NaN/inf
    max_nonfinite: int = 10  # consecutive skipped steps before training stops
    collapse_patience: int = 200  # steps of flat-colour output (recon std < 1e-3) before training stops
    progress_bar: bool = True
    export_ema: bool = True


@dataclass
class TrainConfig:
    stage: str = "discrete"  # continuous | discrete | joint
    seed: int = 0
    output_dir: str = "runs/onevae"
    model: ModelSection = field(default_factory=ModelSection)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    data: DataSection = field(default_factory=DataSection)
    val: ValidationConfig = field(default_factory=ValidationConfig)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def model_config(self) -> OneVAEConfig:
        """The architecture to train: the preset with ``model.config`` overrides."""
        base = preset(self.model.preset) if self.model.preset else OneVAEConfig()
        base = base.replace(latents_mean=None, latents_std=None)  # trained weights have latents of their own: `onevae stats` measures them
        config = OneVAEConfig.from_dict({**base.to_dict(), **self.model.config})
        if self.stage != "continuous" and not config.discrete:
            raise OneVAEError(f"the {self.stage} stage needs an FSQ bottleneck: set model.config.fsq_levels")
        return config


STAGES = ("continuous", "discrete", "joint")
SCHEDULES = ("continuous", "switch", "ramp", "interpolate", "joint")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["trainer.max_steps=10", "data.sources=[a.mp4,b.mp4]"]``: values parsed as YAML."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise OneVAEError(f"override {item!r} must look like key.path=value")
        path, raw = item.split("=", 1)
        node = data
        parts = path.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise OneVAEError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_train_config(path: Optional[Union[str, Path]] = None, overrides: Optional[list[str]] = None) -> TrainConfig:
    """Read a YAML config (or start from the defaults), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise OneVAEError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise OneVAEError(f"{path}: not valid YAML ({exc})") from None
    data = apply_overrides(data, overrides or [])
    config = build_dataclass(TrainConfig, data)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    if config.stage not in STAGES:
        raise OneVAEError(f"stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    if config.schedule.kind not in SCHEDULES:
        raise OneVAEError(f"schedule.kind must be one of {', '.join(SCHEDULES)}, got {config.schedule.kind!r}")
    if config.stage == "continuous" and config.schedule.kind != "continuous":
        config.schedule.kind = "continuous"
    if config.stage == "joint" and config.schedule.kind not in ("joint", "ramp"):
        raise OneVAEError("the joint stage needs schedule.kind joint (or ramp with final_discrete < 1)")
    if config.schedule.joint_mode not in ("sum", "sample"):
        raise OneVAEError(f"schedule.joint_mode must be sum or sample, got {config.schedule.joint_mode!r}")
    if not 0.0 <= config.schedule.final_discrete <= 1.0:
        raise OneVAEError("schedule.final_discrete must lie in [0, 1]")
    if config.trainer.nonfinite not in ("skip", "stop"):
        raise OneVAEError(f"trainer.nonfinite must be skip or stop, got {config.trainer.nonfinite!r}")
    if config.optim.schedule not in ("constant", "cosine"):
        raise OneVAEError(f"optim.schedule must be constant or cosine, got {config.optim.schedule!r}")
    if config.data.kind not in ("files", "webdataset", "procedural"):
        raise OneVAEError(f"data.kind must be files, webdataset or procedural, got {config.data.kind!r}")
