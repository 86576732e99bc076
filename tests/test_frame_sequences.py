"""Numbered frames as input (``frames/%05d.png``): which files a pattern names (FFmpeg's image2 rule), each read as
the still image alone is, the rate they are given, and the commands that read videos taking them as one clip."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_user_error, run_cli, save_tiny_model
from onevae.errors import InputError, OneVAEError
from onevae.io.frame_files import find_frames, is_frame_sequence, sequence_name
from onevae.io.image_writer import ImageWriter
from onevae.io.paths import existing_input
from onevae.io.video import VideoReadWarning, iter_video_frames, probe_video, read_video
from onevae.io.writer import VideoWriter

from media import smooth_frames

Image = pytest.importorskip("PIL.Image")


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)  # (H, W, 3) uint8


def save_frames(folder: Path, name: str, numbers, h: int = 8, w: int = 12) -> list[np.ndarray]:
    """Noise PNGs ``name % n`` for each of ``numbers``; their pixels, in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [noise(h, w, n) for n in numbers]
    for n, frame in zip(numbers, frames):
        Image.fromarray(frame).save(folder / (name % n))
    return frames


def read_all(path) -> np.ndarray:
    return np.stack(list(iter_video_frames(path)))  # (T, H, W, 3) uint8


# ------------------------------------------------------------------------------------------------ which files


@pytest.mark.parametrize("numbers, first, count", [
    ([1, 2, 3, 4, 5], 1, 5),  # numbered from 1, as onevae and FFmpeg write them
    ([0, 1, 2], 0, 3),
    ([4, 5], 4, 2),  # the last start FFmpeg's image2 probes
    ([0, 2, 3], 0, 1),  # 1 is missing: the clip is frame 0
])
def test_frames_run_from_the_first_number_among_0_to_4_while_consecutive(tmp_path, numbers, first, count):
    save_frames(tmp_path, "f_%03d.png", numbers)
    frames = find_frames(tmp_path / "f_%03d.png")
    assert (frames.first, frames.count) == (first, count)
    assert frames.path(0) == tmp_path / f"f_{first:03d}.png"


def test_a_gap_ends_the_clip_and_the_probe_says_so(tmp_path):
    pixels = save_frames(tmp_path, "%05d.png", [1, 2, 3, 5, 6])
    with pytest.warns(VideoReadWarning, match=r"frame file 00004.png is missing, so the clip ends after 3 frames "
                      r"\(00005.png and later files are not read\)"):
        info = probe_video(tmp_path / "%05d.png")
    assert info.num_frames == 3
    np.testing.assert_array_equal(read_all(tmp_path / "%05d.png"), np.stack(pixels[:3]))


def test_only_files_printed_by_the_pattern_count(tmp_path):
    save_frames(tmp_path, "%05d.png", [1, 2])
    save_frames(tmp_path, "%d.png", [3, 10])  # '3.png' is not what %05d prints for 3
    Image.fromarray(noise(8, 12, 0)).save(tmp_path / "00003.jpg")
    assert find_frames(tmp_path / "%05d.png").count == 2
    assert find_frames(tmp_path / "%d.png").first == 3 and find_frames(tmp_path / "%d.png").count == 1
    save_frames(tmp_path / "pct", "100%%_%d.png", [1, 2])  # %% is a literal %
    assert find_frames(tmp_path / "pct" / "100%%_%d.png").count == 2


@pytest.mark.parametrize("files, pattern, message", [
    ([], "%05d.png", "no file matches this frame pattern (e.g. {d}/00001.png)"),
    (["00007.png", "00008.png"], "%05d.png", "the frames must start at a number from 0 to 4 (as FFmpeg reads patterns); "
     "the first file is {d}/00007.png"),
    ([], "missing/%05d.png", "no such folder {d}/missing"),
])
def test_patterns_naming_no_frames_are_one_line_errors(tmp_path, files, pattern, message):
    for name in files:
        Image.fromarray(noise(8, 12, 0)).save(tmp_path / name)
    for call in (probe_video, read_all, existing_input):
        with pytest.raises(InputError) as error:
            call(tmp_path / pattern)
        assert str(error.value) == f"{tmp_path / pattern}: {message.format(d=tmp_path)}"


def test_a_pattern_of_video_files_is_refused(tmp_path):
    (tmp_path / "00001.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="a frame pattern names image files"):
        probe_video(tmp_path / "%05d.mp4")


def test_an_existing_file_with_a_percent_in_its_name_is_that_file(tmp_path):
    literal = tmp_path / "clip_%05d.png"
    Image.fromarray(noise(8, 12, 1)).save(literal)
    save_frames(tmp_path, "clip_%05d.png", [1, 2])  # clip_00001.png ... are not what the name means
    assert not is_frame_sequence(literal) and existing_input(literal) == literal
    info = probe_video(literal)
    assert info.is_image and info.num_frames == 1 and not info.is_frame_sequence
    np.testing.assert_array_equal(read_all(literal)[0], noise(8, 12, 1))
    assert not is_frame_sequence(tmp_path / "50%.png")  # not a pattern: a missing file
    with pytest.raises(OneVAEError, match="no such file"):
        existing_input(tmp_path / "50%.png")


def test_sequence_names_are_the_pattern_without_its_number_else_the_folder():
    assert sequence_name("x/out_%05d.png") == "out"
    assert sequence_name("davis/bear/%05d.jpg") == "bear"
    assert sequence_name("vimeo/im%d.png") == "im"
    assert sequence_name("a/100%%_%d.png") == "100%"


# ------------------------------------------------------------------------------------------------ reading


def test_the_probe_describes_the_sequence_as_a_video(tmp_path):
    save_frames(tmp_path, "out_%05d.png", range(1, 8))
    info = probe_video(tmp_path / "out_%05d.png")
    assert (info.path, info.width, info.height, info.num_frames, info.num_frames_exact) == (
        tmp_path / "out_%05d.png", 12, 8, 7, True)
    assert (info.fps, info.duration_s, info.codec, info.is_image, info.is_frame_sequence) == (25.0, 0.28, "png", False, True)
    assert info.sample_aspect_ratio == 1 and info.variable_frame_rate is False
    shot = probe_video(tmp_path / "out_%05d.png", sequence_fps=10)  # the rate they were shot at: the same 7 frames
    assert (shot.fps, shot.num_frames, shot.duration_s) == (10.0, 7, 0.7)


def test_each_frame_is_the_image_read_alone(tmp_path):
    """EXIF orientation, alpha and grey are handled as for one image: frame k equals reading file k alone."""
    from PIL import ImageOps

    rgb, h, w = noise(8, 12, 3), 8, 12
    Image.fromarray(rgb).save(tmp_path / "m_1.png")
    Image.fromarray(np.dstack([rgb, noise(8, 12, 4)[..., :1]]), "RGBA").save(tmp_path / "m_2.png")
    Image.fromarray(rgb[..., 0], "L").save(tmp_path / "m_3.png")
    frames = read_all(tmp_path / "m_%d.png")
    assert frames.shape == (3, h, w, 3)
    for k in range(3):
        np.testing.assert_array_equal(frames[k], read_all(tmp_path / f"m_{k + 1}.png")[0])
    np.testing.assert_array_equal(frames[1], rgb)  # alpha dropped, colour kept
    np.testing.assert_array_equal(frames[2], np.repeat(rgb[..., :1], 3, axis=2))  # grey replicated
    # stored 12 wide, 8 high, EXIF orientation 6: read upright, 8 wide and 12 high, as one image is
    exif = Image.Exif()
    exif[0x0112] = 6
    for n in (0, 1):
        Image.fromarray(noise(8, 12, n)).save(tmp_path / f"r{n}.jpg", exif=exif, quality=95)
    info = probe_video(tmp_path / "r%d.jpg")
    single = probe_video(tmp_path / "r0.jpg")
    assert (info.width, info.height, info.codec, info.pix_fmt) == (8, 12, single.codec, single.pix_fmt)
    upright = read_all(tmp_path / "r%d.jpg")
    assert upright.shape == (2, 12, 8, 3)
    with Image.open(tmp_path / "r1.jpg") as image:
        np.testing.assert_array_equal(upright[1], np.asarray(ImageOps.exif_transpose(image).convert("RGB")))


def test_a_frame_of_another_size_is_refused_naming_it(tmp_path):
    save_frames(tmp_path, "%05d.png", [1, 2])
    save_frames(tmp_path, "%05d.png", [3], h=10)
    save_frames(tmp_path, "%05d.png", [4], h=12)
    reading = iter_video_frames(tmp_path / "%05d.png")
    next(reading), next(reading)
    with pytest.raises(InputError) as error:
        next(reading)
    assert str(error.value) == (f"{tmp_path / '00003.png'}: 12x10 pixels, but 00001.png is 12x8; all frames of a "
                                "sequence (%05d.png) must have one size")


def test_frames_are_read_one_file_at_a_time(tmp_path, monkeypatch):
    import onevae.io.video as video

    save_frames(tmp_path, "%05d.png", range(1, 21))
    opened = []
    real = video._open_image
    monkeypatch.setattr(video, "_open_image", lambda path: opened.append(path.name) or real(path))
    reading = iter_video_frames(tmp_path / "%05d.png")
    next(reading), next(reading)
    assert opened == ["00001.png", "00002.png"]  # nothing read ahead


def test_fps_times_the_frames_without_resampling(tmp_path):
    pixels = np.stack(save_frames(tmp_path, "%05d.png", range(1, 11)))
    for fps in (None, 5.0, 60.0):  # every frame, whatever the rate
        np.testing.assert_array_equal(np.stack(list(iter_video_frames(tmp_path / "%05d.png", fps=fps))), pixels)
    started = np.stack(list(iter_video_frames(tmp_path / "%05d.png", fps=10, start_s=0.3, max_frames=4)))
    np.testing.assert_array_equal(started, pixels[3:7])  # frame k at k / 10 s
    assert len(list(iter_video_frames(tmp_path / "%05d.png", start_s=0.3))) == 10 - 8  # 25 fps: from frame 8
    video, info = read_video(tmp_path / "%05d.png", fps=5, max_bytes=3 * 10 * 8 * 12 * 4)  # all 10 fit the budget
    assert tuple(video.shape) == (3, 10, 8, 12) and info.fps == 5.0
    with pytest.raises(InputError, match="fps must be a positive number"):
        probe_video(tmp_path / "%05d.png", sequence_fps=-1)


# ------------------------------------------------------------------------------------------------ commands


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", "tiny-frame-sequences", seed=0)


@pytest.fixture(scope="module")
def frames_and_video(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """Five 16x16 frames written by onevae's own image writer (out_00001.png ...) and the same frames stored
    losslessly (FFV1 .mkv)."""
    folder = tmp_path_factory.mktemp("frames")
    pixels = np.stack(smooth_frames(5, 16, 16))  # (5, 16, 16, 3) uint8
    with ImageWriter(folder / "out_%05d.png") as writer:
        writer.write(pixels)
    with VideoWriter(folder / "same.mkv", fps=25, lossless=True) as video:
        video.write(pixels)
    return folder / "out_%05d.png", folder / "same.mkv", pixels


def test_encode_and_decode_numbered_frames_at_the_rate_given(model_dir, frames_and_video, tmp_path, capsys):
    from onevae.cli.main import main
    from onevae.io.tokens import load_token_file

    pattern, _, pixels = frames_and_video
    np.testing.assert_array_equal(read_all(pattern), pixels)  # the writer's frames (from 1) read back exactly
    common = ["--model", str(model_dir), "--quiet"]
    for fps, expected in ((None, 25.0), ("12", 12.0)):
        tokens = tmp_path / f"out-{fps}.tokens.safetensors"
        assert main(["encode", str(pattern), "-o", str(tokens), *common, *(["--fps", fps] if fps else [])]) == 0
        assert f"{pattern} -> {tokens}: 5 frames, tokens grids" in capsys.readouterr().err
        meta = load_token_file(tokens)[1]
        assert (meta.fps, meta.frames) == (expected, 5)  # --fps is the rate they were shot at: all 5 frames kept
        assert {k: meta.source[k] for k in ("path", "width", "height", "num_frames", "fps", "codec")} == {
            "path": str(pattern), "width": 16, "height": 16, "num_frames": 5, "fps": expected, "codec": "png"}
        video = tmp_path / f"back-{fps}.mp4"
        assert main(["decode", str(tokens), "-o", str(video), *common]) == 0
        info = probe_video(video, count_frames=True)
        assert (info.fps, info.num_frames, info.width, info.height) == (pytest.approx(expected), 5, 16, 16)


def test_reconstructing_numbered_frames_equals_reconstructing_them_stored_losslessly(model_dir, frames_and_video, tmp_path,
                                                                                    capsys):
    from onevae.cli.main import main

    pattern, lossless, _ = frames_and_video
    common = ["--model", str(model_dir), "--quiet", "--json"]
    assert main(["reconstruct", str(pattern), "-o", str(tmp_path / "rec_%02d.png"), *common]) == 0
    from_frames = json.loads(capsys.readouterr().out)
    assert main(["reconstruct", str(lossless), "-o", str(tmp_path / "rec.mkv"), "--lossless", *common]) == 0
    from_video = json.loads(capsys.readouterr().out)
    assert from_frames["frames"] == from_video["frames"] == 5
    for path in ("tokens", "latents"):
        for metric in ("psnr", "ssim"):
            assert from_frames["metrics"][path][metric] == pytest.approx(from_video["metrics"][path][metric], abs=1e-6)
    np.testing.assert_array_equal(read_all(tmp_path / "rec_%02d.png"), read_all(tmp_path / "rec.mkv"))


def test_stats_and_encode_into_a_directory_take_patterns(model_dir, frames_and_video, tmp_path, capsys):
    from onevae.cli.main import main

    pattern, lossless, _ = frames_and_video
    bear = tmp_path / "bear"
    save_frames(bear, "%05d.jpg", range(0, 3), h=16, w=16)
    out = tmp_path / "tokens"
    assert main(["encode", str(bear / "%05d.jpg"), str(pattern), "-o", str(out), "--model", str(model_dir), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["bear.tokens.safetensors", "out.tokens.safetensors"]
    assert main(["stats", str(pattern), str(lossless), "--model", str(model_dir), "--quiet", "--json"]) == 0
    err = capsys.readouterr().err
    assert f"[onevae] {pattern}: 5 frames" in err and f"[onevae] {lossless}: 5 frames" in err


def test_a_pattern_matching_no_file_is_one_error_line(model_dir, tmp_path):
    pattern = str(tmp_path / "none_%05d.png")
    for command in (["encode", pattern, "-o", str(tmp_path / "x.tokens.safetensors")], ["reconstruct", pattern],
                    ["stats", pattern]):
        assert_user_error(run_cli(*command, "--model", str(model_dir), "--quiet"),
                          f"{pattern}: no file matches this frame pattern")
    assert list(tmp_path.iterdir()) == []


def test_a_sequence_with_a_frame_of_another_size_stops_encode_naming_it(model_dir, tmp_path):
    save_frames(tmp_path, "%05d.png", [1, 2], h=16, w=16)
    save_frames(tmp_path, "%05d.png", [3], h=16, w=24)
    out = tmp_path / "x.tokens.safetensors"
    assert_user_error(run_cli("encode", str(tmp_path / "%05d.png"), "-o", str(out), "--model", str(model_dir), "--quiet"),
                      f"{tmp_path / '00003.png'}: 24x16 pixels, but 00001.png is 16x16")
    assert not out.exists()


def test_eval_reads_a_pattern_as_a_file_clip(frames_and_video):
    from onevae.eval.evaluate import resolve_clips

    pattern, _, pixels = frames_and_video
    (clip,) = resolve_clips([str(pattern)], max_frames=3)
    assert (clip.name, clip.kind, clip.fps, tuple(clip.video.shape)) == ("out", "file", 25.0, (3, 3, 16, 16))
    with pytest.raises(InputError, match="none_%05d.png: no file matches this frame pattern"):
        resolve_clips([str(pattern.with_name("none_%05d.png"))])
    with pytest.raises(InputError, match="neither a held-out clip .* nor a video file"):
        resolve_clips([str(pattern.with_name("none.png"))])


def test_tokenize_plans_a_pattern_as_one_clip_at_the_rate_given(frames_and_video, tmp_path):
    from onevae.corpus.plan import ClipSettings
    from onevae.corpus.reading import plan_segment
    from onevae.corpus.sources import expand_sources

    pattern = frames_and_video[0]
    listed = tmp_path / "list.txt"
    listed.write_text(f"{pattern}\n")
    assert [s.path for s in expand_sources([str(pattern)])] == [s.path for s in expand_sources([str(listed)])] == [str(pattern)]
    (segment,) = expand_sources([str(listed)])
    for fps, rate in ((None, 25.0), (12.0, 12.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plan = plan_segment(segment, ClipSettings(spatial_factor=8, temporal_factor=4, fps=fps, clip_frames=5))
        assert (plan.error, plan.rate, plan.frames, plan.num_clips) == ("", rate, 5, 1)
        assert (plan.probe["fps"], plan.probe["num_frames"], plan.probe["is_frame_sequence"]) == (rate, 5, True)
