"""The shipped tokenizer round-trips flat colours: primaries, secondaries, teal, skin tones and greys come back
within 6/255 per channel through the tokens (issue 9)."""

from __future__ import annotations

import pytest

from onevae import OneVAE
from onevae.eval.flat_colours import TOLERANCE, flat_colour_round_trip


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 9: the shipped onevae-small (stage 10) still misses 5 of the 17 flat colours "
                   "by more than 6/255 through the tokens (green, blue, cyan and magenta by 6-10, light skin's blue by "
                   "12.6; stage 9 missed 9, worst 13.7). The saturated ones are off on both paths, mostly in frame 0 (by "
                   "19-53 there, by at most 12 in frames 1-8); light skin is off through the tokens only (the latents "
                   "path is within 3): see `onevae eval default`'s flat_colours.md. Remove this mark when a model that "
                   "passes is installed")
def test_shipped_model_round_trips_flat_colours():
    results = flat_colour_round_trip(OneVAE.from_pretrained(None))
    bad = {r.name: r.clip_error for r in results if r.path == "tokens" and not r.ok}
    assert not bad, f"colours off by more than {TOLERANCE}/255: {bad}"
