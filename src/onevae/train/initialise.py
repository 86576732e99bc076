"""Initialising a model before training: from our directory, an official checkpoint, Wan2.1 (``.pth`` or a
diffusers ``AutoencoderKLWan`` folder), or a previous stage's training checkpoint. Tensors whose name and shape match are copied; the report says what happened."""

from __future__ import annotations

from pathlib import Path

from ..checkpoints.detect import detect_format
from ..checkpoints.diffusers import load_diffusers_prior
from ..checkpoints.files import read_weights_file, unwrap_state_dict
from ..checkpoints.official import split_official_state
from ..checkpoints.wan import load_wan_prior
from ..errors import CheckpointError
from ..model_dir import read_model_dir
from ..state_dict import LoadReport, copy_matching
from .checkpointing import weights_from_training_checkpoint
from .config import ModelSection

FORMATS = ("auto", "onevae", "official", "wan", "diffusers", "training")


def initialise_model(model, section: ModelSection) -> LoadReport:
    path = Path(section.init_from)
    if section.init_format not in FORMATS:
        raise CheckpointError(f"model.init_format must be one of {', '.join(FORMATS)}")
    kind = detect_format(path, section.trust_checkpoint) if section.init_format == "auto" else section.init_format
    report = LoadReport(source=f"{path} ({kind})")
    if kind == "onevae":
        return copy_matching(model, read_model_dir(path)[1], report)
    if kind == "official":
        state = unwrap_state_dict(read_weights_file(path, trust=section.trust_checkpoint), str(path))
        return copy_matching(model, split_official_state(state, section.init_use_ema, report), report)
    if kind == "wan":
        return load_wan_prior(model, path, trust=section.trust_checkpoint)
    if kind == "diffusers":
        return load_diffusers_prior(model, section.init_from)
    checkpoint = read_weights_file(path)
    return copy_matching(model, weights_from_training_checkpoint(checkpoint, section.init_use_ema), report)
