"""Writing decoded clips as images and as lossless video: onevae.io.outputs (the names), onevae.io.image_writer
and the writer's FFV1 mode. Exactness is checked by reading the files back with the project's own reader."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from onevae.errors import InputError, OneVAEError
from onevae.io.image_writer import ImageWriter, StaleFramesWarning, write_image
from onevae.io.outputs import SampleAspectWarning, check_output, frame_pattern, numbered, written_names
from onevae.io.video import frames_to_tensor, iter_video_frames, probe_video
from onevae.io.writer import VideoWriter, open_writer

from media import smooth_frames, stored_sample_aspect


def noise_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 noise: every pixel differs, so any loss shows."""
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def read_back(path) -> np.ndarray:
    return np.stack(list(iter_video_frames(path)))  # (T, H, W, 3) uint8


# ------------------------------------------------------------------------------------------------ names


def test_frame_patterns_are_printf_frame_numbers_from_one(tmp_path):
    assert frame_pattern("out.png") is None and frame_pattern("out_%05d.png") == "%05d" and frame_pattern("f%d.png") == "%d"
    assert numbered(tmp_path / "out_%05d.png", 7) == tmp_path / "out_00007.png"
    assert numbered(tmp_path / "100%%_%03d.png", 12) == tmp_path / "100%_012.png"  # %% is a literal %
    assert numbered(tmp_path / "100%%.png", 3) == tmp_path / "100%.png"
    assert written_names(tmp_path / "f_%02d.png", 3) == f"{tmp_path / 'f_01.png'} ... f_03.png"
    assert written_names(tmp_path / "one.png", 1) == str(tmp_path / "one.png")


@pytest.mark.parametrize("name, options, message", [
    ("out.avi", {}, "must end in a video extension"),
    ("out_%05d.mp4", {}, "names image files; a video is one file"),
    ("out.mp4", {"lossless": True}, "only .mkv holds"),
    ("out.mov", {"lossless": True}, "only .mkv holds"),
    ("out_%05d.jpg", {"lossless": True}, "JPEG is lossy"),
    ("out.png", {"frames": 9}, "one image cannot hold 9 frames; name a frame pattern"),
    ("out_%d_%d.png", {}, "2 frame numbers"),
    ("50%.png", {}, "must be a frame number"),
    ("out_%s.png", {}, "must be a frame number"),
])
def test_names_no_writer_can_fill_are_refused_up_front(tmp_path, name, options, message):
    with pytest.raises(OneVAEError, match=message):
        check_output(tmp_path / name, **options)
    assert list(tmp_path.iterdir()) == []


def test_names_every_writer_fills_are_accepted(tmp_path):
    for name, options in [("a.mp4", {}), ("a.mkv", {"lossless": True}), ("a.png", {"frames": 1}), ("a.png", {"lossless": True}),
                          ("a_%04d.jpg", {"frames": 40}), ("a_%d.webp", {"lossless": True}), ("50%%.png", {})]:
        check_output(tmp_path / name, **options)
    assert isinstance(open_writer(tmp_path / "a.png"), ImageWriter) and isinstance(open_writer(tmp_path / "a.mkv"), VideoWriter)


# ------------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize("ext", [".png", ".webp", ".bmp", ".tif"])
def test_one_frame_is_one_lossless_image(tmp_path, ext):
    frame = noise_frames(1, 33, 47)  # odd sizes stay as they are
    out = write_image(tmp_path / f"frame{ext}", frame[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"frame{ext}"]  # no temporary file left
    np.testing.assert_array_equal(read_back(out), frame)
    info = probe_video(out)
    assert info.is_image and (info.width, info.height) == (47, 33)


def test_jpeg_is_high_quality_without_chroma_subsampling(tmp_path):
    frame = np.stack(smooth_frames(1, 64, 96))  # (1, 64, 96, 3)
    out = write_image(tmp_path / "frame.jpg", frames_to_tensor(frame))  # a one-frame float video (3, 1, H, W)
    back = read_back(out).astype(np.float64)
    mse = np.mean((back - frame.astype(np.float64)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 40
    from PIL import Image

    with Image.open(out) as image:
        assert [(h, v) for _, h, v, _ in image.layer] == [(1, 1)] * 3  # 4:4:4: every channel at full resolution


def test_a_second_frame_for_one_image_is_refused_and_nothing_is_left(tmp_path):
    writer = ImageWriter(tmp_path / "one.png")
    writer.write(noise_frames(1, 16, 16))
    with pytest.raises(InputError, match="one image cannot hold more than one frame"):
        writer.write(noise_frames(1, 16, 16))
    assert list(tmp_path.iterdir()) == []


def test_a_frame_pattern_appears_whole_numbered_from_one(tmp_path):
    frames = noise_frames(5, 18, 30)
    with ImageWriter(tmp_path / "f_%03d.png") as writer:
        writer.write(frames[:2])
        writer.write(frames_to_tensor(frames[2:]))  # float tensors too
        assert not list(tmp_path.glob("f_*.png"))  # nothing under its own name before the writer closes
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"f_{i:03d}.png" for i in range(1, 6)]
    for i in range(5):
        np.testing.assert_array_equal(read_back(tmp_path / f"f_{i + 1:03d}.png")[0], frames[i])


def test_an_aborted_frame_pattern_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), ImageWriter(tmp_path / "f_%03d.png") as writer:
        writer.write(noise_frames(3, 16, 16))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no frames"), ImageWriter(tmp_path / "f_%03d.png"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_shorter_sequence_over_a_longer_one_says_so(tmp_path):
    with ImageWriter(tmp_path / "f_%d.png") as writer:
        writer.write(noise_frames(4, 16, 16))
    with pytest.warns(StaleFramesWarning, match="f_3.png .* from an earlier write: this sequence has 2 frames"):
        with ImageWriter(tmp_path / "f_%d.png") as writer:
            writer.write(noise_frames(2, 16, 16, seed=1))
    np.testing.assert_array_equal(read_back(tmp_path / "f_2.png")[0], noise_frames(2, 16, 16, seed=1)[1])


def test_non_square_samples_are_written_as_stored_with_a_warning(tmp_path):
    with pytest.warns(SampleAspectWarning, match="image files do not record .* look narrower than the 32:27 source"):
        with ImageWriter(tmp_path / "f.png", sample_aspect_ratio=Fraction(32, 27)) as writer:
            writer.write(noise_frames(1, 16, 20))
    assert probe_video(tmp_path / "f.png").width == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "square.png", noise_frames(1, 8, 8)[0])


def test_write_image_writes_exactly_the_name_given(tmp_path):
    """The library's one-image writer (evaluation panels, prepared photographs) takes names from files, so a '%'
    in them is kept, never read as a frame number."""
    frame = noise_frames(1, 8, 8)[0]
    np.testing.assert_array_equal(read_back(write_image(tmp_path / "100%_%05d.png", frame))[0], frame)
    assert [p.name for p in tmp_path.iterdir()] == ["100%_%05d.png"]
    with pytest.raises(InputError, match="cannot hold 2 frames"):
        write_image(tmp_path / "two.png", noise_frames(2, 8, 8))


# ------------------------------------------------------------------------------------------------ lossless video


def test_lossless_video_keeps_every_pixel_at_odd_sizes(tmp_path):
    frames = noise_frames(6, 17, 33)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no even-size padding, so no OutputSizeWarning
        with VideoWriter(tmp_path / "exact.mkv", fps=12, lossless=True) as writer:
            writer.write(frames[:4])
            writer.write(frames_to_tensor(frames[4:]).unsqueeze(0))
    np.testing.assert_array_equal(read_back(tmp_path / "exact.mkv"), frames)
    info = probe_video(tmp_path / "exact.mkv")
    assert info.codec == "ffv1" and info.fps == 12 and (info.width, info.height) == (33, 17)


def test_lossless_video_of_non_square_samples_says_it_stores_them_square(tmp_path):
    with pytest.warns(SampleAspectWarning, match="FFV1 videos do not record .* wider than the 8:9 source"):
        with VideoWriter(tmp_path / "exact.mkv", lossless=True, sample_aspect_ratio=Fraction(8, 9)) as writer:
            writer.write(noise_frames(2, 16, 16))
    assert stored_sample_aspect(tmp_path / "exact.mkv") is None


def test_lossless_video_is_refused_where_the_container_cannot_hold_it(tmp_path):
    with pytest.raises(OneVAEError, match="only .mkv holds"):
        VideoWriter(tmp_path / "exact.mp4", lossless=True)
    assert list(tmp_path.iterdir()) == []


def test_a_decoded_float_video_writes_the_same_pixels_to_png_frames_and_lossless_video(tmp_path):
    video = torch.rand(3, 5, 24, 40) * 2 - 1  # what a decoder returns, (3, T, H, W) in [-1, 1]
    for name in ("v.mkv", "v_%02d.png"):
        with open_writer(tmp_path / name, fps=8, lossless=True, frames=5) as writer:
            writer.write(video)
    pngs = np.concatenate([read_back(tmp_path / f"v_{i:02d}.png") for i in range(1, 6)])
    np.testing.assert_array_equal(read_back(tmp_path / "v.mkv"), pngs)
    expected = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    np.testing.assert_array_equal(pngs, expected)
