"""onevae: video tokenizers that are both discrete and continuous (OneVAE, arXiv 2508.09857)."""

from .config import PRESETS, OneVAEConfig, preset
from .errors import CheckpointError, InputError, InputRangeWarning, OneVAEError, SlowDtypeWarning
from .latents import Latents, Tokens
from .model import CONTINUOUS, DISCRETE, ModelOutput, OneVAE, PathPlan
from .padding import Padding
from .quantizers.fsq import FSQ
from .streaming import StreamingDecoder, StreamingEncoder, TiledDecoder, TiledEncoder, Tiling

__version__ = "0.1.0"

__all__ = [
    "CONTINUOUS",
    "DISCRETE",
    "FSQ",
    "Latents",
    "ModelOutput",
    "PathPlan",
    "Tokens",
    "PRESETS",
    "CheckpointError",
    "InputError",
    "InputRangeWarning",
    "OneVAE",
    "OneVAEConfig",
    "OneVAEError",
    "Padding",
    "SlowDtypeWarning",
    "StreamingDecoder",
    "StreamingEncoder",
    "TiledDecoder",
    "TiledEncoder",
    "Tiling",
    "preset",
]
