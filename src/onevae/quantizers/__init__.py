"""Quantizers of the discrete bottleneck."""

from .fsq import FSQ, round_ste

__all__ = ["FSQ", "round_ste"]
