"""Initialising a model before training: from our directory, an official checkpoint, Wan2.1 (``.pth`` or a
diffusers ``AutoencoderKLWan`` folder), or a previous stage's training checkpoint. Tensors whose name and shape match are copied; the report says what happened.

A model directory of a narrower model of the same architecture (smaller ``dim``, nothing else changed) is grown
into the wider one so that it starts out computing what the narrow one computed (:mod:`onevae.nn.widen`)."""

from __future__ import annotations

from pathlib import Path

from ..checkpoints.detect import detect_format
from ..checkpoints.diffusers import find_diffusers_folder, load_diffusers_prior
from ..checkpoints.files import read_weights_file, unwrap_state_dict
from ..checkpoints.official import split_official_state
from ..checkpoints.wan import load_wan_prior
from ..config import OneVAEConfig
from ..errors import CheckpointError
from ..model import OneVAE
from ..model_dir import default_model_dir, names_default_model, read_model_dir, refuse_weightless_preset
from ..nn.widen import check_widening, widen_into
from ..state_dict import LoadReport, copy_matching
from .checkpointing import weights_from_training_checkpoint
from .config import ModelSection

FORMATS = ("auto", "onevae", "official", "wan", "diffusers", "training")


def init_source(init_from: str) -> Path:
    """The file or folder ``model.init_from`` names: a path, or ``default`` / ``onevae-small`` for the model
    shipped inside the package (as ``--model`` takes them); a missing one is refused naming the key."""
    if names_default_model(init_from):
        return default_model_dir()
    path = Path(init_from).expanduser()
    if not path.exists() and find_diffusers_folder(init_from) is None:  # an org/name id in the local HF cache is fine
        refuse_weightless_preset(init_from)
        raise CheckpointError(f"model.init_from {init_from}: no such file or directory ('default' names the shipped model)")
    return path


def initialise_model(model, section: ModelSection) -> LoadReport:
    path = init_source(section.init_from)
    if section.init_format not in FORMATS:
        raise CheckpointError(f"model.init_format must be one of {', '.join(FORMATS)}")
    kind = detect_format(path, section.trust_checkpoint) if section.init_format == "auto" else section.init_format
    report = LoadReport(source=f"{path} ({kind})")
    if kind == "onevae":
        source_config, state, _ = read_model_dir(path)
        if source_config.dim < model.config.dim:
            return _grow(model, source_config, state, report, section.widen_noise)
        return copy_matching(model, state, report)
    if kind == "official":
        state = unwrap_state_dict(read_weights_file(path, trust=section.trust_checkpoint), str(path))
        return copy_matching(model, split_official_state(state, section.init_use_ema, report), report)
    if kind == "wan":
        return load_wan_prior(model, path, trust=section.trust_checkpoint)
    if kind == "diffusers":
        return load_diffusers_prior(model, section.init_from)
    checkpoint = read_weights_file(path)
    return copy_matching(model, weights_from_training_checkpoint(checkpoint, section.init_use_ema), report)


def _grow(model: OneVAE, source_config: OneVAEConfig, state: dict, report: LoadReport, noise: float) -> LoadReport:
    """Initialise ``model`` from the weights of a narrower model directory (same architecture, smaller dim)."""
    check_widening(source_config, model.config)
    narrow = OneVAE(source_config)
    copy_matching(narrow, state, LoadReport(source=report.source))
    grown = widen_into(model, narrow, noise=noise)
    report.copied = [key for key in model.state_dict() if key in state]
    report.initialised = []
    report.notes.append(f"grown from dim {source_config.dim} to {model.config.dim}: {len(grown)} tensors widened; the new "
                        f"channels' weights at {noise:g}x the old ones' scale, their weights into later layers zero")
    return report
