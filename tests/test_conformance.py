"""The official networks, number for number (../shared/conformance, tolerances of its README)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from onevae.compat import official

VARIANTS = ["onevae_888", "onevae_81616_fe", "onevae_161616_fe"]


def _fixture(conformance_dir, variant):
    meta = json.loads((conformance_dir / f"{variant}.json").read_text())
    model = official.load(str(conformance_dir / f"{variant}_weights.safetensors"), meta["config"])
    io = load_file(str(conformance_dir / f"{variant}_io.safetensors"))
    fe = meta["config"]["first_frame_highres"]
    names = ["first_frame", "rest"] if fe else ["all"]
    return model, io, names


@pytest.mark.parametrize("variant", VARIANTS)
def test_latents_and_tokens_match_official(conformance_dir, variant):
    model, io, names = _fixture(conformance_dir, variant)
    latents = official.encode_latents(model, io["video"])
    tokens = official.encode_tokens(model, io["video"])
    assert len(latents) == len(names) == len(tokens)
    for name, latent, token in zip(names, latents, tokens):
        ref_latent, ref_tokens = io[f"latent_{name}"], io[f"tokens_{name}"]
        assert latent.shape == ref_latent.shape
        assert (latent - ref_latent).abs().max() <= 1e-4
        assert token.dtype == torch.int64 and token.shape == ref_tokens.shape
        assert (token == ref_tokens).float().mean() >= 0.999


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoding_given_tokens_and_latents_matches_official(conformance_dir, variant):
    model, io, names = _fixture(conformance_dir, variant)
    from_tokens = official.decode_tokens(model, [io[f"tokens_{n}"] for n in names])
    from_latents = official.decode_latents(model, [io[f"latent_{n}"] for n in names])
    assert from_tokens.shape == io["recon_from_tokens"].shape
    assert (from_tokens - io["recon_from_tokens"]).abs().max() <= 1e-4
    assert (from_latents - io["recon_from_latent"]).abs().max() <= 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_streaming_mode_matches_official(conformance_dir, variant):
    model, io, names = _fixture(conformance_dir, variant)
    with torch.no_grad():
        latents = model.encode_latents(io["video"], mode="stream")
        video = model.decode_tokens([io[f"tokens_{n}"] for n in names], mode="stream")
    for name, latent in zip(names, latents.to_list()):
        assert (latent - io[f"latent_{name}"]).abs().max() <= 1e-4
    assert (video - io["recon_from_tokens"]).abs().max() <= 1e-4


def test_official_ckpt_layout_loads(conformance_dir, tmp_path):
    """A Lightning-style .ckpt: weights under state_dict, next to EMA copies, counters and a discriminator."""
    meta = json.loads((conformance_dir / "onevae_888.json").read_text())
    weights = load_file(str(conformance_dir / "onevae_888_weights.safetensors"))
    state = dict(weights)
    state["codebook_used"] = torch.zeros(65536, dtype=torch.long)
    state["discriminator.main.0.weight"] = torch.randn(4, 3, 3, 3, 3)
    state["ema_quant_conv.weight"] = weights["quant_conv.weight"] + 1
    ckpt = {"state_dict": state, "global_step": 470000, "optimizer_states": [], "hyper_parameters": {"lr": 5e-5}}
    path = tmp_path / "step=470000.ckpt"
    torch.save(ckpt, path)
    model = official.load(str(path), meta["config"])
    io = load_file(str(conformance_dir / "onevae_888_io.safetensors"))
    assert (official.decode_latents(model, [io["latent_all"]]) - io["recon_from_latent"]).abs().max() <= 1e-4
