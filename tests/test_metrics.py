"""Metrics: PSNR (cap, hand computation), SSIM, per-clip summary, codebook usage and its rolling tracker."""

from __future__ import annotations

import math

import pytest
import torch

from onevae.errors import InputError
from onevae.eval import PSNR_CAP, clip_metrics, codebook_usage, psnr_per_frame, ssim_per_frame


def clip(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g) - 0.5  # in [-0.5, 0.5]: offsets below stay inside [-1, 1]


def test_psnr_identical_is_capped_at_100():
    ref = clip(3, 4, 16, 16)
    psnr = psnr_per_frame(ref, ref.clone())
    assert psnr.shape == (4,) and PSNR_CAP == 100.0
    assert torch.all(psnr == 100.0)


def test_psnr_matches_hand_computation_for_constant_offsets():
    ref = clip(3, 3, 16, 16, seed=1)
    offsets = torch.tensor([0.05, 0.1, 0.2])  # in [-1, 1] units, one per frame
    rec = ref + offsets.view(1, 3, 1, 1)
    # in [0, 1] the offset halves: MSE = (d / 2)^2, PSNR = 10 log10(1 / MSE)
    expected = torch.tensor([10 * math.log10(1 / (d / 2) ** 2) for d in offsets.tolist()])
    assert torch.allclose(psnr_per_frame(ref, rec), expected, atol=1e-3)
    assert psnr_per_frame(ref, rec)[1].item() == pytest.approx(26.0206, abs=1e-3)


def test_batches_average_over_clips_per_frame():
    ref = clip(2, 3, 2, 16, 16, seed=2)
    rec = ref.clone()
    rec[0, :, 0] += 0.1  # clip 0 frame 0: 26.02 dB; clip 1 frame 0: capped 100
    psnr = psnr_per_frame(ref, rec)
    assert psnr.shape == (2,)
    assert psnr[0].item() == pytest.approx((26.0206 + 100) / 2, abs=1e-3) and psnr[1].item() == 100.0
    assert ssim_per_frame(ref, rec).shape == (2,)


def test_ssim_identical_is_one_and_lower_otherwise():
    ref = clip(3, 2, 24, 24, seed=3)
    assert torch.allclose(ssim_per_frame(ref, ref.clone()), torch.ones(2), atol=1e-5)
    noisy = ref + 0.3 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(4))
    assert torch.all(ssim_per_frame(ref, noisy) < 0.9)


def test_clip_metrics_and_input_errors():
    ref = clip(3, 2, 16, 16, seed=5)
    m = clip_metrics(ref, ref + 0.1)
    assert set(m) == {"psnr", "ssim", "psnr_per_frame", "ssim_per_frame"}
    assert m["psnr"] == pytest.approx(26.0206, abs=1e-3) and len(m["ssim_per_frame"]) == 2
    with pytest.raises(InputError, match="differ in shape"):
        psnr_per_frame(ref, ref[:, :1])
    with pytest.raises(InputError, match="expected a video"):
        psnr_per_frame(ref[0], ref[0])
    # frames below the 11x11 window (the model takes 8x8) get a fitting window instead of a refusal (issue 13, D19)
    small = clip(3, 1, 8, 8)
    assert ssim_per_frame(small, small).tolist() == pytest.approx([1.0])
    assert 0.0 < float(ssim_per_frame(small, (small + 0.2).clamp(-1, 1))) < 0.99


def test_codebook_usage_on_known_indices():
    indices = torch.tensor([[[0, 1], [0, 2]], [[3, 2], [3, 2]]])  # (2, 2, K=2)
    assert codebook_usage(indices, vocab_size=4) == [0.5, 0.5]
    assert codebook_usage(torch.arange(8).view(8, 1), vocab_size=8) == [1.0]


def test_codebook_usage_pools_token_grids():
    from onevae import Tokens

    fe = Tokens(rest=torch.tensor([[[[[0, 1]]]]]), first=torch.tensor([[[[[2, 1]]]]]))  # (1, 1, 1, 1, K=2) each
    assert codebook_usage(fe, vocab_size=4) == [0.5, 0.25]
    assert codebook_usage([fe, torch.tensor([[3, 3]])], vocab_size=4) == [0.75, 0.5]
    with pytest.raises(InputError, match="shape"):
        codebook_usage(torch.tensor(3), vocab_size=4)
