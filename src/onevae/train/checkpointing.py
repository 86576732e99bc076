"""Training checkpoints: written atomically, read safely, resumed from the newest valid one, exported to the
``from_pretrained`` directory."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..checkpoints.files import NO_TRUST_HINT, read_weights_file
from ..config import OneVAEConfig
from ..errors import CheckpointError, OneVAEError
from ..guards import first_nonfinite
from ..io.atomic import atomic_path
from .ema import EMA

VAE_PREFIX = "vae."
STEP_CHECKPOINT = re.compile(r"step=(\d+)\.ckpt")
# What Lightning needs to resume a fit, besides our own entries.
TRAIN_CONFIG_KEY = "onevae_train_config"  # the resolved training config, saved in every checkpoint
RESUME_KEYS = ("state_dict", "optimizer_states", "loops", "global_step", "onevae_model_config")


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with two guarantees: a checkpoint appears whole or not at all (a unique
    temporary name, renamed into place, so neither a kill nor a second run in the same directory can leave a
    torn or interleaved file), and resuming never unpickles code (``torch.load(weights_only=True)`` with the
    narrow allow-list, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path, map_location: Callable | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_training_checkpoint(path)


class AtomicModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (atomic through :class:`SafeCheckpointIO`) that also keeps the final state
    as ``last.ckpt`` when the run does not end on a checkpoint step."""

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        """Also keep the final state as ``last.ckpt`` when the run does not end on a checkpoint step."""
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def save_this_step(self, trainer: L.Trainer) -> None:
        """Save the current step now, as this callback would at the step's end: ``step=N.ckpt`` on a checkpoint
        step, and ``last.ckpt``. For a run stopped by a signal (onevae.train.preemption), which stops before
        Lightning calls this callback (it runs checkpoint callbacks last). Every process of a DDP run calls it
        (the first one writes)."""
        candidates = self._monitor_candidates(trainer)
        every = self._every_n_train_steps
        if every >= 1 and trainer.global_step % every == 0 and self._last_global_step_saved != trainer.global_step:
            self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)


@dataclass
class ResumePoint:
    path: str
    step: int
    train_config: dict[str, Any] | None = None  # the config the checkpoint was trained with (None: not recorded)


def find_resume_checkpoint(output_dir: Path, resume: str | None, model_config: OneVAEConfig | None = None) -> ResumePoint | None:
    """``None``: start fresh; ``"auto"``: the run's newest valid checkpoint (``last.ckpt``, else the highest
    ``step=*.ckpt`` that reads back whole), if any; else the given path. Refuses a checkpoint of another
    architecture than ``model_config``."""
    if resume is None:
        return None
    if resume == "auto":
        candidates = resume_candidates(output_dir / "checkpoints")
        if not candidates:
            return None
        for path in candidates:
            try:
                checkpoint = read_resumable(path)
            except CheckpointError as exc:
                print(f"[onevae] skipping a damaged checkpoint: {exc}", file=sys.stderr)
                continue
            break
        else:
            raise CheckpointError(f"--resume auto: no readable checkpoint in {output_dir / 'checkpoints'} (all {len(candidates)} are damaged)")
    else:
        path = Path(resume)
        if path.is_dir():
            raise OneVAEError(f"--resume {resume} is a directory: give a training checkpoint (.ckpt), or --resume auto with "
                              "output_dir set to the run; a model directory starts a new run with model.init_from")
        if not path.is_file():
            raise OneVAEError(f"--resume {resume}: no such checkpoint file")
        checkpoint = read_resumable(path)
    if model_config is not None:
        check_same_architecture(checkpoint, model_config, str(path))
    saved = checkpoint.get(TRAIN_CONFIG_KEY)
    return ResumePoint(str(path), int(checkpoint["global_step"]), saved if isinstance(saved, dict) else None)


def resume_candidates(directory: Path) -> list[Path]:
    """``last.ckpt`` first, then ``step=*.ckpt`` from the newest step down."""
    steps = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = STEP_CHECKPOINT.fullmatch(path.name)
            if match and path.is_file():
                steps.append((int(match.group(1)), path))
    last = directory / "last.ckpt"
    return ([last] if last.is_file() else []) + [p for _, p in sorted(steps, reverse=True)]


def read_resumable(path: str | Path) -> dict[str, Any]:
    """A training checkpoint that holds everything a resume needs, or :class:`CheckpointError`."""
    checkpoint = read_training_checkpoint(path)
    missing = [k for k in RESUME_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a complete training checkpoint (no {', '.join(missing)})")
    if isinstance(checkpoint["global_step"], bool) or not isinstance(checkpoint["global_step"], int):
        raise CheckpointError(f"{path}: not a complete training checkpoint (global_step is not an integer)")
    return checkpoint


def check_same_architecture(checkpoint: Mapping[str, Any], model_config: OneVAEConfig, source: str) -> None:
    """Resuming continues the same network: refuse a checkpoint whose model differs from the config's."""
    saved = checkpoint_model_config(checkpoint, source).to_dict()
    wanted = model_config.to_dict()
    changed = [k for k in wanted if k != "name" and saved.get(k) != wanted[k]]
    if changed:
        diffs = ", ".join(f"{k} {saved.get(k)} -> {wanted[k]}" for k in changed[:4])
        raise CheckpointError(
            f"{source} was trained with another architecture ({diffs}); resume with the run's own config.yaml, "
            "or start a new run from it with model.init_from"
        )


def checkpoint_model_config(checkpoint: Mapping[str, Any], source: str) -> OneVAEConfig:
    data = checkpoint.get("onevae_model_config")
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: not a onevae training checkpoint (no onevae_model_config)")
    try:
        return OneVAEConfig.from_dict(data)
    except OneVAEError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def weights_from_training_checkpoint(checkpoint: dict[str, Any], use_ema: bool) -> dict[str, torch.Tensor]:
    """The tokenizer's weights (our naming) from a training checkpoint's state dict, raw or EMA. EMA weights keep
    their own dtype (float32, or float64 under ``64-true``), not the model's: a ``bf16-true`` run's EMA is not
    rounded to bfloat16 on the way out."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError("not a onevae training checkpoint: its state_dict is not a mapping")
    state = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    weights = {k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    if not weights:
        raise CheckpointError("not a onevae training checkpoint: no vae.* weights in its state_dict")
    if use_ema:
        shadows = {k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.shadow__")}
        if not shadows:
            raise CheckpointError("this training checkpoint has no EMA weights (ema.enabled was false)")
        for name in list(weights):
            key = EMA.shadow_key(name)
            if key in shadows:
                weights[name] = shadows[key]
    return weights


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by ``onevae train``, read without unpickling code."""
    checkpoint = read_weights_file(path, trust_hint=NO_TRUST_HINT)
    if "onevae_model_config" not in checkpoint:
        raise CheckpointError(f"{path}: not a onevae training checkpoint (no onevae_model_config)")
    if not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: not a onevae training checkpoint (no state_dict)")
    return checkpoint


def export_checkpoint(
    path: str | Path, out_dir: str | Path, use_ema: bool = True, dtype: torch.dtype | None = None
) -> Path:
    """Write a training checkpoint's model (EMA weights by default) as a ``from_pretrained`` directory, its
    weights stored in ``dtype`` (default: as trained, float32)."""
    from ..model import OneVAE

    checkpoint = read_training_checkpoint(path)
    model = OneVAE(checkpoint_model_config(checkpoint, str(path)))
    use_ema = use_ema and any(str(k).startswith("ema.shadow__") for k in checkpoint["state_dict"])
    try:
        weights = weights_from_training_checkpoint(checkpoint, use_ema)
        model.load_state_dict(weights)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except RuntimeError as exc:  # missing or misshapen tensors
        raise CheckpointError(f"{path}: its weights do not fit its own model config ({str(exc).splitlines()[0]})") from None
    bad = first_nonfinite(weights.items())
    if bad is not None:
        which = "EMA weights" if use_ema else "weights"
        raise CheckpointError(f"{path}: its {which} hold NaN or inf (first in {bad}); export an earlier checkpoint"
                              + (" or try --no-ema" if use_ema else ""))
    step = checkpoint.get("global_step", 0)
    model.save_pretrained(out_dir, metadata={"source": str(path), "step": str(step), "ema": str(use_ema)}, dtype=dtype)
    return Path(out_dir)


class ExportCallback(Callback):
    """At the end of training, export the model (EMA weights if any) to ``out_dir``, with the run config."""

    def __init__(self, out_dir: str | Path, use_ema: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.use_ema = use_ema

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        from ..model import OneVAE

        model = OneVAE(pl_module.vae.config)
        model.load_state_dict({k: v.detach().cpu() for k, v in pl_module.vae.state_dict().items()})
        if self.use_ema and pl_module.ema is not None:
            pl_module.ema.to("cpu")
            pl_module.ema.copy_to(model)
            pl_module.ema.to(pl_module.device)
        model.save_pretrained(self.out_dir, metadata={"step": str(trainer.global_step), "ema": str(self.use_ema and pl_module.ema is not None)})
        pl_module.cfg.save(self.out_dir / "training_config.yaml")
