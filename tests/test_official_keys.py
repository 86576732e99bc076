"""Full-size presets have exactly the official key names, shapes and parameter counts."""

from __future__ import annotations

import json

import pytest
import torch

from onevae import OneVAE

PAIRS = [("onevae_888", "onevae-888"), ("onevae_81616_fe", "onevae-81616-fe"), ("onevae_161616_fe", "onevae-161616-fe"), ("wan2.1_vae", "wan2.1")]


@pytest.mark.parametrize("official_name,preset", PAIRS)
def test_preset_matches_official_keys(conformance_dir, official_name, preset):
    reference = json.loads((conformance_dir / "official_keys.json").read_text())
    with torch.device("meta"):
        model = OneVAE(preset)
    # Wan2.1 checkpoints have no "model." prefix: compare the VAE itself
    state = model.model.state_dict() if preset == "wan2.1" else model.state_dict()
    expected = reference[official_name]
    assert sorted(state) == sorted(expected)
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert sum(v.numel() for v in state.values()) == reference[f"{official_name}.params"]
    assert model.num_parameters() == sum(v.numel() for v in model.state_dict().values())


def test_preset_compression_and_vocabulary():
    with torch.device("meta"):
        m888, m81616, m161616 = OneVAE("onevae-888"), OneVAE("onevae-81616-fe"), OneVAE("onevae-161616-fe")
    assert (m888.config.temporal_factor, m888.config.spatial_factor) == (8, 8)
    assert (m81616.config.temporal_factor, m81616.config.spatial_factor) == (8, 16)
    assert (m161616.config.temporal_factor, m161616.config.spatial_factor) == (16, 16)
    assert m888.config.vocab_size == 64000 and m888.config.num_codebooks == 2
    # token counts of the notes' table (§2.3)
    assert m888.config.tokens_per_clip(33, 256, 256) == 10240
    assert m81616.config.tokens_per_clip(33, 256, 256) == 4096
    assert m161616.config.tokens_per_clip(33, 256, 256) == 3072
    assert m81616.config.tokens_per_clip(17, 256, 256) == 3072
