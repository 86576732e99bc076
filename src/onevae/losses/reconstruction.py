"""The autoencoder's training loss and the discriminator's, with separately named log values.

Generator side (:class:`ReconstructionLoss`)::

    rec   = pixel_weight * pixel + perceptual_weight * perceptual
    total = rec + kl_weight * kl + w_adv * g_adv                      (g_adv only from disc_start on)
    w_adv = g_loss_weight * adaptive_weight(rec, g_adv, last layer, disc_weight)   if adaptive
          = g_loss_weight                                                          otherwise

Before ``disc_start`` (or without a discriminator) the adversarial term is not computed at all and logs 0.
With ``adaptive`` on but no gradient graph (validation under ``no_grad``) ``w_adv`` is 0, as in VQGAN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import InputError, OneVAEError
from .adversarial import adaptive_weight, adopt_weight, check_loss_type, discriminator_loss_fn, generator_loss_fn
from .config import PIXEL_LOSSES, LossConfig
from .perceptual import PerceptualLoss, build_perceptual_loss

Tensors = torch.Tensor | Sequence[torch.Tensor]


class ReconstructionLoss(nn.Module):
    """Pixel + perceptual (+ KL) (+ generator adversarial) loss for videos (B, 3, T, H, W) in [-1, 1]."""

    def __init__(
        self,
        pixel: str = "l2",
        pixel_weight: float = 1.0,
        perceptual: PerceptualLoss | None = None,
        perceptual_weight: float = 0.1,
        kl_weight: float = 0.0,
        g_loss_weight: float = 0.1,
        disc_start: int = 20000,
        disc_weight: float = 0.2,
        adaptive: bool = True,
        max_adaptive_weight: float = 1e4,
        disc_loss: str = "hinge",
        first_frame_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if pixel not in PIXEL_LOSSES:
            raise OneVAEError(f"pixel loss must be l1 or l2, got {pixel!r}")
        self.pixel = pixel
        self.pixel_weight = pixel_weight
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight
        self.kl_weight = kl_weight
        self.g_loss_weight = g_loss_weight
        self.disc_start = disc_start
        self.disc_weight = disc_weight
        self.adaptive = adaptive
        self.max_adaptive_weight = max_adaptive_weight
        self.disc_loss = check_loss_type(disc_loss)
        self.first_frame_weight = first_frame_weight
        self.perceptual_message = ""

    @classmethod
    def from_config(cls, config: LossConfig) -> ReconstructionLoss:
        """Build with the perceptual network from ``config.perceptual`` (off without a weights file)."""
        p = config.perceptual
        perceptual, message = build_perceptual_loss(p.weights_path, p.lin_path, p.max_frames)
        loss = cls(
            pixel=config.pixel,
            pixel_weight=config.pixel_weight,
            perceptual=perceptual,
            perceptual_weight=config.perceptual_weight,
            kl_weight=config.kl_weight,
            g_loss_weight=config.g_loss_weight,
            disc_start=config.disc_start,
            disc_weight=config.disc_weight,
            adaptive=config.adaptive,
            max_adaptive_weight=config.max_adaptive_weight,
            disc_loss=config.disc_loss,
            first_frame_weight=config.first_frame_weight,
        )
        loss.perceptual_message = message
        return loss

    def adversarial_active(self, step: int, discriminator: nn.Module | None) -> bool:
        return discriminator is not None and self.g_loss_weight > 0 and adopt_weight(1.0, step, self.disc_start) > 0

    def forward(
        self,
        video: torch.Tensor,
        recon: torch.Tensor,
        step: int,
        *,
        discriminator: nn.Module | None = None,
        last_layer_weight: torch.Tensor | None = None,
        mu: Tensors | None = None,
        logvar: Tensors | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, logs)``; ``mu``/``logvar`` (one tensor or one per latent grid) enable the KL term."""
        if video.shape != recon.shape:
            raise InputError(f"reconstruction {tuple(recon.shape)} and input {tuple(video.shape)} differ in shape")
        zero = recon.new_zeros((), dtype=torch.float32)
        pixel = self.pixel_loss(video, recon)
        perceptual = self.perceptual(recon, video) if self.perceptual is not None and self.perceptual_weight > 0 else zero
        rec = self.pixel_weight * pixel + self.perceptual_weight * perceptual
        total = rec
        kl = zero
        if self.kl_weight > 0 and mu is not None:
            if logvar is None:
                raise InputError("the KL term needs logvar along with mu")
            kl = kl_loss(mu, logvar)
            total = total + self.kl_weight * kl
        g_adv, weight = zero, zero
        if self.adversarial_active(step, discriminator):
            g_adv = generator_loss_fn(self.disc_loss, discriminator(recon.float()))
            weight = self._adv_weight(rec, g_adv, last_layer_weight)
            total = total + weight * g_adv
        logs = {
            "loss/pixel": pixel,
            "loss/perceptual": perceptual,
            "loss/kl": kl,
            "loss/g_adv": g_adv,
            "adv/weight": weight,
            "loss/total": total,
        }
        return total, {k: v.detach().float() for k, v in logs.items()}

    def pixel_loss(self, video: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Mean L1 or squared error; frame 0 weighted by ``first_frame_weight`` (1: plain mean)."""
        diff = recon.float() - video.float()
        err = diff.abs() if self.pixel == "l1" else diff.square()
        if self.first_frame_weight == 1.0 or err.dim() != 5:
            return err.mean()
        per_frame = err.mean(dim=(0, 1, 3, 4))  # (T,)
        weights = torch.ones_like(per_frame)
        weights[0] = self.first_frame_weight
        return (per_frame * weights).sum() / weights.sum()

    def _adv_weight(self, rec: torch.Tensor, g_adv: torch.Tensor, last_layer_weight: torch.Tensor | None) -> torch.Tensor:
        if not self.adaptive:
            return rec.new_tensor(self.g_loss_weight, dtype=torch.float32)
        if not (torch.is_grad_enabled() and rec.requires_grad and g_adv.requires_grad):
            return rec.new_zeros((), dtype=torch.float32)  # no graph (validation): VQGAN uses 0
        if last_layer_weight is None:
            raise InputError("the adaptive adversarial weight needs last_layer_weight (the decoder's last layer weight)")
        ada = adaptive_weight(rec, g_adv, last_layer_weight, self.disc_weight, self.max_adaptive_weight)
        return self.g_loss_weight * ada


def kl_loss(mu: Tensors, logvar: Tensors) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), mean over elements, averaged over latent grids."""
    mus = [mu] if isinstance(mu, torch.Tensor) else list(mu)
    logvars = [logvar] if isinstance(logvar, torch.Tensor) else list(logvar)
    if len(mus) != len(logvars) or not mus:
        raise InputError(f"KL term: got {len(mus)} mean tensor(s) and {len(logvars)} logvar tensor(s)")
    terms = [0.5 * (m.float().square() + lv.float().exp() - 1.0 - lv.float()).mean() for m, lv in zip(mus, logvars)]
    return torch.stack(terms).mean()


def discriminator_loss(
    disc: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    step: int,
    disc_start: int = 20000,
    loss_type: str = "hinge",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(loss, logs)`` for the discriminator step; ``fake`` is detached here.

    Before ``disc_start`` nothing runs: the loss is a constant 0 without a graph (skip the optimiser step).
    """
    if step < disc_start:
        zero = real.new_zeros((), dtype=torch.float32)
        return zero, {"loss/disc": zero, "disc/logits_real": zero, "disc/logits_fake": zero}
    logits_real = disc(real.detach().float())
    logits_fake = disc(fake.detach().float())
    loss = discriminator_loss_fn(loss_type, logits_real, logits_fake)
    logs = {"loss/disc": loss, "disc/logits_real": logits_real.mean(), "disc/logits_fake": logits_fake.mean()}
    return loss, {k: v.detach().float() for k, v in logs.items()}
