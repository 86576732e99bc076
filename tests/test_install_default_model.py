"""scripts/install_default_model.py: its argument parsers and the latent statistics it ships with the default model."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from onevae import OneVAE
from onevae.io import write_video
from onevae.latent_stats import measure_latent_stats

from conftest import load_script, tiny_model


@pytest.fixture(scope="module")
def script():
    return load_script("install_default_model")


def test_gpu_stages_and_stage_steps_parse_or_refuse(script):
    assert script.parse_stages("7") == (7, 7) and script.parse_stages("7-9") == (7, 9)
    assert script.stage_words((7, 7)) == "stage 7" and script.stage_words((7, 9)) == "stages 7-9"
    assert script.parse_stage_steps("5=3600") == (5, 3600)
    for bad in ("x", "9-7", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            script.parse_stages(bad)
    for bad in ("5", "5=x", "0=10", "5=-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            script.parse_stage_steps(bad)


def test_latent_statistics_are_measured_on_the_videos_and_stored(script, tmp_path):
    model = tiny_model("wan")
    staging = tmp_path / "staging"
    model.save_pretrained(staging)
    rng = np.random.default_rng(0)
    videos = []
    for i in range(2):
        frames = np.clip(rng.normal(128, 40, (9, 32, 48, 3)), 0, 255).astype(np.uint8)  # (T, H, W, 3)
        write_video(tmp_path / f"clip{i}.mp4", frames, fps=24)
        videos.append(tmp_path / f"clip{i}.mp4")
    line = script.measure_and_store_latent_stats(OneVAE.from_pretrained(staging), staging, videos)
    assert "clip0, clip1" in line and "latent positions" in line
    stored = OneVAE.from_pretrained(staging).config
    # the same numbers as measuring the decoded files directly through the API
    from onevae.io.video import read_video

    clips = [read_video(v)[0].unsqueeze(0) for v in videos]  # (1, 3, 9, 32, 48) each
    mean, std = measure_latent_stats(model, clips)
    np.testing.assert_allclose(stored.latents_mean, mean, atol=2e-3)
    np.testing.assert_allclose(stored.latents_std, std, atol=2e-3)


def test_no_videos_means_no_statistics(script, tmp_path):
    model = tiny_model("wan")
    model.save_pretrained(tmp_path / "m")
    line = script.measure_and_store_latent_stats(OneVAE.from_pretrained(tmp_path / "m"), tmp_path / "m", [])
    assert line.startswith("none") and not OneVAE.from_pretrained(tmp_path / "m").config.has_latent_stats
