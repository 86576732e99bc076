"""Loss settings as plain dataclasses that a YAML ``loss:`` section maps onto.

Defaults are the official OneVAE configs' (``VQLPIPSWithDiscriminator2`` parameters, see
docs/onevae-notes.md §6): pixel MSE weight 1.0, perceptual 0.1, generator term 0.1 from step 20,000,
disc_weight 0.2, a 2-layer discriminator with spectral norm, hinge loss. (The 16x16x16 decoder stage used
``g_loss_weight`` 0.005 and ``disc_start`` 30,000.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..configtools import build_dataclass
from ..errors import OneVAEError
from .adversarial import LOSS_TYPES
from .discriminator import NORMS

PIXEL_LOSSES = ("l1", "l2")


@dataclass
class PerceptualConfig:
    """The LPIPS-vgg term; off when ``weights_path`` is None (nothing is downloaded)."""

    weights_path: str | None = None  # VGG16 trunk: torchvision (features.N.*) or lpips (net.sliceK.N.*)
    lin_path: str | None = None  # LPIPS linear layers (the lpips package's vgg.pth); optional
    max_frames: int | None = 4  # frames per clip the term sees (evenly spaced); None: all


@dataclass
class DiscriminatorConfig:
    """The 3-D patch discriminator (official: disc_num_layers 2, disc_in_channels 3, use_spectral_norm)."""

    in_channels: int = 3
    base_channels: int = 64
    num_layers: int = 2
    norm: str = "none"  # none | group | batch
    use_spectral_norm: bool = True


@dataclass
class LossConfig:
    """Everything :class:`~onevae.losses.ReconstructionLoss` and :func:`discriminator_loss` need."""

    pixel: str = "l2"  # l1 | l2 (MSE, as the official configs)
    pixel_weight: float = 1.0
    first_frame_weight: float = 1.0  # > 1 weighs frame 0 more in the pixel term
    perceptual_weight: float = 0.1
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    kl_weight: float = 0.0  # continuous VAE only; 0: the mean is used deterministically (OneVAE)
    g_loss_weight: float = 0.1  # generator term (0.005 in the official 16x16x16 stage)
    disc_start: int = 20000  # step from which the adversarial terms are on
    disc_weight: float = 0.2  # scales VQGAN's adaptive weight
    adaptive: bool = True  # False: the generator term is weighted by g_loss_weight alone
    max_adaptive_weight: float = 1e4
    disc_loss: str = "hinge"  # hinge | vanilla | non_saturating
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        if self.pixel not in PIXEL_LOSSES:
            raise OneVAEError(f"loss.pixel must be l1 or l2, got {self.pixel!r}")
        if self.disc_loss not in LOSS_TYPES:
            raise OneVAEError(f"loss.disc_loss must be one of {', '.join(LOSS_TYPES)}, got {self.disc_loss!r}")
        if self.discriminator.norm not in NORMS:
            raise OneVAEError(f"loss.discriminator.norm must be one of {', '.join(NORMS)}, got {self.discriminator.norm!r}")
        for name in ("pixel_weight", "first_frame_weight", "perceptual_weight", "kl_weight", "g_loss_weight", "disc_weight"):
            if getattr(self, name) < 0:
                raise OneVAEError(f"loss.{name} must not be negative, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LossConfig:
        """From a YAML mapping; unknown keys are refused with their path."""
        return build_dataclass(cls, dict(data or {}), "loss")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
