"""Training checkpoints written atomically, resuming, and export to the ``from_pretrained`` directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from ..checkpoints.files import read_weights_file
from ..config import OneVAEConfig
from ..errors import CheckpointError, OneVAEError
from .ema import EMA

VAE_PREFIX = "vae."


class AtomicModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, but each file is written under a temporary name and renamed into place,
    so an interrupted save never leaves a truncated ``last.ckpt``."""

    def _save_checkpoint(self, trainer: "L.Trainer", filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        for logger in trainer.loggers:
            logger.after_save_checkpoint(self)

    def on_train_end(self, trainer: "L.Trainer", pl_module) -> None:
        """Also keep the final state as ``last.ckpt`` when the run does not end on a checkpoint step."""
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def find_resume_checkpoint(output_dir: Path, resume: Optional[str]) -> Optional[str]:
    """``None``: start fresh; ``"auto"``: ``last.ckpt`` of the run if there is one; else a path."""
    if resume is None:
        return None
    if resume == "auto":
        last = output_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    if not Path(resume).is_file():
        raise OneVAEError(f"--resume {resume}: no such checkpoint file")
    return resume


def weights_from_training_checkpoint(checkpoint: dict[str, Any], use_ema: bool) -> dict[str, torch.Tensor]:
    """The tokenizer's weights (our naming) from a training checkpoint's state dict, raw or EMA."""
    state = checkpoint.get("state_dict", checkpoint)
    weights = {k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    if not weights:
        raise CheckpointError("not a onevae training checkpoint: no vae.* weights in its state_dict")
    if use_ema:
        shadows = {k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.shadow__")}
        if not shadows:
            raise CheckpointError("this training checkpoint has no EMA weights (ema.enabled was false)")
        for name in list(weights):
            key = EMA._key(name)
            if key in shadows:
                weights[name] = shadows[key].to(weights[name].dtype)
    return weights


def read_training_checkpoint(path: Union[str, Path]) -> dict[str, Any]:
    checkpoint = read_weights_file(path)
    if "onevae_model_config" not in checkpoint:
        raise CheckpointError(f"{path}: not a onevae training checkpoint (no onevae_model_config)")
    return checkpoint


def export_checkpoint(
    path: Union[str, Path], out_dir: Union[str, Path], use_ema: bool = True, dtype: Optional[torch.dtype] = None
) -> Path:
    """Write a training checkpoint's model (EMA weights by default) as a ``from_pretrained`` directory, its
    weights stored in ``dtype`` (default: as trained, float32)."""
    from ..model import OneVAE

    checkpoint = read_training_checkpoint(path)
    model = OneVAE(OneVAEConfig.from_dict(checkpoint["onevae_model_config"]))
    weights = weights_from_training_checkpoint(checkpoint, use_ema and any(k.startswith("ema.shadow__") for k in checkpoint["state_dict"]))
    model.load_state_dict(weights)
    step = checkpoint.get("global_step", 0)
    model.save_pretrained(out_dir, metadata={"source": str(path), "step": str(step), "ema": str(use_ema)}, dtype=dtype)
    return Path(out_dir)


class ExportCallback(Callback):
    """At the end of training, export the model (EMA weights if any) to ``out_dir``, with the run config."""

    def __init__(self, out_dir: Union[str, Path], use_ema: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.use_ema = use_ema

    def on_train_end(self, trainer: "L.Trainer", pl_module) -> None:
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
