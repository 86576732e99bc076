"""Shared test fixtures: paths to the conformance data and small models."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ONEVAE_SHARED", REPO.parent / "shared"))
CONFORMANCE = SHARED / "conformance"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def require_conformance() -> Path:
    if not (CONFORMANCE / "README.md").is_file():
        pytest.skip(f"conformance fixtures not found at {CONFORMANCE} (set ONEVAE_SHARED)")
    return CONFORMANCE


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    return require_conformance()


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(variant: str = "888", **changes):
    """The fixtures' miniature configs (dim 16, z_dim 16) for each released variant."""
    from onevae import OneVAEConfig

    base = dict(dim=16, z_dim=16, num_res_blocks=2, fsq_levels=[8, 8, 8, 5, 5, 5], num_codebooks=2)
    variants = {
        "888": dict(name="tiny-888", dim_mult=[1, 2, 4, 4], temporal_downsample=[True, True, True]),
        "81616_fe": dict(name="tiny-81616-fe", dim_mult=[1, 2, 4, 4, 4], temporal_downsample=[False, True, True, True], first_frame_highres=True),
        "161616_fe": dict(name="tiny-161616-fe", dim_mult=[1, 2, 4, 4, 4], temporal_downsample=[True, True, True, True], first_frame_highres=True),
        "wan": dict(name="tiny-wan", dim_mult=[1, 2, 4, 4], temporal_downsample=[False, True, True], fsq_levels=None, num_codebooks=1),
    }
    return OneVAEConfig(**{**base, **variants[variant], **changes})


def tiny_model(variant: str = "888", seed: int = 0, **changes):
    """A tiny model with random, non-trivial weights (the zero-initialised attention output made non-zero)."""
    from onevae import OneVAE

    torch.manual_seed(seed)
    model = OneVAE(tiny_config(variant, **changes))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.normal_(0, 0.05)
    return model.eval()


def random_video(t: int, h: int, w: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, t, h, w, generator=g) * 1.6 - 0.8
