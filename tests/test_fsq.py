"""FSQ: index <-> code round trip, straight-through gradient, value grids, vocabulary."""

from __future__ import annotations

import pytest
import torch

from onevae import FSQ, InputError

LEVELS = [8, 8, 8, 5, 5, 5]


def test_every_index_survives_index_code_index():
    fsq = FSQ(LEVELS, num_codebooks=2)
    assert fsq.vocab_size == 64000 and fsq.dim == 12
    indices = torch.arange(64000).reshape(-1, 1).repeat(1, 2)  # (64000, 2)
    indices[:, 1] = indices[:, 1].flip(0)
    codes = fsq.indices_to_codes(indices)  # (64000, 12)
    assert codes.shape == (64000, 12)
    # codes are fixed points of the quantiser: quantising their pre-image gives them back
    back = fsq.codes_to_indices(codes.unflatten(-1, (2, 6)))
    assert torch.equal(back, indices)
    assert len(torch.unique(codes[:, :6], dim=0)) == 64000


def test_forward_codes_are_fixed_points_and_indices_agree():
    fsq = FSQ(LEVELS, num_codebooks=2)
    z = torch.randn(4, 3, 5, 12) * 3
    codes, indices = fsq(z)
    assert indices.shape == (4, 3, 5, 2) and indices.dtype == torch.int64
    assert torch.equal(fsq.indices_to_codes(indices), codes)
    assert int(indices.min()) >= 0 and int(indices.max()) < 64000


@pytest.mark.parametrize("level,grid", [(8, [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75]), (5, [-1, -0.5, 0, 0.5, 1])])
def test_value_grid_per_level(level, grid):
    fsq = FSQ([level])
    assert fsq.level_grid(level).tolist() == grid
    # the quantiser reaches exactly these values, and only these
    z = torch.linspace(-20, 20, 20001).unsqueeze(-1)
    values = sorted(set(fsq(z)[0].squeeze(-1).tolist()))
    assert values == grid


def test_zero_maps_to_zero_and_bound_ranges():
    fsq = FSQ(LEVELS)
    assert torch.equal(fsq(torch.zeros(1, 6))[0], torch.zeros(1, 6))
    bounded = fsq.bound(torch.tensor([[1e4] * 6, [-1e4] * 6]))
    assert bounded[0, 0] == pytest.approx(3.0035, abs=1e-4) and bounded[1, 0] == pytest.approx(-4.0035, abs=1e-4)
    assert bounded[0, 3] == pytest.approx(2.002, abs=1e-4) and bounded[1, 3] == pytest.approx(-2.002, abs=1e-4)


def test_straight_through_gradient_is_identity():
    fsq = FSQ(LEVELS, num_codebooks=2)
    z = torch.randn(7, 12, requires_grad=True)
    bounded = fsq.bound(z.unflatten(-1, (2, 6))).flatten(-2) / fsq._half_width().repeat(2)
    codes, _ = fsq(z)
    grad_out = torch.randn_like(codes)
    (g_codes,) = torch.autograd.grad(codes, z, grad_out)
    (g_bounded,) = torch.autograd.grad(bounded, z, grad_out)
    # rounding contributes the identity: d codes/dz equals d (bounded / half_width)/dz
    torch.testing.assert_close(g_codes, g_bounded)
    assert codes.requires_grad


def test_out_of_range_and_malformed_indices_are_refused():
    fsq = FSQ(LEVELS, num_codebooks=2)
    with pytest.raises(InputError, match=r"\[0, 64000\)"):
        fsq.indices_to_codes(torch.tensor([[0, 64000]]))
    with pytest.raises(InputError, match="integers"):
        fsq.indices_to_codes(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(InputError, match="2 tokens per position"):
        fsq.indices_to_codes(torch.tensor([[0, 1, 2]]))
