"""Telling a weights file's format from its content (used by ``onevae convert`` and training initialisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..errors import CheckpointError
from .files import read_weights_file, unwrap_state_dict
from .wan import WAN_PREFIXES

Format = Literal["onevae", "training", "official", "wan"]
# The key our training checkpoints carry (written by onevae.train.module); nothing else has it.
TRAINING_CONFIG_KEY = "onevae_model_config"


def detect_format(path: Path, trust: bool = False) -> Format:
    """``onevae`` (a model directory), ``training`` (our training checkpoint), ``official`` (OneVAE release
    naming: ``model.*``, ``quant_conv.*``) or ``wan`` (Wan2.1 VAE naming)."""
    if path.is_dir():
        return "onevae"
    obj = read_weights_file(path, trust=trust)
    if TRAINING_CONFIG_KEY in obj:
        return "training"
    keys = list(unwrap_state_dict(obj, str(path)))
    if any(k.startswith(("model.", "quant_conv.")) for k in keys):
        return "official"
    if any(k.removeprefix("module.").startswith(WAN_PREFIXES) for k in keys):
        return "wan"
    raise CheckpointError(f"{path}: cannot tell its format from its keys; name it (--format, or model.init_format)")
