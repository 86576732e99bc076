"""Command-line rough edges a new user hit: bad --device values, a closed stdout pipe, conflicting options,
train overrides around options, ``info`` on the wrong kind of file, directories created and cleaned up, and
the wording of sizes and warnings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import TINY_ARCH, assert_user_error, run_cli, save_tiny_model
from onevae.errors import OneVAEError
from onevae.hardware import checked_device


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", "tiny-cli-usability", seed=0)


@pytest.mark.parametrize("device, message", [
    ("gpu", "--device 'gpu' is not a device: use cpu, cuda or cuda:N"),
    ("cuda:x", "--device 'cuda:x' is not a device"),
    ("meta", "--device meta holds no data and cannot run the model"),
    ("mps", "--device mps was asked for, but PyTorch has no mps device here"),
])
def test_unusable_devices_are_one_line_errors(device, message):
    with pytest.raises(OneVAEError, match="^" + message.replace("(", r"\(")):
        checked_device(device)
    assert checked_device("cpu") == "cpu"


@pytest.mark.parametrize("command", [["reconstruct"], ["eval", "default", "x.mp4"]])
def test_bad_device_on_the_command_line_exits_2_without_a_traceback(command, tmp_path):
    result = run_cli(*command, "--device", "gpu")
    assert_user_error(result, "--device 'gpu' is not a device: use cpu, cuda or cuda:N")


def test_a_closed_stdout_pipe_ends_quietly():
    """``onevae info | head -1``, with the reader gone before anything is written (so that it never races)."""
    proc = subprocess.Popen([sys.executable, "-m", "onevae.cli.main", "info", "default"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and stderr == "", stderr


def test_train_overrides_on_both_sides_of_an_option_are_all_read(tmp_path):
    from onevae.cli.main import build_parser, parse_args

    args = parse_args(build_parser(), ["train", "--config", "c.yaml", "data.height=64", "--resume", "auto", "data.width=64"])
    assert args.overrides == ["data.height=64", "data.width=64"] and args.resume == "auto"
    result = run_cli("train", "--config", "c.yaml", "data.height=64", "--resume", "auto", "oops")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == "onevae: error: unrecognized arguments: oops"


def test_size_policies_are_mutually_exclusive(tmp_path):
    result = run_cli("reconstruct", "--crop", "--pad")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "onevae reconstruct: error: argument --pad: not allowed with argument --crop"
    result = run_cli("tokenize", "x", "-o", str(tmp_path / "out"), "--pad", "--resize")
    assert result.stderr.strip().splitlines()[-1] == "onevae tokenize: error: argument --resize: not allowed with argument --pad"
    assert not (tmp_path / "out").exists()


def test_latent_dtype_without_continuous_is_refused_like_normalize_latents(model_dir, tmp_path):
    clip = Path(__file__).parent  # never read: the options are checked first
    result = run_cli("encode", str(clip), "-o", str(tmp_path / "x.safetensors"), "--latent-dtype", "float16", "--model", str(model_dir))
    assert_user_error(result, "--latent-dtype applies to continuous latents: add --continuous")
    assert not list(tmp_path.iterdir())


def test_cpu_bf16_warning_reads_once(model_dir, monkeypatch, capsys):
    import argparse

    from onevae import hardware
    from onevae.cli.commands import load_model_from_args

    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: dtype not in hardware._REDUCED)
    load_model_from_args(argparse.Namespace(model=str(model_dir), device="cpu", dtype="bfloat16", encode_dtype=None, decode_dtype=None,
                                            channels_last=False, compile=False, tile=None, tile_overlap=None))
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("[onevae] warning: computing in bfloat16 on a CPU without AVX-512 BF16 or AMX (best: "), line
    assert line.endswith("10-35x slower than float32; --dtype float32 is faster")


def test_train_without_config_says_so(tmp_path):
    result = run_cli("train", "trainer.max_steps=2", f"output_dir={tmp_path / 'run'}")
    assert_user_error(result, "data kind 'files' needs at least one entry in data.sources (no --config given: pass "
                      "--config FILE; `onevae train --print-config > my.yaml` writes a starter config for your own videos)")
    assert "[onevae] model:" not in result.stderr and not (tmp_path / "run").exists()  # refused before the model


def test_train_with_a_missing_config_points_to_the_starter(tmp_path):
    result = run_cli("train", "--config", str(tmp_path / "configs" / "discrete.yaml"))
    assert_user_error(result, "discrete.yaml: no such config file (the recipes of configs/ are in the source repository")
    assert "onevae train --print-config > my.yaml" in result.stderr


def test_lightning_advertisements_are_dropped_other_info_kept(tmp_path, caplog):
    import logging

    import lightning as L

    from onevae.train.runner import _quiet_lightning

    _quiet_lightning()
    with caplog.at_level(logging.INFO):
        L.Trainer(default_root_dir=str(tmp_path), accelerator="cpu", max_steps=1, enable_progress_bar=False)
    assert "GPU available" in caplog.text  # Lightning's other info lines still show
    assert "litlogger" not in caplog.text and "litmodels" not in caplog.text and "Tip:" not in caplog.text


def info_rows(stdout: str) -> dict[str, str]:
    """``onevae info``'s table as {key: value}, checking that every value starts in the same column."""
    lines = stdout.splitlines()
    column = min(len(line) - len(line.split("  ")[-1].lstrip()) for line in lines if "  " in line)
    rows = {}
    for line in lines:
        assert line[column - 1] == " " and line[column] != " ", f"misaligned: {line!r}"
        rows[line[:column].rstrip()] = line[column:]
    return rows


@pytest.fixture(scope="module")
def encoded(model_dir, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A 5-frame 16x16 clip, its token file and its latent file."""
    from onevae.cli.main import main

    from media import make_clip, smooth_frames

    folder = tmp_path_factory.mktemp("encoded")
    clip = make_clip(folder / "clip.mp4", smooth_frames(5, 16, 16), fps=8)
    tokens, latents = folder / "clip.tokens.safetensors", folder / "clip.latents.safetensors"
    assert main(["encode", str(clip), "-o", str(tokens), "--model", str(model_dir), "--quiet"]) == 0
    assert main(["encode", str(clip), "-o", str(latents), "--model", str(model_dir), "--quiet", "--continuous"]) == 0
    return clip, tokens, latents


def test_decode_fps_sets_the_written_rate_for_token_files_and_sequences(model_dir, encoded, tmp_path, capsys):
    from onevae.cli.main import main
    from onevae.io.video import probe_video

    _, tokens, latents = encoded  # recorded at 8 fps
    common = ["--model", str(model_dir), "--quiet"]
    for source, fps, expected in ((tokens, None, 8.0), (tokens, "12.5", 12.5), (latents, "3", 3.0)):
        out = tmp_path / f"{source.stem}-{fps}.mp4"
        assert main(["decode", str(source), "-o", str(out), *common, *(["--fps", fps] if fps else [])]) == 0
        assert f"-> {out}: 5 frames at {expected:g} fps" in capsys.readouterr().err
        info = probe_video(out, count_frames=True)
        assert info.fps == pytest.approx(expected) and info.num_frames == 5  # --fps was ignored: 8 fps, said and written
    sequence = write_sequences(tmp_path / "one.npy", 1)
    for fps, expected in ((None, 24.0), ("10", 10.0)):
        out = tmp_path / f"seq-{fps}.mp4"
        args = ["--frames", "5", "--size", "16x16", *(["--fps", fps] if fps else [])]
        assert main(["decode", str(sequence), "-o", str(out), *args, *common]) == 0
        assert probe_video(out).fps == pytest.approx(expected)
    assert main(["decode", str(tokens), "-o", str(tmp_path / "bad.mp4"), "--fps", "0", *common]) == 2
    assert "--fps must be a number of frames per second" in capsys.readouterr().err


def test_a_chunk_longer_than_the_clip_plans_memory_for_the_clip(model_dir, encoded, tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    from onevae.cli.main import main

    clip, tokens, _ = encoded  # 5 frames: frame 0, then one chunk of 4
    # 100 MiB: the clip's 5 frames fit many times over; 1000 latent frames (4,000 video frames) of 16x16 would not
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(100 * 2**20))
    common = ["--model", str(model_dir), "--quiet", "--chunk", "1000"]
    again = tmp_path / "again.tokens.safetensors"
    assert main(["encode", str(clip), "-o", str(again), *common]) == 0  # was: needs about 0.3 GiB even in tiles
    assert torch.equal(load_file(str(again))["tokens.0"], load_file(str(tokens))["tokens.0"])
    assert main(["decode", str(tokens), "-o", str(tmp_path / "out.mp4"), *common]) == 0
    assert main(["reconstruct", str(clip), *common]) == 0
    assert "error" not in capsys.readouterr().err


def test_info_on_token_and_latent_files_shows_only_what_applies(encoded, capsys):
    from onevae.cli.main import main

    _, tokens, latents = encoded
    capsys.readouterr()
    assert main(["info", str(tokens)]) == 0
    rows = info_rows(capsys.readouterr().out)
    assert rows["kind"] == "tokens" and "tokens_per_clip" in rows and "vocab_size" in rows and "latents" not in rows
    assert main(["info", str(latents)]) == 0
    rows = info_rows(capsys.readouterr().out)
    assert rows["kind"] == "latents" and rows["latents"] == "raw" and "tokens_per_clip" not in rows and "vocab_size" not in rows
    assert "None" not in rows.values()


def test_info_on_a_model_is_aligned_and_shows_its_statistics_once(capsys):
    from onevae.cli.main import main

    assert main(["info", "default"]) == 0
    out = capsys.readouterr().out
    rows = info_rows(out)  # the long "tokens per second at 256x256, 24 fps" key included
    assert rows["tokens per second at 256x256, 24 fps"] == "12288.0"
    assert "latents_mean" not in out and "latents_std" not in out and out.count("latents mean (per channel)") == 1
    assert main(["info", "default", "--json"]) == 0
    assert "latents_mean" in json.loads(capsys.readouterr().out)["config"]  # the JSON keeps the whole config


def test_info_token_counts_are_for_clips_the_model_takes_and_other_sizes_are_refused(capsys):
    from onevae.cli.main import main

    assert main(["info", "onevae-888", "--size", "25x64x96", "--json"]) == 0  # 8x8x8: 1 + 3*8 frames -> 4 latent frames
    info = json.loads(capsys.readouterr().out)
    assert info["tokens per 25x64x96 clip"] == 4 * 8 * 12 * 2 and info["latent grids"] == [[4, 8, 12]]
    # 20 frames are encoded as 25 (the length is padded): the floor rule's 3 latent frames (576 tokens) was wrong
    assert main(["info", "onevae-888", "--size", "20x64x96"]) == 2
    err = capsys.readouterr().err
    assert "--size 20x64x96: 20 frames is not 1 + k*8 (onevae encode pads it to 25 frames" in err and "tokens per" not in err
    assert main(["info", "onevae-888", "--size", "17x60x96"]) == 2
    assert "60x96 (HxW) is not a multiple of 8" in capsys.readouterr().err
    assert main(["info", "onevae-888", "--size", "0x0x0"]) == 2  # was '0 tokens per 0x0x0 clip'
    assert "--size values must be >= 1, got 0x0x0" in capsys.readouterr().err


def test_info_on_a_video_an_image_or_other_file_says_what_info_takes(model_dir, encoded, tmp_path):
    from PIL import Image

    from onevae.cli.main import main
    from onevae.io.tokens import load_token_file

    clip, _, _ = encoded
    takes = "onevae info takes a token/latent file (.safetensors from onevae encode), a model directory or a preset name"
    assert_user_error(run_cli("info", str(clip)), f"{clip} looks like a video; {takes} (onevae encode makes one from a video)")
    still = tmp_path / "still.png"
    Image.new("RGB", (16, 16), (200, 40, 90)).save(still)
    said = f"{still} is an image; {takes} (onevae encode makes one from an image, read as a 1-frame clip)"
    assert_user_error(run_cli("info", str(still)), said)  # was: 'still.png looks like a video'
    tokens = tmp_path / "still.tokens.safetensors"
    assert main(["encode", str(still), "-o", str(tokens), "--model", str(model_dir), "--quiet"]) == 0  # as said
    assert load_token_file(tokens)[1].frames == 1
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert_user_error(run_cli("info", str(notes)), f"{notes} is not a token or latent file; {takes}")


def write_sequences(path: Path, batch: int, high: int | None = None) -> Path:
    """``batch`` flattened token sequences of 5 frames of 16x16 (HxW) for the tiny model (ids below ``high``)."""
    import numpy as np

    from onevae import OneVAEConfig

    config = OneVAEConfig(name="tiny", **TINY_ARCH)
    length = config.tokens_per_clip(5, 16, 16)
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, high or config.vocab_size, size=(batch, length), dtype=np.int64))
    return path


def test_uint64_token_ids_of_2_63_or_more_are_refused_with_their_real_value(model_dir, encoded, tmp_path, capsys):
    """int64 wrapped them: '... got values in [-1, -1]' for an id of 2^64 - 1 (a numpy uint64 sequence, a token
    file's uint64 grid, Tokens built from a uint64 tensor)."""
    import numpy as np
    from safetensors import safe_open
    from safetensors.torch import save_file

    from onevae import OneVAE, Tokens
    from onevae.cli.main import main

    _, tokens, _ = encoded
    sequence = np.load(write_sequences(tmp_path / "ids.npy", 1)).astype(np.uint64)
    sequence[0, 3] = 2**64 - 1
    np.save(tmp_path / "huge.npy", sequence)
    assert main(["decode", str(tmp_path / "huge.npy"), "--frames", "5", "--size", "16x16", "-o", str(tmp_path / "a.mp4"),
                 "--model", str(model_dir)]) == 2
    assert f"{tmp_path / 'huge.npy'}: token ids must be below the model's vocabulary size, got 18446744073709551615 (>= 2^63)" \
        in capsys.readouterr().err
    with safe_open(str(tokens), framework="pt") as f:
        ids, metadata = f.get_tensor("tokens.0").numpy().astype(np.uint64), f.metadata()
    ids[0, 0, 0, 0, 0] = 2**63 + 5
    grid = torch.from_numpy(ids)
    save_file({"tokens.0": grid}, str(tmp_path / "huge.tokens.safetensors"), metadata=metadata)
    assert main(["decode", str(tmp_path / "huge.tokens.safetensors"), "-o", str(tmp_path / "b.mp4"), "--model", str(model_dir)]) == 2
    assert "got 9223372036854775813 (>= 2^63)" in capsys.readouterr().err
    model = OneVAE.from_pretrained(model_dir)
    with pytest.raises(OneVAEError, match=r"token values must lie in \[0, 64000\), got values in \[\d+, 9223372036854775813\]$"):
        model.decode_tokens(Tokens(rest=grid))
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


def test_batch_decode_creates_the_output_directory_and_removes_it_on_failure(model_dir, tmp_path, capsys):
    from onevae.cli.main import main

    samples = tmp_path / "new" / "samples"
    good = write_sequences(tmp_path / "good.npy", 2)
    args = ["--frames", "5", "--size", "16x16", "--model", str(model_dir), "--quiet"]
    assert main(["decode", str(good), "-o", str(samples), *args]) == 0
    assert sorted(p.name for p in samples.iterdir()) == ["clip-00000.mp4", "clip-00001.mp4"]
    assert capsys.readouterr().err.strip().endswith(f"-> {samples}: 2 clip(s) of 5 frames of 16x16 (HxW) at 24 fps")
    bad = write_sequences(tmp_path / "bad.npy", 2, high=10**9)  # ids out of range: refused before anything is written
    assert main(["decode", str(bad), "-o", str(tmp_path / "other" / "samples"), *args]) == 2
    assert "error" in capsys.readouterr().err and not (tmp_path / "other").exists()
    # a file name for a batch is a slip: refused, no folder named like a video is made
    assert main(["decode", str(good), "-o", str(tmp_path / "x.mp4"), *args]) == 2
    assert "a batch of 2 sequences needs -o to be a directory" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_an_empty_batch_of_sequences_is_an_error_not_an_empty_success(model_dir, tmp_path, capsys):
    import numpy as np

    from onevae.cli.main import main
    from onevae.errors import InputError
    from onevae.sequences import as_sequence_batch

    empty = write_sequences(tmp_path / "empty.npy", 0)  # shape (0, N): a generator that produced nothing
    out = tmp_path / "new" / "samples"
    args = ["--frames", "5", "--size", "16x16", "--model", str(model_dir), "--quiet"]
    assert main(["decode", str(empty), "-o", str(out), *args]) == 2
    assert f"{empty} holds no sequence (a batch of 0" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # no directory made for nothing
    with pytest.raises(InputError, match="holds no sequence"):
        as_sequence_batch(np.zeros((0, 8), dtype=np.int64))


def test_encode_into_a_new_directory_creates_it(model_dir, encoded, tmp_path):
    from onevae.cli.main import main

    clip, _, _ = encoded
    second = tmp_path / "second.mp4"
    second.write_bytes(clip.read_bytes())
    out = tmp_path / "a" / "b"
    assert main(["encode", str(clip), str(second), "-o", str(out), "--model", str(model_dir), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.tokens.safetensors", "second.tokens.safetensors"]
    assert main(["encode", str(clip), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "c" / "d"), "--model", str(model_dir)]) == 2
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_ctrl_c_during_reconstruct_removes_the_report_directory_it_created(model_dir, tmp_path, monkeypatch, existing):
    from onevae import pipeline
    from onevae.cli.main import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "reconstruct_file", interrupted)
    report = tmp_path / "runs" / "report"
    if existing:
        report.mkdir(parents=True)
    assert main(["reconstruct", "--model", str(model_dir), "--report", str(report), "--quiet"]) == 130
    assert report.is_dir() if existing else not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------ image and lossless outputs
def test_reconstruct_writes_png_frames_and_lossless_video_exactly_as_it_measured(model_dir, encoded, tmp_path, capsys):
    """The written frames are the ones the printed PSNR was measured on: PSNR of the files against the input equals
    the table's (a 16x16 clip needs no fitting), PNG frames and FFV1 agree pixel for pixel."""
    import numpy as np

    from onevae.cli.main import main
    from onevae.eval.metrics import psnr_per_frame
    from onevae.io.video import frames_to_tensor, iter_video_frames

    clip = encoded[0]
    common = ["--model", str(model_dir), "--quiet", "--json"]
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "rec_%02d.png"), *common]) == 0
    measured = json.loads(capsys.readouterr().out)["metrics"]["tokens"]["psnr"]
    assert main(["reconstruct", str(clip), "-o", str(tmp_path / "rec.mkv"), "--lossless", *common]) == 0
    assert f"wrote {tmp_path / 'rec.mkv'}" in capsys.readouterr().err
    pngs = np.concatenate([np.stack(list(iter_video_frames(tmp_path / f"rec_{i:02d}.png"))) for i in range(1, 6)])
    np.testing.assert_array_equal(np.stack(list(iter_video_frames(tmp_path / "rec.mkv"))), pngs)
    inputs = frames_to_tensor(np.stack(list(iter_video_frames(clip))))
    assert psnr_per_frame(inputs, frames_to_tensor(pngs)).mean().item() == pytest.approx(measured, abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mkv"] + [f"rec_{i:02d}.png" for i in range(1, 6)]


def test_an_image_round_trips_to_an_image_and_a_clip_is_refused_one_image(model_dir, encoded, tmp_path, capsys):
    from onevae.cli.main import main
    from onevae.io.video import probe_video

    from media import smooth_frames

    common = ["--model", str(model_dir), "--quiet"]
    still = tmp_path / "still.png"
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(smooth_frames(1, 24, 40)[0]).save(still)
    tokens = tmp_path / "still.tokens.safetensors"
    assert main(["encode", str(still), "-o", str(tokens), *common]) == 0
    assert ": 1 frame, tokens grids" in capsys.readouterr().err
    assert main(["decode", str(tokens), "-o", str(tmp_path / "back.webp"), *common]) == 0
    assert f"-> {tmp_path / 'back.webp'}: 1 frame at" in capsys.readouterr().err
    info = probe_video(tmp_path / "back.webp")
    assert info.is_image and (info.width, info.height) == (40, 24)
    # a 5-frame token file into one image: refused before anything is decoded, nothing written
    assert main(["decode", str(encoded[1]), "-o", str(tmp_path / "five.png"), *common]) == 2
    assert "one image cannot hold 5 frames; name a frame pattern" in capsys.readouterr().err
    assert main(["decode", str(encoded[1]), "-o", str(tmp_path / "five.mp4"), "--lossless", *common]) == 2
    assert "lossless video is FFV1, which only .mkv holds" in capsys.readouterr().err
    assert main(["reconstruct", str(encoded[0]), "-o", str(tmp_path / "five.jpg"), *common]) == 2
    assert "one image cannot hold 5 frames" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.webp", "still.png", "still.tokens.safetensors"]


def test_decoding_a_batch_of_sequences_losslessly_writes_mkv_files(model_dir, tmp_path, capsys):
    from onevae.cli.main import main
    from onevae.io.video import probe_video

    sequences = write_sequences(tmp_path / "two.npy", 2)
    out = tmp_path / "clips"
    assert main(["decode", str(sequences), "-o", str(out), "--frames", "5", "--size", "16x16", "--lossless",
                 "--model", str(model_dir), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip-00000.mkv", "clip-00001.mkv"]
    assert probe_video(out / "clip-00001.mkv", count_frames=True).num_frames == 5
    assert main(["decode", str(sequences), "-o", str(tmp_path / "one_%03d.png"), "--frames", "5", "--size", "16x16",
                 "--model", str(model_dir), "--quiet"]) == 2  # two clips need a directory


# ------------------------------------------------------------------------------------------------ generated latents
def test_decode_writes_generated_latents_raw_or_normalised(model_dir, encoded, tmp_path, capsys):
    """A diffusion model's output, (B, z, t, h, w) floats in a .npy/.safetensors/.pt, decodes like the latents it
    was trained on; normalised ones with --normalized-latents and the model's statistics."""
    import numpy as np
    from safetensors.torch import save_file

    from onevae import OneVAE
    from onevae.cli.main import main
    from onevae.io.video import iter_video_frames, tensor_to_frames

    model = OneVAE.from_pretrained(model_dir)
    clip, _, _ = encoded
    video = torch.from_numpy(np.stack(list(iter_video_frames(clip)))).permute(3, 0, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = model.encode_latents(video.unsqueeze(0)).rest  # (1, z, 2, 2, 2)
        batch = torch.cat([latents, latents.flip(-1)])  # two "generated" clips
        expected = [tensor_to_frames(model.decode_latents([batch[i : i + 1]], mode="stream", chunk_latents=2)) for i in range(2)]
    np.save(tmp_path / "gen.npy", batch.numpy())
    common = ["--model", str(model_dir), "--quiet"]
    assert main(["decode", str(tmp_path / "gen.npy"), "-o", str(tmp_path / "clips"), "--lossless", "--fps", "8", *common]) == 0
    assert "2 clip(s) of 5 frames of 16x16 (HxW) at 8 fps, from raw latents" in capsys.readouterr().err
    for i in range(2):
        written = np.stack(list(iter_video_frames(tmp_path / "clips" / f"clip-{i:05d}.mkv")))
        np.testing.assert_array_equal(written, expected[i])

    with_stats = tmp_path / "with-stats"
    model.config.latents_mean, model.config.latents_std = [0.1] * model.config.z_dim, [2.0] * model.config.z_dim
    model.save_pretrained(with_stats)
    save_file({"latents": ((latents - 0.1) / 2.0).contiguous()}, tmp_path / "norm.safetensors")
    assert main(["decode", str(tmp_path / "norm.safetensors"), "-o", str(tmp_path / "norm.mkv"), "--lossless",
                 "--normalized-latents", "--model", str(with_stats), "--quiet"]) == 0
    assert "from normalised latents" in capsys.readouterr().err
    written = np.stack(list(iter_video_frames(tmp_path / "norm.mkv")))
    assert np.abs(written.astype(int) - expected[0].astype(int)).max() <= 1  # (z - mean) / std * std + mean in float32


@pytest.mark.parametrize("make, args, message", [
    (lambda: torch.zeros(1, 3, 2, 2, 2), [], "latents of 3 channels (dimension 1 of (1, 3, 2, 2, 2)), but tiny-cli-usability has z_dim 8"),
    (lambda: torch.zeros(8, 2, 2, 2), ["--grid", "2,2,2"], "their shape is their grid, so --frames, --size and --grid"),
    (lambda: torch.full((8, 2, 2, 2), float("nan")), [], "the latents contain NaN or infinite values"),
    (lambda: torch.zeros(8, 2, 2, 2), ["--normalized-latents"], "carries no latent statistics"),
    (lambda: torch.zeros(2, 8, 2, 2, 2), ["-o", "one.mp4"], "a batch of 2 latent clips needs"),
    (lambda: torch.zeros(1, 32, dtype=torch.int64), ["--frames", "5", "--size", "16x16", "--normalized-latents"],
     "--normalized-latents is for latent tensors"),
])
def test_generated_latents_the_model_cannot_decode_are_refused(model_dir, tmp_path, monkeypatch, capsys, make, args, message):
    from onevae.cli.main import main

    monkeypatch.chdir(tmp_path)
    torch.save(make(), tmp_path / "gen.pt")
    output = [] if "-o" in args else ["-o", "out.mp4"]
    assert main(["decode", "gen.pt", *output, *args, "--model", str(model_dir), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.pt"]
