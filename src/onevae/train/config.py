"""Training configuration: dataclasses that YAML files in ``configs/`` map onto, with ``a.b=value`` overrides.

The resolved config is written next to every run (``config.yaml``) and every exported model.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from ..config import OneVAEConfig, preset
from ..configtools import NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Range, build_dataclass, read_yaml_file
from ..data.config import DataConfig
from ..errors import OneVAEError
from ..io.atomic import atomic_path
from ..losses.config import LossConfig


@dataclass
class ModelSection:
    """Which network to train and where its first weights come from."""

    preset: str | None = "onevae-small"
    config: dict[str, Any] = field(default_factory=dict)  # OneVAEConfig fields that override the preset
    init_from: str | None = None  # model dir, official .ckpt/.safetensors, Wan2.1 .pth or diffusers folder, or our training .ckpt
    init_format: Literal["auto", "onevae", "official", "wan", "diffusers", "training"] = "auto"
    init_use_ema: bool = False
    trust_checkpoint: bool = False
    widen_noise: Annotated[float, NON_NEGATIVE] = 1.0  # growing a narrower model: new channels' weights, relative to the old ones' (onevae.nn.widen)


@dataclass
class ScheduleConfig:
    """How training moves between the continuous and the discrete path (see docs/training.md).

    ``kind``: ``continuous`` (never quantise), ``switch`` (abrupt: discrete from ``start_step`` on), ``ramp``
    (the probability that a step uses the discrete path rises linearly from 0 to ``final_discrete`` over
    ``ramp_steps`` steps from ``start_step``), ``interpolate`` (the decoder gets (1-a)*z + a*quant(z) with a
    ramped the same way), ``joint`` (both paths at once: losses summed with the two weights, or one path per
    step sampled with probability ``final_discrete`` when ``joint_mode`` is ``sample``).
    """

    kind: Literal["continuous", "switch", "ramp", "interpolate", "joint"] = "ramp"
    start_step: Annotated[int, NON_NEGATIVE] = 0
    ramp_steps: Annotated[int, NON_NEGATIVE] = 1000
    final_discrete: Annotated[float, UNIT_INTERVAL] = 1.0
    joint_mode: Literal["sum", "sample"] = "sum"
    continuous_weight: Annotated[float, NON_NEGATIVE] = 1.0
    discrete_weight: Annotated[float, NON_NEGATIVE] = 1.0


@dataclass
class OptimConfig:
    """AdamW with the official defaults (lr 5e-5, betas (0.5, 0.9), eps 1e-6, weight decay 0.1)."""

    lr: Annotated[float, POSITIVE] = 5e-5
    betas: tuple[Annotated[float, Range(0, 1, high_open=True)], Annotated[float, Range(0, 1, high_open=True)]] = (0.5, 0.9)
    eps: Annotated[float, POSITIVE] = 1e-6
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.1
    warmup_steps: Annotated[int, NON_NEGATIVE] = 0
    schedule: Literal["constant", "cosine"] = "constant"
    schedule_steps: Annotated[int, Range(1)] | None = None  # horizon of the cosine decay; None: trainer.max_steps
    min_lr_ratio: Annotated[float, UNIT_INTERVAL] = 0.1
    grad_clip: Annotated[float, NON_NEGATIVE] = 1.0  # 0: no clipping
    disc_lr: Annotated[float, POSITIVE] | None = None  # None: same as lr


@dataclass
class EMAConfig:
    enabled: bool = True
    decay: Annotated[float, Range(0, 1, high_open=True)] = 0.9999
    warmup: bool = False  # decay = min(decay, (1 + n) / (10 + n)) early on, for short runs
    validate_with_ema: bool = True


@dataclass
class ValidationConfig:
    """Held-out clips checked every ``every_n_steps``: the training data settings with these sources and sizes,
    no augmentation (:meth:`data_config`)."""

    # held-out videos; empty: procedural clips; "heldout" (or "heldout:NAME", ...): the clips of `onevae eval`
    # (onevae.eval.heldout) at their own native sizes, each cut to num_frames (num_clips, height, width unused)
    sources: list[str] = field(default_factory=list)
    opencv_dir: str = "data/opencv"  # where the held-out set's opencv-doc clips are (scripts/fetch_opencv_clips.sh)
    num_clips: Annotated[int, Range(1)] = 2
    num_frames: Annotated[int, Range(1)] = 17
    height: Annotated[int, Range(1)] = 128
    width: Annotated[int, Range(1)] = 128
    every_n_steps: Annotated[int, Range(1)] = 500
    save_media: bool = True

    def data_config(self, train: DataConfig) -> DataConfig:
        """The validation clips' :class:`DataConfig`: ``train``'s frame rate, these sources and sizes, whole
        frames (no random crop, no flip), no file excluded (held-out clips are named on purpose)."""
        return dataclasses.replace(
            train, kind="files" if self.sources else "procedural", sources=list(self.sources), num_frames=self.num_frames,
            height=self.height, width=self.width, random_crop_scale=(1.0, 1.0), hflip=False, simulate_motion=False,
            batch_size=1, num_workers=0, exclude=[], num_samples=self.num_clips,
        )


@dataclass
class TrainerSection:
    max_steps: Annotated[int, Range(1)] = 1000
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"] = "auto"
    devices: Annotated[int, Range(-1)] | str = 1  # a count, -1 (all), "auto" or a list like "0,1"
    num_nodes: Annotated[int, Range(1)] = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    # auto: bf16-mixed where the hardware runs bfloat16 natively, else 32-true (onevae.hardware.auto_precision)
    precision: Literal["auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"] = "32-true"
    log_every_n_steps: Annotated[int, Range(1)] = 10
    checkpoint_every_n_steps: Annotated[int, Range(1)] = 500
    activation_checkpointing: bool = False
    # Speed on a GPU: channels_last_3d weights (cuDNN's preferred layout in bf16; not faster on a CPU) and
    # torch.compile of the encoder and decoder ("inductor"; "eager" checks the wiring without compiling).
    channels_last: bool = False
    compile: Literal["off", "inductor", "eager"] = "off"
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes, e.g. ["model.encoder"]
    nonfinite: Literal["skip", "stop"] = "skip"  # what to do with a step whose loss is NaN/inf
    max_nonfinite: Annotated[int, Range(1)] = 10  # consecutive skipped steps before training stops
    collapse_patience: Annotated[int, Range(1)] = 200  # steps of flat-colour output (recon std < 1e-3) in a row before training stops (read on logging steps)
    progress_bar: bool = True
    export_ema: bool = True


@dataclass
class TrainConfig:
    stage: Literal["continuous", "discrete", "joint"] = "discrete"
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0
    output_dir: str = "runs/onevae"
    model: ModelSection = field(default_factory=ModelSection)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValidationConfig = field(default_factory=ValidationConfig)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def model_config(self) -> OneVAEConfig:
        """The architecture to train: the preset with ``model.config`` overrides."""
        base = preset(self.model.preset) if self.model.preset else OneVAEConfig()
        base = base.replace(latents_mean=None, latents_std=None)  # trained weights have latents of their own: `onevae stats` measures them
        config = OneVAEConfig.from_dict({**base.to_dict(), **self.model.config})
        if self.stage != "continuous" and not config.discrete:
            raise OneVAEError(f"the {self.stage} stage needs an FSQ bottleneck: set model.config.fsq_levels")
        check_sizes(self, config)
        return config


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


STARTER_CONFIG = Path(__file__).with_name("starter.yaml")  # shipped in the package (docs/training.md shows it too)


def starter_config_text() -> str:
    """The starter config for training on your own videos (``onevae train --print-config``)."""
    return STARTER_CONFIG.read_text()


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or start from the defaults), apply overrides, validate."""
    data = read_yaml_file(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    config = build_dataclass(TrainConfig, data)
    validate(config)
    return config


def check_sizes(config: TrainConfig, model_config) -> None:
    """Clip sizes the model takes: H, W multiples of its spatial factor, T = 1 + k * its temporal factor."""
    sf, tf = model_config.spatial_factor, model_config.temporal_factor
    for section, name in ((config.data, "data"), (config.val, "val")):
        if section.height % sf or section.width % sf:
            raise OneVAEError(f"{name}.height and {name}.width must be multiples of {sf} for this model, got {section.height}x{section.width}")
        if (section.num_frames - 1) % tf:
            raise OneVAEError(f"{name}.num_frames must be 1 + k*{tf} for this model (e.g. {1 + 2 * tf}), got {section.num_frames}")


def validate(config: TrainConfig) -> None:
    """Rules between fields (each field's type, choices and range are checked by the schema itself)."""
    if config.stage == "continuous" and config.schedule.kind != "continuous":
        config.schedule.kind = "continuous"
    if config.stage == "joint" and config.schedule.kind not in ("joint", "ramp"):
        raise OneVAEError("the joint stage needs schedule.kind joint (or ramp with final_discrete < 1)")
    if config.stage == "discrete" and config.schedule.kind == "continuous":
        raise OneVAEError("schedule.kind continuous never trains the tokens, but stage is discrete (the default when a "
                          "config has no stage): set stage: continuous, or a discrete schedule (ramp, switch, interpolate)")
    if config.trainer.precision == "16-true":
        raise OneVAEError("trainer.precision 16-true does not train: AdamW keeps its statistics in float16, where squared "
                          "gradients underflow, and nothing scales the loss; use bf16-mixed, bf16-true, or 16-mixed on a GPU")
    # data.random_crop_scale's order is checked by DataConfig itself
