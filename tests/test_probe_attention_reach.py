"""scripts/probe_attention_reach.py: its attention with scaled logits is softmax(factor * q k^T / sqrt(d)) v."""

from __future__ import annotations

import math

import torch

from conftest import load_script


def test_scaled_attention_multiplies_the_logits_by_the_factor_of_the_number_of_positions():
    probe = load_script("probe_attention_reach")
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 1, 12, 8) for _ in range(3))  # (B*T, heads, positions, channels)
    torch.testing.assert_close(probe.attention_scaled_by(lambda n: 1.0)(q, k, v), probe.PLAIN_ATTENTION(q, k, v))
    factor = math.log(12) / math.log(4)
    expected = torch.softmax(factor * q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
    torch.testing.assert_close(probe.attention_scaled_by(lambda n: math.log(n) / math.log(4))(q, k, v), expected)
