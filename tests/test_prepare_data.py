"""Training-data preparation (onevae.data.prepare): what it writes, what it skips (with counts), what it never reads."""

from __future__ import annotations

import numpy as np
from PIL import Image

from onevae.data.prepare import TILE, flat_colour_chart, prepare, tile_origins
from onevae.io.video import probe_video

from media import make_clip


def test_prepare_writes_every_folder_and_counts_what_it_skips(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (160, 288, 3), dtype=np.uint8) for _ in range(12)]
    good = make_clip(tmp_path / "street.mp4", frames, fps=25)
    held_out = make_clip(tmp_path / "cup.mp4", frames[:4], fps=25)  # a held-out source: never read
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(photos / "meadow.png")
    (photos / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    out = tmp_path / "out"

    report = prepare(out, [good, held_out, broken, tmp_path / "missing.avi"], [photos], use_skimage=False, charts=3, seed=1, gamut_charts=2)

    assert sorted(report.skipped) == sorted([str(broken), str(tmp_path / "missing.avi"), str(photos / "truncated.jpg")])
    assert report.excluded == ["cup"]
    assert "skipped 3 unreadable input(s)" in report.summary()
    assert report.written["videos"] == 1 and report.written["charts"] == 3 + 2
    assert report.written["tiles"] == len(list((out / "tiles").iterdir())) >= 3  # one scale at least
    whole = probe_video(out / "videos" / "street.mp4")
    assert (whole.height, whole.width, whole.num_frames) == (144, 260, 12)  # short side 144, even width
    for tile in (out / "tiles").iterdir():
        info = probe_video(tile)
        assert (info.height, info.width) == (TILE, TILE) and info.num_frames == 12
    names = sorted(p.name for p in (out / "photos").iterdir())
    assert len(names) == report.written["photos"] == 3  # scales 1 and 0.5 (one tile each; 0.25 is too small) + whole
    assert all(n.startswith("photos_meadow_") for n in names)


def test_tiles_do_not_overlap_and_stay_inside():
    origins = tile_origins(300, 520, 128, 8, np.random.default_rng(0))
    assert len(origins) == 8 == len(set(origins))
    assert all(0 <= y <= 300 - 128 and 0 <= x <= 520 - 128 and y % 128 == 0 and x % 128 == 0 for y, x in origins)
    assert tile_origins(100, 100, 128, 4, np.random.default_rng(0)) == []


def test_flat_colour_charts_are_flat_and_colourful():
    rng = np.random.default_rng(0)
    charts = [flat_colour_chart(rng) for _ in range(20)]
    colours = {tuple(c) for chart in charts for c in np.unique(chart.reshape(-1, 3), axis=0)}
    assert all(len(np.unique(chart.reshape(-1, 3), axis=0)) <= 7 for chart in charts)  # flat shapes only
    saturated = [c for c in colours if max(c) - min(c) > 0.6 * max(c) > 0]
    assert len(saturated) >= 20


def test_gamut_charts_hold_the_rgb_cube_corners_and_do_not_depend_on_other_data(tmp_path):
    from PIL import Image

    from onevae.data.prepare import GAMUT_CORNERS, write_gamut_charts

    assert write_gamut_charts(tmp_path / "a", 12, seed=0) == 12
    write_gamut_charts(tmp_path / "b", 3, seed=0)
    charts = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "a" / "charts").glob("gamut_*.png"))]
    assert len(charts) == 12 and all(len(np.unique(c.reshape(-1, 3), axis=0)) <= 5 for c in charts)  # flat shapes only
    colours = {tuple(int(v) for v in c) for chart in charts for c in np.unique(chart.reshape(-1, 3), axis=0)}
    assert {(255, 0, 0), (0, 255, 0), (0, 0, 255)} <= colours and len(colours & set(GAMUT_CORNERS)) >= 6
    assert all(0 in c and 255 in c for c in colours - {(0, 0, 0), (255, 255, 255)})  # full saturation, full value
    for name in ("gamut_000.png", "gamut_002.png"):  # the same stream whatever else was written
        assert (tmp_path / "a" / "charts" / name).read_bytes() == (tmp_path / "b" / "charts" / name).read_bytes()
