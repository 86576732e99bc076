"""What the command-line tests share: running ``onevae`` in a subprocess, the one-line user-error check, and a
tiny 4x8x8 model directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

# a 4x8x8 model small enough for a CPU test (the name differs per test file, so that fingerprints do too)
TINY_ARCH = dict(dim=8, z_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temporal_downsample=[False, True, True])


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "onevae.cli.main", *args], capture_output=True, text=True, timeout=600, env=full_env)


def assert_user_error(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit code 2, no traceback, and one last line ``onevae CMD: error: ...`` naming ``message``."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("onevae ") and ": error: " in lines[-1], result.stderr
    assert message in lines[-1], lines[-1]


def save_tiny_model(directory: Path, name: str, seed: int = 0) -> Path:
    """A tiny random model saved as a model directory."""
    from onevae import OneVAE, OneVAEConfig

    torch.manual_seed(seed)
    OneVAE(OneVAEConfig(name=name, **TINY_ARCH)).save_pretrained(directory)
    return directory
