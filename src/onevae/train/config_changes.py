"""What a resumed run changes in its config, compared with the config its checkpoint was trained with.

Resuming with edited values is allowed (a longer ``trainer.max_steps``, longer clips, another learning rate:
:meth:`OneVAETrainingModule.on_load_checkpoint` applies the new optimizer values to the restored state), and
said in one line. Changes the checkpoint's state cannot follow (its EMA weights, its discriminator, the
parameters its optimizer state covers) are refused before anything is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import CheckpointError
from .config import TrainConfig

# Keys that do not describe the training (where it writes, how the first weights were made: a resume reads its
# weights from the checkpoint).
IGNORED = ("output_dir", "model.init_from", "model.init_format", "model.init_use_ema", "model.trust_checkpoint", "model.widen_noise")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples kept as lists)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = list(value) if isinstance(value, tuple) else value
    return flat


def changed_keys(saved: Mapping[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (checkpoint's value, this config's value)}`` for every training setting that differs."""
    old, new = flatten(saved), flatten(config.to_dict())
    return {key: (old.get(key), value) for key, value in new.items()
            if key not in IGNORED and key in old and old[key] != value}


def check_resume_config(saved: Mapping[str, Any] | None, config: TrainConfig, source: str) -> str | None:
    """One line naming what this config changes against the checkpoint's (None: nothing, or a checkpoint that
    predates recording its config); :class:`CheckpointError` for a change the checkpoint's state cannot follow."""
    if not isinstance(saved, Mapping):
        return None
    changes = changed_keys(saved, config)
    refused = _refused(saved, config, changes)
    if refused:
        raise CheckpointError(f"{source} cannot be resumed with {refused}; resume with the run's own values, or start "
                              "a new run from it with model.init_from")
    if not changes:
        return None
    listed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
    return f"[onevae] resuming with a changed config (from the checkpoint's step on): {listed}"


def _refused(saved: Mapping[str, Any], config: TrainConfig, changes: dict[str, tuple[Any, Any]]) -> str | None:
    if "ema.enabled" in changes:
        return f"ema.enabled {config.ema.enabled} (the checkpoint {'has' if not config.ema.enabled else 'has no'} EMA weights)"
    old_gan = float(flatten(saved).get("loss.g_loss_weight") or 0) > 0
    if old_gan != (config.loss.g_loss_weight > 0):
        return (f"loss.g_loss_weight {config.loss.g_loss_weight:g} (the checkpoint has {'a' if old_gan else 'no'} "
                "discriminator; 0 builds none)")
    discriminator = sorted(key for key in changes if key.startswith("loss.discriminator."))
    if discriminator and old_gan:
        return f"another discriminator ({', '.join(discriminator)})"
    if "trainer.freeze" in changes:
        return "another trainer.freeze (the checkpoint's optimizer state covers the parameters it trained)"
    return None
