"""onevae.pipeline's file-level functions as a library user calls them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cli_helpers import TINY_ARCH
from onevae import OneVAE, OneVAEConfig
from onevae.io.video import probe_video
from onevae.pipeline import FitOptions, decode_to_video, encode_file, load_encoded_for, reconstruct_file, write_encoded

from media import make_clip, smooth_frames


@pytest.fixture(scope="module")
def model() -> OneVAE:
    torch.manual_seed(0)
    return OneVAE(OneVAEConfig(name="tiny-pipeline", **TINY_ARCH)).eval()


def test_every_public_path_argument_takes_str_and_pathlike(model, tmp_path):
    """docs/corpus.md's decode_to_video(model, grids, meta, "clip.mp4"), and the same for every path argument."""
    clip = make_clip(tmp_path / "clip.mp4", smooth_frames(5, 32, 40), fps=10)
    tokens = tmp_path / "clip.tokens.safetensors"
    grids, meta = encode_file(model, str(clip), FitOptions())
    write_encoded(_FsPath(tokens), grids, meta)
    grids, meta = load_encoded_for(model, str(tokens), meta.model_fingerprint)
    assert decode_to_video(model, grids, meta, str(tmp_path / "clip.out.mp4")) == 5
    assert decode_to_video(model, grids, meta, _FsPath(tmp_path / "clip.out2.mp4")) == 5
    assert probe_video(tmp_path / "clip.out.mp4").num_frames == 5
    result = reconstruct_file(model, _FsPath(clip), FitOptions(), str(tmp_path / "recon.mp4"))
    assert result.frames == 5 and probe_video(tmp_path / "recon.mp4").num_frames == 5


class _FsPath(os.PathLike):
    """A path type that is only os.PathLike (neither str nor pathlib)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def __fspath__(self) -> str:
        return self.path
