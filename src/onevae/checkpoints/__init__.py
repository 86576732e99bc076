"""Checkpoint formats: official OneVAE (.ckpt/.safetensors), Wan2.1 (.pth), and our model directory."""

from .files import read_weights_file
from .official import infer_preset, load_official, read_official_state
from .pretrained import load_pretrained, model_fingerprint, resolve_model_dir, save_pretrained
from .report import LoadReport, copy_matching
from .wan import load_wan, load_wan_prior, read_wan_state

__all__ = [
    "LoadReport",
    "copy_matching",
    "infer_preset",
    "load_official",
    "load_pretrained",
    "load_wan",
    "load_wan_prior",
    "model_fingerprint",
    "read_official_state",
    "read_wan_state",
    "read_weights_file",
    "resolve_model_dir",
    "save_pretrained",
]
