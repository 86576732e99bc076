"""scripts/probe_post_hoc_refit.py: the patches it reads are the ones the decoder's last convolution reads, and its
least-squares fits recover known weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_script, random_video, tiny_model


@pytest.fixture(scope="module")
def probe():
    return load_script("probe_post_hoc_refit")


def test_head_patches_times_the_head_weights_give_the_decoder_output(probe):
    model = tiny_model("888").eval()
    captured = probe.capture_head_input(model)
    video = random_video(9, 32, 32)
    with torch.no_grad():
        out = model.decode_latents(model.encode_latents(video))  # (1, 3, 9, 32, 32)
    (x,) = captured
    t, h, w = torch.tensor([0, 3, 8, 8]), torch.tensor([0, 31, 5, 17]), torch.tensor([0, 31, 30, 2])  # corners, edges
    predicted = probe.head_patches(x, t, h, w).double() @ probe.head_weights(model)  # (4, 3)
    assert torch.allclose(predicted.float(), out[0][:, t, h, w].T, atol=1e-5)


def test_normal_equations_recover_known_weights_and_the_ridge_pulls_to_the_start(probe):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.c_[rng.normal(size=(500, 6)), np.ones(500)])  # (N, 7), last column the bias
    truth = torch.from_numpy(rng.normal(size=(7, 2)))
    y = x @ truth
    gram, cross, energy = x.T @ x, x.T @ y, float((y * y).sum())
    start = torch.zeros(7, 2, dtype=torch.float64)
    fitted = probe.ridge_towards(gram, cross, start, 0.0)
    assert torch.allclose(fitted, truth, atol=1e-8)
    assert probe.mean_squared_error(fitted, gram, cross, energy) == pytest.approx(0, abs=1e-8)
    assert probe.mean_squared_error(start, gram, cross, energy) == pytest.approx(float((y * y).mean(0).sum()))
    assert torch.allclose(probe.ridge_towards(gram, cross, start, 1e9), start, atol=1e-6)


def test_post_quant_fit_only_improves_and_setting_the_weights_round_trips(probe):
    model = tiny_model("888").eval()
    clips = [random_video(9, 32, 32, seed=s) for s in range(2)]
    gram, cross, energy = probe.post_quant_normal_equations(model, clips)
    current = probe.post_quant_weights(model)
    fitted = probe.ridge_towards(gram, cross, current, 1e-9)
    assert probe.mean_squared_error(fitted, gram, cross, energy) < probe.mean_squared_error(current, gram, cross, energy)
    tokens = model.encode_tokens(clips[0])
    before = model.tokens_to_latents(tokens).rest
    probe.set_post_quant_weights(model, current)
    assert torch.equal(model.tokens_to_latents(tokens).rest, before)
    probe.set_post_quant_weights(model, fitted)
    assert torch.equal(model.encode_tokens(clips[0]).rest, tokens.rest)  # the refit decodes; every token stays
    assert not torch.equal(model.tokens_to_latents(tokens).rest, before)
