"""Foreign checkpoint formats: official OneVAE (.ckpt/.safetensors), Wan2.1 (.pth) and Wan2.1 in diffusers'
layout (an ``AutoencoderKLWan`` folder, read and written).

Our own model directory format is :mod:`onevae.model_dir` (``OneVAE.from_pretrained``/``save_pretrained``)."""

from .diffusers import load_diffusers, load_diffusers_prior, save_diffusers
from .files import read_weights_file
from .official import infer_preset, load_official, read_official_state
from .wan import load_wan, load_wan_prior, read_wan_state

__all__ = [
    "infer_preset",
    "load_diffusers",
    "load_diffusers_prior",
    "load_official",
    "load_wan",
    "load_wan_prior",
    "read_official_state",
    "read_wan_state",
    "read_weights_file",
    "save_diffusers",
]
