"""Network parts: causal layers, encoder, decoder."""

from .layers import StreamCache
from .vae import CausalVAE, Decoder3d, Encoder3d

__all__ = ["CausalVAE", "Decoder3d", "Encoder3d", "StreamCache"]
