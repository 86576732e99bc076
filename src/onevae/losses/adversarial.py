"""Adversarial terms: hinge (or non-saturating) losses, the start step, and VQGAN's adaptive weight."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_hinge_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def discriminator_vanilla_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def generator_hinge_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """-mean(D(x_hat))."""
    return -logits_fake.mean()


def adopt_weight(weight: float, step: int, start_step: int) -> float:
    """``weight`` from ``start_step`` on, 0 before."""
    return weight if step >= start_step else 0.0


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer_weight: torch.Tensor, disc_weight: float = 1.0, max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN: ||d rec / d w|| / (||d g / d w|| + 1e-4) * disc_weight, at the decoder's last layer, detached."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer_weight, retain_graph=True)[0]
    weight = rec_grad.norm() / (g_grad.norm() + 1e-4)
    return (weight.clamp(0.0, max_weight) * disc_weight).detach()
