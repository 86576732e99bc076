"""onevae: video tokenizers that are both discrete and continuous (OneVAE, arXiv 2508.09857)."""

from .config import PRESETS, OneVAEConfig, preset
from .errors import CheckpointError, InputError, OneVAEError
from .model import OneVAE, Padding, StreamingDecoder, StreamingEncoder
from .quantizers.fsq import FSQ

__version__ = "0.1.0"

__all__ = [
    "FSQ",
    "PRESETS",
    "CheckpointError",
    "InputError",
    "OneVAE",
    "OneVAEConfig",
    "OneVAEError",
    "Padding",
    "StreamingDecoder",
    "StreamingEncoder",
    "preset",
]
