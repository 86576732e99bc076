"""Training losses: reconstruction (pixel, LPIPS-style perceptual, KL), 3-D patch discriminator, adversarial terms."""

from .adversarial import (
    LOSS_TYPES,
    adaptive_weight,
    adopt_weight,
    discriminator_hinge_loss,
    discriminator_loss_fn,
    discriminator_vanilla_loss,
    generator_hinge_loss,
    generator_loss_fn,
    generator_non_saturating_loss,
)
from .config import DiscriminatorConfig, LossConfig, PerceptualConfig
from .discriminator import PatchDiscriminator3D, build_discriminator
from .perceptual import PerceptualLoss, build_perceptual_loss
from .reconstruction import ReconstructionLoss, discriminator_loss, kl_loss

__all__ = [
    "LOSS_TYPES",
    "DiscriminatorConfig",
    "LossConfig",
    "PatchDiscriminator3D",
    "PerceptualConfig",
    "PerceptualLoss",
    "ReconstructionLoss",
    "adaptive_weight",
    "adopt_weight",
    "build_discriminator",
    "build_perceptual_loss",
    "discriminator_hinge_loss",
    "discriminator_loss",
    "discriminator_loss_fn",
    "discriminator_vanilla_loss",
    "generator_hinge_loss",
    "generator_loss_fn",
    "generator_non_saturating_loss",
    "kl_loss",
]
