"""The official OneVAE checkpoint naming: ``model.*`` (the VAE), ``quant_conv.*``, ``post_quant_conv.*``.

An official Lightning ``.ckpt`` keeps these under ``state_dict`` next to EMA copies (``ema_*``), a codebook
usage counter (``codebook_used``), the discriminator and loss modules; a flat ``.safetensors`` in the same
naming holds just the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import PRESETS, OneVAEConfig, preset
from ..errors import CheckpointError
from ..model import OneVAE
from ..state_dict import LoadReport, copy_matching, require_complete
from .files import read_weights_file, unwrap_state_dict

MODEL_PREFIXES = ("model.", "quant_conv.", "post_quant_conv.")
# Parts of a training checkpoint that are not the tokenizer.
IGNORED_PREFIXES = ("discriminator", "loss.", "lpips", "perceptual", "quantize.", "quantizer.")
IGNORED_KEYS = ("codebook_used",)


def is_ema_key(key: str) -> bool:
    head = key.split(".", 1)[0]
    return head.startswith("ema_") or head.endswith("_ema") or head in ("ema", "model_ema")


def ema_candidates(key: str) -> list[str]:
    """Names an EMA copy of ``key`` may have: LitEma stores parameters with their dots removed, under one
    holder per module (``ema_model``, ``ema_quant_conv`` ...) or one for everything (``model_ema``)."""
    top, _, rest = key.partition(".")
    flat = rest.replace(".", "")
    return [f"ema_{top}.{flat}", f"{top}_ema.{flat}", f"model_ema.{key.replace('.', '')}", f"ema_{top}.{rest}", f"ema.{key}"]


def split_official_state(state: dict[str, torch.Tensor], use_ema: bool, report: LoadReport) -> dict[str, torch.Tensor]:
    """The tokenizer's weights out of a full training state dict; what is skipped goes to the report."""
    weights: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(MODEL_PREFIXES):
            weights[key] = value
        elif is_ema_key(key) or key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES):
            report.ignored.append(key)
        else:
            report.dropped.append(key)
    if use_ema:
        weights = _swap_in_ema(weights, state, report)
    return weights


def _swap_in_ema(weights: dict[str, torch.Tensor], state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    found, missing = {}, []
    for key, value in weights.items():
        match = next((c for c in ema_candidates(key) if c in state and state[c].shape == value.shape), None)
        if match is None:
            missing.append(key)
        else:
            found[key] = state[match]
    if not found:
        raise CheckpointError(f"{report.source}: asked for EMA weights, but the file holds no EMA copy of the model")
    if missing:
        # parameters have EMA copies; buffers-free RMS gammas etc. are parameters too, so this means a partial EMA
        report.notes.append(f"EMA copies missing for {len(missing)} tensors (kept the raw weights): {', '.join(missing[:4])}")
    report.notes.append(f"took EMA weights for {len(found)} tensors")
    return {**weights, **found}


def read_official_state(path: str | Path, use_ema: bool = False, trust: bool = False) -> tuple[dict[str, torch.Tensor], LoadReport]:
    report = LoadReport(source=str(path))
    state = unwrap_state_dict(read_weights_file(path, trust=trust), str(path))
    weights = split_official_state(state, use_ema, report)
    if not weights:
        raise CheckpointError(
            f"{path}: no OneVAE weights found (expected keys model.*, quant_conv.*, post_quant_conv.*; "
            f"first keys: {', '.join(list(state)[:3])}). A Wan2.1 .pth is loaded with --format wan."
        )
    return weights, report


def infer_preset(weights: dict[str, torch.Tensor]) -> str | None:
    """The released preset whose key names and shapes the weights have exactly, if any."""
    for name in ("onevae-888", "onevae-81616-fe", "onevae-161616-fe"):
        with torch.device("meta"):
            own = OneVAE(PRESETS[name]).state_dict()
        if set(own) == set(weights) and all(tuple(own[k].shape) == tuple(weights[k].shape) for k in own):
            return name
    return None


def load_official(
    path: str | Path,
    config: OneVAEConfig | str | None = None,
    use_ema: bool = False,
    strict: bool = True,
    trust: bool = False,
) -> tuple[OneVAE, LoadReport]:
    """Build a :class:`~onevae.OneVAE` from an official checkpoint. ``config``: a config or preset name; with
    None the released variant is recognised from the key shapes. Returns ``(model, report)``."""
    weights, report = read_official_state(path, use_ema=use_ema, trust=trust)
    if config is None:
        name = infer_preset(weights)
        if name is None:
            raise CheckpointError(f"{path}: its shapes match none of the released variants; name the variant (--variant)")
        config = preset(name)
        report.notes.append(f"recognised variant {name}")
    model = OneVAE(config)
    copy_matching(model, weights, report)
    if strict:
        require_complete(report, f"{model.config.name}")
    return model.eval(), report
