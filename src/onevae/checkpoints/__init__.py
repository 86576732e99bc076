"""Foreign checkpoint formats: official OneVAE (.ckpt/.safetensors) and Wan2.1 (.pth).

Our own model directory format is :mod:`onevae.model_dir` (``OneVAE.from_pretrained``/``save_pretrained``)."""

from .files import read_weights_file
from .official import infer_preset, load_official, read_official_state
from .wan import load_wan, load_wan_prior, read_wan_state

__all__ = [
    "infer_preset",
    "load_official",
    "load_wan",
    "load_wan_prior",
    "read_official_state",
    "read_wan_state",
    "read_weights_file",
]
