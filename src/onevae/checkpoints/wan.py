"""The Wan2.1 video VAE ``.pth``: keys ``encoder.*``, ``conv1.*``, ``conv2.*``, ``decoder.*`` (our ``model.*``).

Used either as it is (the continuous-only ``wan2.1`` preset) or as a continuous prior for a larger or discrete
model: tensors whose name and shape match are copied, the rest keep their fresh initialisation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import OneVAEConfig
from ..errors import CheckpointError
from ..model import OneVAE
from ..state_dict import LoadReport, copy_matching, require_complete
from .files import read_weights_file, unwrap_state_dict

WAN_PREFIXES = ("encoder.", "decoder.", "conv1.", "conv2.")


def read_wan_state(path: str | Path, trust: bool = False) -> dict[str, torch.Tensor]:
    """The Wan2.1 weights renamed into our naming (``model.`` prefix)."""
    state = unwrap_state_dict(read_weights_file(path, trust=trust), str(path))
    return wan_to_onevae_names(state, str(path))


def wan_to_onevae_names(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Wan2.1 keys renamed into our naming; any other key is kept under its own name, so that loading reports
    it as dropped instead of losing it silently."""
    renamed = {}
    for key, value in state.items():
        bare = key.removeprefix("module.")
        if bare.startswith(WAN_PREFIXES):
            renamed["model." + bare] = value
        elif bare.startswith("model.") and bare[len("model.") :].startswith(WAN_PREFIXES):
            renamed[bare] = value
        else:
            renamed[key] = value
    if not any(k.startswith("model.") for k in renamed):
        raise CheckpointError(f"{source}: no Wan2.1 VAE keys found (expected encoder.*, decoder.*, conv1.*, conv2.*)")
    return renamed


def load_wan_prior(model, state_or_path, trust: bool = False) -> LoadReport:
    """Initialise ``model`` (any OneVAE config) from Wan2.1 weights where names and shapes match."""
    if isinstance(state_or_path, (str, Path)):
        source, state = str(state_or_path), read_wan_state(state_or_path, trust)
    else:
        source, state = "Wan2.1 state dict", wan_to_onevae_names(dict(state_or_path), "Wan2.1 state dict")
    report = copy_matching(model, state, LoadReport(source=source))
    report.notes.append("continuous prior: keys that did not match keep their fresh initialisation")
    return report


def load_wan(path: str | Path, trust: bool = False, config: OneVAEConfig | str | None = None) -> tuple[OneVAE, LoadReport]:
    """The Wan2.1 VAE itself (continuous only, 4x8x8, 16 channels; or ``config``), loaded strictly.
    Returns ``(model, report)``."""
    model = OneVAE(config or "wan2.1")
    state = read_wan_state(path, trust)
    foreign = [k for k in state if not k.startswith("model.")]
    report = copy_matching(model, {k: v for k, v in state.items() if k not in foreign}, LoadReport(source=str(path)))
    require_complete(report, model.config.name)
    if foreign:  # e.g. other networks saved in the same file: listed, not hidden
        report.dropped += foreign
        report.notes.append(f"{len(foreign)} tensors are not Wan2.1 VAE weights and were not used")
    return model.eval(), report
