"""Growing a trained network into a wider one (more channels per stage, same everything else) so that the wider
network starts out computing what the narrower one computed (Net2Net-style function-preserving growth).

Why: the default tokenizer's capacity, not its training, bounds its quality (docs/default_model.md, "How far
can onevae-small go?"). Starting a wider model from scratch would throw away every hour spent on the narrow one;
grown from it, the wider model starts at the narrow model's quality and training only has to use the new
channels.

How, per layer (the old channels keep their indices at the front of every channel group)::

    convolution      old block copied; new input columns 0 (the output ignores the new channels);
                     new output rows random, at ``noise`` times the old rows' scale, bias 0
    RMSNorm          gamma * sqrt(C_old / C_new): it normalises over channels and multiplies by sqrt(C)
    attention        q rows (and bias) * sqrt(C_new / C_old): scaled dot-product attention divides by sqrt(C);
                     new q rows 0, so that q.k only sees the old channels
    grouped outputs  to_qkv's [q, k, v] and upsample3d's two time halves widen group by group

Only the channel norms see the new channels, so the wide model's output differs from the narrow one's by about
``noise**2`` relative: ``noise`` 0.01 reproduces onevae-small to 5e-6 (every token equal), the default 1.0 to
42.5 dB PSNR (its reconstruction error against the input barely moves: 23.07 -> 23.06 dB on 17 frames of carphone). Why
not near zero: new channels whose values are tiny get gradients below AdamW's epsilon in their outgoing
weights and stay unused (measured: after 1,500 steps from 0.01, the deep layers' new weights were 1 % of the
old ones); at 1.0 they carry a real signal from the first step and the next layer learns to use it.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn

from ..config import OneVAEConfig
from ..errors import CheckpointError
from .layers import AttentionBlock, Resample, RMSNorm

DEFAULT_NOISE = 1.0  # the new output rows' scale relative to the old rows' (see the module docstring)


def check_widening(narrow: OneVAEConfig, wide: OneVAEConfig) -> None:
    """Refuse pairs that differ in anything but a larger ``dim`` (one clear line)."""
    if wide.dim <= narrow.dim:
        raise CheckpointError(f"can only grow a model into a wider one: dim {narrow.dim} -> {wide.dim}")
    ignore = {"name", "dim", "latents_mean", "latents_std"}
    a = {k: v for k, v in dataclasses.asdict(narrow).items() if k not in ignore}
    b = {k: v for k, v in dataclasses.asdict(wide).items() if k not in ignore}
    differ = sorted(k for k in a if a[k] != b.get(k))
    if differ:
        raise CheckpointError(f"can only grow a model's width (dim); these differ too: {', '.join(differ)}")


@torch.no_grad()
def widen_into(wide: nn.Module, narrow: nn.Module, noise: float = DEFAULT_NOISE, seed: int = 0) -> list[str]:
    """Copy ``narrow``'s weights into the wider ``wide`` (same module tree, more channels); returns the names of
    the parameters that grew. Both are modules of the same class (``OneVAE`` or ``CausalVAE``)."""
    generator = torch.Generator().manual_seed(seed)
    narrow_modules = dict(narrow.named_modules())
    grown: list[str] = []
    for name, module in wide.named_modules():
        old = narrow_modules.get(name)
        if old is None or type(old) is not type(module):
            raise CheckpointError(f"cannot grow: module {name or '(root)'} differs between the two networks")
        if isinstance(module, RMSNorm):
            grown += _widen_norm(module, old, name)
        elif isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            groups = _output_groups(name, wide)
            grown += _widen_linear(module, old, name, groups, noise, generator)
    for name, module in wide.named_modules():
        if isinstance(module, AttentionBlock):
            _rescale_queries(module, narrow_modules[name])
    return grown


def _output_groups(name: str, root: nn.Module) -> int:
    """How many channel groups a layer's output holds: 3 for attention's [q, k, v], 2 for the two time halves
    of a temporal up-sampling, else 1."""
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if isinstance(parent, AttentionBlock) and leaf == "to_qkv":
        return 3
    if isinstance(parent, Resample) and leaf == "time_conv" and parent.mode == "upsample3d":
        return 2
    return 1


def _grouped_index(old: int, new: int, groups: int) -> torch.Tensor:
    """Positions in the wide axis of the narrow axis's entries, group by group (old channels first)."""
    if old % groups or new % groups:
        raise CheckpointError(f"cannot grow {old} channels in {groups} groups into {new}")
    o, n = old // groups, new // groups
    return torch.cat([torch.arange(g * n, g * n + o) for g in range(groups)])


def _widen_linear(module: nn.Module, old: nn.Module, name: str, groups: int, noise: float, generator: torch.Generator) -> list[str]:
    weight, old_weight = module.weight, old.weight  # (out, in, *kernel)
    if weight.shape == old_weight.shape:
        weight.copy_(old_weight)
        if module.bias is not None:
            module.bias.copy_(old.bias)
        return []
    out_index = _grouped_index(old_weight.shape[0], weight.shape[0], groups)
    in_count = old_weight.shape[1]
    fresh = torch.randn(weight.shape, generator=generator, dtype=torch.float32) * (noise * old_weight.float().std())
    fresh[:, in_count:] = 0.0  # new inputs are ignored
    fresh[out_index, :in_count] = old_weight.float()
    weight.copy_(fresh.to(weight.dtype))
    if module.bias is not None:
        bias = torch.zeros(module.bias.shape, dtype=torch.float32)
        bias[out_index] = old.bias.float()
        module.bias.copy_(bias.to(module.bias.dtype))
    return [f"{name}.weight"] + ([f"{name}.bias"] if module.bias is not None else [])


def _widen_norm(module: RMSNorm, old: RMSNorm, name: str) -> list[str]:
    old_count, new_count = old.gamma.shape[0], module.gamma.shape[0]
    ratio = math.sqrt(old_count / new_count)
    gamma = torch.full(module.gamma.shape, float(old.gamma.float().mean()), dtype=torch.float32)
    gamma[:old_count] = old.gamma.float()
    module.gamma.copy_((gamma * ratio).to(module.gamma.dtype))
    return [f"{name}.gamma"] if new_count != old_count else []


def _rescale_queries(module: AttentionBlock, old: AttentionBlock) -> None:
    """Keep q.k / sqrt(C) unchanged: the new query channels start at 0 (so the new channels add nothing to q.k;
    they get gradients through the new keys), and the old ones grow with the divisor."""
    old_dim, new_dim = old.proj.weight.shape[0], module.proj.weight.shape[0]
    if old_dim == new_dim:
        return
    module.to_qkv.weight[old_dim:new_dim] = 0.0
    factor = math.sqrt(new_dim / old_dim)
    module.to_qkv.weight[:new_dim] *= factor
    module.to_qkv.bias[:new_dim] *= factor
