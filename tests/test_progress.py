"""The progress bars of encode, decode and reconstruct: frames of the video on every path (untiled, tiled frame by
frame, tile by tile), a tile-by-tile pass moving tile by tile and piece by piece, never frames x tiles; on
stderr as before, nothing with --quiet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from cli_helpers import TINY_ARCH, save_tiny_model
from onevae import OneVAE, OneVAEConfig, Tiling
from onevae.cli.main import main as cli_main
from onevae.pipeline import FitOptions, decode_to_video, encode_file, plan_streaming, plan_tiling, reconstruct_file
from onevae.progress import FrameProgress

from media import make_clip, smooth_frames

FRAMES, HEIGHT, WIDTH = 7, 48, 64  # 7 frames: the last latent frame is padded to 9 frames
# For a 48x64 frame of the 4x8x8 tiny model: every tile's caches at once do not fit in it, one 40-pixel tile's do
# (tiles of 40 overlapping by 8: 2 x 2 tiles), so decode and reconstruct go tile by tile, as 1080p does for real.
BUDGET = {"ONEVAE_AVAILABLE_MEMORY": str(int(5_000_000 / 0.8))}
TILES = 4


class RecordingProgress(FrameProgress):
    """FrameProgress that keeps its passes: name, tiles and (tile, frames done) after every advance."""

    made: list[RecordingProgress] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.passes = [{"name": None, "tiles": 1, "ticks": []}]
        RecordingProgress.made.append(self)

    def start_pass(self, name: str | None = None, tiles: int = 1) -> None:
        super().start_pass(name, tiles)
        if not self.passes[-1]["ticks"]:  # the bar's first pass, named
            self.passes.pop()
        self.passes.append({"name": name, "tiles": tiles, "ticks": []})

    def advance(self, frames: int, tile: int | None = None) -> None:
        super().advance(frames, tile)
        self.passes[-1]["ticks"].append((tile, self.frames))

    def summary(self) -> list[tuple[str | None, int, int]]:
        """(name, tiles, frames counted at its end) per pass."""
        return [(p["name"], p["tiles"], p["ticks"][-1][1] if p["ticks"] else 0) for p in self.passes]


@pytest.fixture
def bars(monkeypatch) -> list[RecordingProgress]:
    RecordingProgress.made = []
    monkeypatch.setattr("onevae.pipeline.FrameProgress", RecordingProgress)
    return RecordingProgress.made


@pytest.fixture(scope="module")
def model() -> OneVAE:
    torch.manual_seed(0)
    return OneVAE(OneVAEConfig(name="tiny-progress", **TINY_ARCH)).eval()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", smooth_frames(FRAMES, HEIGHT, WIDTH), fps=10)


@pytest.fixture
def low_memory(monkeypatch, model) -> None:
    monkeypatch.setenv(*next(iter(BUDGET.items())))
    assert plan_streaming(lambda tbt: plan_tiling(model, HEIGHT, WIDTH, 4, tbt), HEIGHT, WIDTH) == (Tiling(40, 8), True)


def assert_moves_tile_by_tile(ticks: list[tuple[int | None, int]], per_tile: int) -> None:
    """Ticks of a pass of TILES tiles: every tile in order, each in ``per_tile`` steps, the count never going
    back and reaching a tile's share of the frames at each tile's end."""
    assert [t for t, _ in ticks] == [t for t in range(TILES) for _ in range(per_tile)]
    assert [f for _, f in ticks] == sorted(f for _, f in ticks)
    ends = [f for (t, f), nxt in zip(ticks, ticks[1:] + [(None, None)]) if nxt[0] != t]
    assert ends == [(k + 1) * FRAMES // TILES for k in range(TILES)]


def test_encode_counts_frames_untiled_and_tile_by_tile(model, clip, bars, low_memory, monkeypatch):
    options = FitOptions(chunk_latents=1)
    encode_file(model, clip, options)  # tile by tile: the file read once per tile
    monkeypatch.delenv("ONEVAE_AVAILABLE_MEMORY")
    encode_file(model, clip, options)  # untiled
    tiled, untiled = bars
    assert tiled.total == untiled.total == FRAMES
    assert tiled.summary() == [(None, TILES, FRAMES)] and untiled.summary() == [(None, 1, FRAMES)]
    # each tile announced, then its windows of 4 + 3 frames, counted once they have gone through its encoder
    assert_moves_tile_by_tile(tiled.passes[0]["ticks"], per_tile=3)


def test_decode_tile_by_tile_moves_per_tile_and_per_chunk(model, clip, bars, low_memory, tmp_path, monkeypatch):
    """The tile-by-tile decode counted every piece of every tile (it was silent until done), then the writing;
    frame by frame, the frames written."""
    monkeypatch.delenv("ONEVAE_AVAILABLE_MEMORY")
    grids, meta = encode_file(model, clip, FitOptions(chunk_latents=1))
    assert decode_to_video(model, grids, meta, tmp_path / "frame_by_frame.mp4", chunk_latents=1) == FRAMES
    monkeypatch.setenv(*next(iter(BUDGET.items())))
    assert decode_to_video(model, grids, meta, tmp_path / "tile_by_tile.mp4", chunk_latents=1) == FRAMES
    _, frame_by_frame, tile_by_tile = bars
    assert frame_by_frame.total == tile_by_tile.total == FRAMES
    assert frame_by_frame.summary() == [(None, 1, FRAMES)]
    assert tile_by_tile.summary() == [(None, TILES, FRAMES), ("write", 1, FRAMES)]  # not the 2 padded frames
    assert_moves_tile_by_tile(tile_by_tile.passes[0]["ticks"], per_tile=3)  # one piece per latent frame: 1 + 4 + 2 frames


def test_reconstruct_counts_each_pass_in_frames(model, clip, bars, low_memory, tmp_path, monkeypatch):
    options = FitOptions(chunk_latents=1)
    assert reconstruct_file(model, clip, options, tmp_path / "tile_by_tile.mp4").frames == FRAMES
    monkeypatch.delenv("ONEVAE_AVAILABLE_MEMORY")
    assert reconstruct_file(model, clip, options, None).frames == FRAMES
    tile_by_tile, frame_by_frame = bars
    assert tile_by_tile.total == frame_by_frame.total == FRAMES
    assert frame_by_frame.summary() == [(None, 1, FRAMES)]
    assert tile_by_tile.summary() == [("encode", TILES, FRAMES), ("decode tokens", TILES, FRAMES),
                                      ("decode latents", TILES, FRAMES), ("compare", 1, FRAMES)]
    for tile_pass in tile_by_tile.passes[:3]:
        assert_moves_tile_by_tile(tile_pass["ticks"], per_tile=3)


def bar_totals(stderr: str) -> set[str]:
    """The totals that tqdm drew: '| 3/7 [' -> '7'."""
    return set(re.findall(r"\| \d+/(\d+) \[", stderr))


def test_the_command_line_draws_frames_of_the_video_and_nothing_with_quiet(clip, tmp_path, monkeypatch, capsys):
    model_dir = save_tiny_model(tmp_path / "model", "tiny-progress")
    tokens, out = tmp_path / "t.tokens.safetensors", tmp_path / "o.mp4"
    monkeypatch.setenv(*next(iter(BUDGET.items())))
    common = ["--model", str(model_dir), "--chunk", "1"]
    assert cli_main(["encode", str(clip), "-o", str(tokens), *common]) == 0
    err = capsys.readouterr().err
    assert bar_totals(err) == {str(FRAMES)} and "frame/s" in err and f"tile {TILES}/{TILES}" in err  # not 28 (7 x 4 tiles)
    assert cli_main(["decode", str(tokens), "-o", str(out), *common]) == 0
    err = capsys.readouterr().err
    assert bar_totals(err) == {str(FRAMES)} and f"tile {TILES}/{TILES}" in err and f"decode {out.name} [write]" in err
    assert cli_main(["reconstruct", str(clip), "-o", str(tmp_path / "r.mp4"), *common]) == 0
    err = capsys.readouterr().err
    assert bar_totals(err) == {str(FRAMES)}
    assert all(f"reconstruct {clip.name} [{name}]" in err for name in ("encode", "decode tokens", "decode latents", "compare"))
    for command in (["encode", str(clip), "-o", str(tmp_path / "q.tokens.safetensors")], ["decode", str(tokens), "-o", str(tmp_path / "q.mp4")]):
        assert cli_main([*command, *common, "--quiet"]) == 0  # reconstruct's --quiet is the same switch
        err = capsys.readouterr().err
        assert "frame/s" not in err and not bar_totals(err), command
