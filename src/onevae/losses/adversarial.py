"""Adversarial terms: discriminator losses (hinge, vanilla), the generator loss, the start step, and VQGAN's
adaptive weight.

Loss types (``loss_type``): ``hinge`` (VQGAN's default and the official configs'), ``vanilla`` (the
discriminator is trained with softplus/BCE; the generator still uses -mean(D(x_hat)), as in VQGAN) and
``non_saturating`` (softplus for the discriminator and softplus(-D(x_hat)) for the generator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError, OneVAEError

LOSS_TYPES = ("hinge", "vanilla", "non_saturating")


def discriminator_hinge_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def discriminator_vanilla_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(softplus(-D(x))) + mean(softplus(D(x_hat)))), i.e. binary cross-entropy on logits."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def generator_hinge_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """-mean(D(x_hat))."""
    return -logits_fake.mean()


def generator_non_saturating_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """mean(softplus(-D(x_hat))) = -mean(log sigmoid(D(x_hat)))."""
    return F.softplus(-logits_fake).mean()


def check_loss_type(loss_type: str) -> str:
    if loss_type not in LOSS_TYPES:
        raise OneVAEError(f"adversarial loss type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    return loss_type


def discriminator_loss_fn(loss_type: str, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator loss of ``loss_type`` on given logits."""
    if check_loss_type(loss_type) == "hinge":
        return discriminator_hinge_loss(logits_real, logits_fake)
    return discriminator_vanilla_loss(logits_real, logits_fake)


def generator_loss_fn(loss_type: str, logits_fake: torch.Tensor) -> torch.Tensor:
    """The generator loss of ``loss_type``: -mean(D(x_hat)) except for ``non_saturating``."""
    if check_loss_type(loss_type) == "non_saturating":
        return generator_non_saturating_loss(logits_fake)
    return generator_hinge_loss(logits_fake)


def adopt_weight(weight: float, step: int, start_step: int) -> float:
    """``weight`` from ``start_step`` on, 0 before."""
    return weight if step >= start_step else 0.0


def adaptive_weight(
    rec_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer_weight: torch.Tensor,
    disc_weight: float = 1.0,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """VQGAN's balance: clamp(||d rec/d w|| / (||d g/d w|| + 1e-4), 0, max_weight) * disc_weight, detached.

    ``w`` is the decoder's last layer weight; both losses must depend on it (the graphs are kept).
    """
    rec_grad = _grad(rec_loss, last_layer_weight, "rec_loss")
    g_grad = _grad(g_loss, last_layer_weight, "g_loss")
    ratio = rec_grad.norm() / (g_grad.norm() + 1e-4)
    return (ratio.clamp(0.0, max_weight) * disc_weight).detach()


def _grad(loss: torch.Tensor, weight: torch.Tensor, name: str) -> torch.Tensor:
    if not loss.requires_grad:
        raise InputError(f"adaptive weight: {name} has no gradient graph (computed under no_grad or from detached tensors)")
    grad = torch.autograd.grad(loss, weight, retain_graph=True, allow_unused=True)[0]
    if grad is None:
        raise InputError(f"adaptive weight: {name} does not depend on the given last layer weight")
    return grad
