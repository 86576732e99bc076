"""onevae.pipeline's file-level functions as a library user calls them."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from cli_helpers import TINY_ARCH
from onevae import OneVAE, OneVAEConfig
from onevae.io.video import probe_video
from onevae.io.writer import OutputSizeWarning
from onevae.pipeline import FitOptions, decode_to_video, encode_file, load_encoded_for, reconstruct_file, write_encoded

from media import make_clip, smooth_frames, stored_sample_aspect


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


@pytest.mark.parametrize("mode, max_side, size", [
    ("crop", None, (56, 40)),  # 61x45 cropped to multiples of 8: the crop stays
    ("crop", 32, (61, 45)),  # downscaled to 32x24 (already multiples), then brought back to the source scale
    ("pad", None, (61, 45)),
    ("resize", 32, (61, 45)),
])
def test_decode_and_reconstruct_write_the_same_geometry(model, tmp_path, mode, max_side, size):
    """The same options give the same output size from encode + decode as from reconstruct; an odd size is
    written one pixel larger (yuv420p), with one OutputSizeWarning."""
    clip = make_clip(tmp_path / "clip.mkv", smooth_frames(3, 45, 61), fps=10, codec="ffv1", pix_fmt="yuv444p")
    options = FitOptions(size_mode=mode, max_side=max_side)
    grids, meta = encode_file(model, clip, options)
    written = (size[0] + size[0] % 2, size[1] + size[1] % 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decode_to_video(model, grids, meta, tmp_path / "decoded.mp4")
        reconstruct_file(model, clip, options, tmp_path / "reconstructed.mp4")
    for name in ("decoded.mp4", "reconstructed.mp4"):
        info = probe_video(tmp_path / name)
        assert (info.width, info.height) == written, name
    notices = [str(w.message) for w in caught if issubclass(w.category, OutputSizeWarning)]
    expected = f"is written as {written[0]}x{written[1]}, not {size[0]}x{size[1]}"
    assert len(notices) == (2 if written != size else 0) and all(expected in n for n in notices)


def test_decode_tags_the_fitted_frames_of_a_resize_with_their_own_sample_aspect_ratio(model, tmp_path):
    """50x70 samples of 32:27 resized to 48x72: brought back to 50x70 they are 32:27; kept at 48x72 (no undo) each
    sample is 70/72 as wide and 50/48 as tall, 448:405, so the picture still displays as the source does."""
    clip = make_clip(tmp_path / "dv.mp4", smooth_frames(3, 50, 70), fps=10, sample_aspect_ratio=Fraction(32, 27))
    grids, meta = encode_file(model, clip, FitOptions(size_mode="resize"))
    decode_to_video(model, grids, meta, tmp_path / "undone.mp4")
    decode_to_video(model, grids, meta, tmp_path / "fitted.mp4", size_mode_undo=False)
    undone, fitted = probe_video(tmp_path / "undone.mp4"), probe_video(tmp_path / "fitted.mp4")
    assert (undone.width, undone.height, stored_sample_aspect(undone.path)) == (70, 50, Fraction(32, 27))
    assert (fitted.width, fitted.height, stored_sample_aspect(fitted.path)) == (72, 48, Fraction(448, 405))
    assert 70 * Fraction(32, 27) / 50 == 72 * Fraction(448, 405) / 48  # the same display aspect


class _FsPath(os.PathLike):
    """A path type that is only os.PathLike (neither str nor pathlib)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def __fspath__(self) -> str:
        return self.path


def test_piece_frames_is_the_largest_piece_a_clip_streams_in(model):
    """Frame 0 alone, then chunks; the last piece padded (padding.padding_for) to a multiple of tf; at least tf."""
    from onevae.pipeline import piece_frames

    with torch.device("meta"):
        model_888 = OneVAE("onevae-888")
    cases = {  # (model, chunk frames): {clip frames (None or 0: unknown): planned frames}
        (model, 8): {None: 8, 0: 8, 1: 4, 2: 4, 5: 4, 6: 8, 9: 8, 10: 8, 100: 8},
        (model, 12): {1: 4, 9: 8, 10: 12, 13: 12, 14: 12},
        (model_888, 16): {1: 8, 2: 8, 9: 8, 10: 16, 17: 16, 18: 16, 1000: 16},
    }
    for (vae, chunk), expected in cases.items():
        assert {n: piece_frames(vae, chunk, n) for n in expected} == expected, (vae.config.temporal_factor, chunk)
