"""Training losses: perceptual (LPIPS-style), 3-D patch discriminator, adversarial terms."""

from .adversarial import (
    adaptive_weight,
    adopt_weight,
    discriminator_hinge_loss,
    discriminator_vanilla_loss,
    generator_hinge_loss,
)
from .discriminator import PatchDiscriminator3D, build_discriminator
from .perceptual import PerceptualLoss, build_perceptual_loss

__all__ = [
    "PatchDiscriminator3D",
    "PerceptualLoss",
    "adaptive_weight",
    "adopt_weight",
    "build_discriminator",
    "build_perceptual_loss",
    "discriminator_hinge_loss",
    "discriminator_vanilla_loss",
    "generator_hinge_loss",
]
