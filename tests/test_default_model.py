"""The tokenizer shipped in the package: it loads with no model named, and reconstructs the held-out clip
about as well as its model card says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from onevae import OneVAE
from onevae.io.samples import sample_video_path
from onevae.io.video import read_video
from onevae.model_dir import default_model_dir

# Measured on the first 17 frames of carphone_pristine when the model was installed (MODEL_CARD.md has the
# whole clip); a margin of 0.5 dB absorbs codec and BLAS differences between machines.
FIRST_17_PSNR = {"tokens": 23.26, "latents": 23.43}


def test_default_model_is_shipped_and_self_describing():
    directory = default_model_dir()
    assert {"config.json", "model.safetensors", "MODEL_CARD.md"} <= {p.name for p in directory.iterdir()}
    assert (directory / "model.safetensors").stat().st_size < 25 * 2**20
    model = OneVAE.from_pretrained(None)
    assert model.config.name == "onevae-small" and model.config.discrete
    assert model.config.temporal_factor == 4 and model.config.spatial_factor == 8
    assert OneVAE("onevae-small").config.replace(latents_mean=None, latents_std=None) == model.config.replace(
        latents_mean=None, latents_std=None)  # the preset is the shipped architecture


def test_the_readme_states_the_shipped_models_shapes():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("# the shipped model"))
    model = OneVAE.from_pretrained(None)
    with torch.inference_mode():
        latents = model.encode_latents(torch.zeros(1, 3, 17, 256, 256))
        tokens = model.latents_to_tokens(latents)
    assert tokens.first is None and latents.first is None
    shape = lambda t: "(" + ",".join(str(n) for n in t.shape) + ")"  # noqa: E731
    assert f"tokens .first None, .rest {shape(tokens.rest)}; latents {shape(latents.rest)}" in line


def test_default_model_reconstructs_the_held_out_clip():
    model = OneVAE.from_pretrained(None)
    video, _ = read_video(sample_video_path("carphone_pristine"), max_frames=17)
    video = video.unsqueeze(0)  # (1, 3, 17, 144, 176)
    with torch.no_grad():
        for path, discrete in (("tokens", True), ("latents", False)):
            recon = model.reconstruct(video, discrete=discrete)
            mse = (((recon + 1) / 2 - (video + 1) / 2) ** 2).mean(dim=(0, 1, 3, 4))
            psnr = float((10 * torch.log10(1 / mse)).mean())
            assert psnr > FIRST_17_PSNR[path] - 0.5, (path, psnr)


def test_reconstruct_with_no_model_and_no_video(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "onevae.cli.main", "reconstruct", "--max-frames", "9", "--json", "--quiet"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] == "onevae-small" and summary["frames"] == 9
    assert summary["metrics"]["tokens"]["psnr"] > 15


def test_default_model_ships_latent_statistics_that_normalise_unseen_video():
    """Measured on the training videos at installation; on the held-out clip the normalised latents come out
    near zero mean and unit spread per channel (what a diffusion model is trained on)."""
    model = OneVAE.from_pretrained(None)
    assert model.config.has_latent_stats and len(model.config.latents_std) == model.config.z_dim
    video, _ = read_video(sample_video_path("carphone_pristine"), max_frames=17)
    with torch.no_grad():
        normalised = model.normalize_latents(model.encode_latents(video.unsqueeze(0))).rest  # (1, z, 5, 18, 22)
    per_channel = normalised.transpose(0, 1).flatten(1)  # (z, N)
    assert per_channel.mean(dim=1).abs().max() < 1.0, per_channel.mean(dim=1)
    assert per_channel.std(dim=1).mean() == pytest.approx(1.0, abs=0.35)
