"""The shipped tokenizer round-trips flat colours: primaries, secondaries, teal, skin tones and greys come back
within 6/255 per channel through the tokens (issue 9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onevae import OneVAE
from onevae.io.video import frames_to_tensor

FLAT_COLOURS = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "grass green": (30, 180, 40), "teal": (20, 160, 150), "orange": (240, 130, 20),
    "light skin": (224, 172, 140), "medium skin": (198, 134, 66), "dark skin": (141, 85, 36),
    "black": (0, 0, 0), "dark grey": (40, 40, 40), "grey": (128, 128, 128), "light grey": (220, 220, 220), "white": (255, 255, 255),
}
TOLERANCE = 6  # /255, per channel


def flat_clip_errors(model: OneVAE, discrete: bool = True) -> dict[str, np.ndarray]:
    """Per colour: |mean reconstructed colour - colour| per channel, in /255, of a flat 9x64x64 clip."""
    names = list(FLAT_COLOURS)
    clips = torch.stack([frames_to_tensor(np.full((9, 64, 64, 3), FLAT_COLOURS[n], np.uint8)) for n in names])  # (N, 3, 9, 64, 64)
    with torch.no_grad():
        recon = torch.cat([model.reconstruct(clip[None], discrete=discrete) for clip in clips])
    means = ((recon + 1) * 127.5).mean(dim=(2, 3, 4)).numpy()  # (N, 3)
    return {n: np.abs(means[i] - np.array(FLAT_COLOURS[n])) for i, n in enumerate(names)}


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 9: the shipped onevae-small (stage 10) still misses 5 of the 17 flat colours "
                   "by more than 6/255 (green, blue, cyan and magenta by 6-10, light skin's blue by 12.6; stage 9 missed "
                   "9, worst 13.7), mostly in frame 0 (saturated colours off by 13-53 there; in frames 1-8 by at most 12, "
                   "light skin's blue 16); remove this mark when a model that passes is installed")
def test_shipped_model_round_trips_flat_colours():
    errors = flat_clip_errors(OneVAE.from_pretrained(None))
    bad = {n: e.round(1).tolist() for n, e in errors.items() if e.max() > TOLERANCE}
    assert not bad, f"colours off by more than {TOLERANCE}/255: {bad}"
