"""Issue 13: hostile and unlucky inputs (D1..D21). Each test failed on the main of 2026-11-25; each asserts that
nothing is lost, nothing is executed, and a user-caused failure is one line and exit code 2 (or the documented
75/130/143), never a traceback."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from cli_helpers import save_tiny_model
from onevae import OneVAE, OneVAEConfig, OneVAEError
from onevae.cli.main import main as cli_main
from onevae.errors import CheckpointError, InputError

from media import make_clip, smooth_frames

TINY = dict(name="tiny-hostile", dim=8, z_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temporal_downsample=[False, True, True])
TRAIN_MODEL = {"name": "tiny", "dim": 8, "z_dim": 8, "dim_mult": [1, 2, 2], "num_res_blocks": 1,
               "temporal_downsample": [True, True], "fsq_levels": [8, 5, 5, 5], "num_codebooks": 2}
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:  # CPython ignores SIGXFSZ, so a write past the limit fails with EFBIG, like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run([sys.executable, "-m", "onevae.cli.main", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, preexec_fn=limit if limit_file_bytes else None)


def one_line_error(stderr: str, message: str, code_seen: int, code: int = 2) -> None:
    assert code_seen == code, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("onevae "), stderr
    assert message in lines[-1], lines[-1]


def cli_error(capsys, args: list[str], message: str) -> None:
    """In-process run of the command line: exit 2 and one error line naming ``message``."""
    code = cli_main(args)
    one_line_error(capsys.readouterr().err, message, code)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", TINY["name"], seed=0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", smooth_frames(5, 16, 16), fps=10)


@pytest.fixture(scope="module")
def token_file(model_dir, clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokens") / "clip.tokens.safetensors"
    assert cli_main(["encode", str(clip), "-o", str(out), "--model", str(model_dir), "--quiet"]) == 0
    return out


def read_parts(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["onevae"]), {k: f.get_tensor(k) for k in f.keys()}


def write_parts(path: Path, meta, tensors: dict[str, torch.Tensor], raw_meta: str | None = None) -> Path:
    save_file(tensors, str(path), metadata={"onevae": raw_meta if raw_meta is not None else json.dumps(meta)})
    return path


# ------------------------------------------------------------------------------------------------ D1
def test_d1_every_shipped_training_config_builds():
    from onevae.train.config import load_train_config

    for path in sorted((REPO / "configs").glob("*.yaml")):  # tests/test_configs.py also trains each for a step
        load_train_config(path).model_config()  # main: "unknown preset 'onevae-small-888'"


# ------------------------------------------------------------------------------------------------ D2
def nan_model(part: str = "encoder") -> OneVAE:
    torch.manual_seed(0)
    model = OneVAE(OneVAEConfig(**TINY)).eval()
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith(f"model.{part}")).view(-1)[0] = float("nan")
    return model


@pytest.mark.parametrize("kind", ["tokens", "latents"])
def test_d2_non_finite_latents_stop_encoding(clip, kind):
    from onevae.pipeline import FitOptions, encode_file

    with pytest.raises(InputError, match=r"non-finite latents .*weights hold NaN/inf"):
        encode_file(nan_model(), clip, FitOptions(), kind=kind)  # main: all-zero tokens / NaN latents


def test_d2_non_finite_frames_stop_decoding(model_dir, token_file, tmp_path):
    from onevae.pipeline import decode_to_video, load_token_file

    grids, meta = load_token_file(token_file)
    meta.model_fingerprint = ""  # no recorded model: the NaN model's own weights are what this test is about
    with pytest.raises(InputError, match="non-finite frames"):
        decode_to_video(nan_model("decoder"), grids, meta, tmp_path / "o.mp4")
    assert list(tmp_path.iterdir()) == []


def test_d2_a_model_directory_with_nan_weights_is_refused(clip, tmp_path, capsys):
    nan_model().save_pretrained(tmp_path / "nan")
    cli_error(capsys, ["encode", str(clip), "-o", str(tmp_path / "t.tokens.safetensors"), "--model", str(tmp_path / "nan")], "holds NaN or inf")
    assert not (tmp_path / "t.tokens.safetensors").exists()


# ------------------------------------------------------------------------------------------------ D3
def test_d3_output_that_is_the_input_is_refused(model_dir, clip, tmp_path, capsys):
    source = shutil.copy(clip, tmp_path / "in.mp4")
    before = Path(source).read_bytes()
    os.symlink(source, tmp_path / "link.mp4")
    for command, out in [("reconstruct", "in.mp4"), ("reconstruct", "link.mp4"), ("encode", "in.mp4")]:
        cli_error(capsys, [command, str(source), "-o", str(tmp_path / out), "--model", str(model_dir), "--quiet"], "would destroy the input")
    assert Path(source).read_bytes() == before
    cli_error(capsys, ["encode", str(source), "-o", str(tmp_path / "out.mp4"), "--model", str(model_dir)], "must end in .safetensors")
    cli_error(capsys, ["reconstruct", str(source), "-o", str(tmp_path / "out.safetensors"), "--model", str(model_dir)], "must end in .mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "link.mp4"]


# ------------------------------------------------------------------------------------------------ D4
def test_d4_encoded_names_never_collide(model_dir, clip, tmp_path, capsys):
    for name in ("a.v1.mp4", "a.v2.mp4"):
        shutil.copy(clip, tmp_path / name)
    out = tmp_path / "out"
    out.mkdir()
    assert cli_main(["encode", str(tmp_path / "a.v1.mp4"), str(tmp_path / "a.v2.mp4"), "-o", str(out), "--model", str(model_dir), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.v1.tokens.safetensors", "a.v2.tokens.safetensors"]
    for d in ("d1", "d2"):
        (tmp_path / d).mkdir()
        shutil.copy(clip, tmp_path / d / "clip.mp4")
    same = tmp_path / "same"
    same.mkdir()
    cli_error(capsys, ["encode", str(tmp_path / "d1" / "clip.mp4"), str(tmp_path / "d2" / "clip.mp4"), "-o", str(same), "--model", str(model_dir)],
              "would both be written to")
    assert list(same.iterdir()) == []


# ------------------------------------------------------------------------------------------------ training runs
def train_config(out: Path, **trainer) -> dict:
    return {
        "stage": "discrete", "seed": 0, "output_dir": str(out),
        "model": {"preset": None, "config": TRAIN_MODEL},
        "schedule": {"kind": "ramp", "ramp_steps": 2},
        "loss": {"disc_start": 100, "discriminator": {"base_channels": 8}, "perceptual_weight": 0.0},
        "optim": {"lr": 2e-3, "weight_decay": 0.0},
        "ema": {"decay": 0.9, "warmup": True},
        "data": {"kind": "procedural", "num_frames": 5, "height": 16, "width": 16, "batch_size": 1, "num_workers": 0, "num_samples": 2},
        "val": {"num_clips": 1, "num_frames": 5, "height": 16, "width": 16, "every_n_steps": 1000},
        "trainer": {"max_steps": 4, "checkpoint_every_n_steps": 2, "progress_bar": False, "log_every_n_steps": 1, **trainer},
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def train_steps(out: Path, resume=None, callbacks=None, overwrite=False, **trainer) -> Path:
    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    config = load_train_config(write_yaml(out.parent / f"{out.name}.yaml", train_config(out, **trainer)))
    return train(config, resume=resume, extra_callbacks=callbacks, overwrite=overwrite)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run of 4 steps: step=0000002.ckpt, step=0000004.ckpt, last.ckpt, export, logs/metrics.csv."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train_steps(out)
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def logged_steps(out: Path, column: str = "train/loss/total") -> list[int]:
    with (out / "logs" / "metrics.csv").open() as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get(column)]


# ------------------------------------------------------------------------------------------------ D5
def test_d5_a_new_run_into_a_previous_one_is_refused(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path)
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    config = write_yaml(tmp_path / "c.yaml", train_config(out))
    cli_error(capsys, ["train", "--config", str(config)], "holds a previous run")
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before
    cli_error(capsys, ["train", "--config", str(config), "--resume", "auto", "--overwrite"], "not both")


def test_d5_a_second_run_in_a_locked_directory_is_refused(tmp_path, capsys):
    import fcntl

    from onevae.train.rundir import LOCK_NAME

    out = tmp_path / "busy"
    out.mkdir()
    with open(out / LOCK_NAME, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running onevae train holds it
        cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", train_config(out)))], "in use by another onevae train")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_d5_overwrite_starts_over(finished_run, tmp_path):
    out = copy_run(finished_run, tmp_path)
    (out / "checkpoints" / "step=0000099.ckpt").write_bytes(b"from the old run")
    train_steps(out, overwrite=True, max_steps=2)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt", "step=0000002.ckpt"]
    assert logged_steps(out) == [0, 1]


# ------------------------------------------------------------------------------------------------ D6
class SendSignal(L.Callback):
    def __init__(self, signum: int, at_step: int) -> None:
        self.signum, self.at_step = signum, at_step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_d6_a_signal_saves_a_checkpoint_and_ends_with_its_own_code(tmp_path, signum):
    from onevae.cli.main import EXIT_INTERRUPTED, EXIT_PREEMPTED, exit_code
    from onevae.errors import Preempted

    out = tmp_path / "run"
    previous = signal.getsignal(signum)
    with pytest.raises(Preempted) as stopped:
        train_steps(out, callbacks=[SendSignal(signum, 1)], max_steps=50)
    assert stopped.value.signum == signum and signal.getsignal(signum) is previous
    step = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step in (1, 2) and f"after step {step}" in str(stopped.value)
    assert not (out / "export").exists()  # not finished: nothing exported
    assert logged_steps(out) == list(range(step))  # the metrics row of the step the signal stopped after, too
    assert exit_code(stopped.value) == (EXIT_PREEMPTED if signum == signal.SIGTERM else EXIT_INTERRUPTED)
    assert EXIT_PREEMPTED == 75
    train_steps(out, resume="auto", max_steps=3)  # and it continues from there
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert logged_steps(out) == [0, 1, 2]


@pytest.mark.parametrize("signum, every", [(signal.SIGTERM, 1), (signal.SIGINT, 2)])
def test_d6_the_stopped_step_is_logged_and_the_resumed_log_goes_on_without_gap_or_duplicate(tmp_path, signum, every):
    """The step a signal stops on is in the checkpoint: on a logging step its row is in logs/metrics.csv (it was
    missing: Lightning logs after on_train_batch_end, where the run stops), so the resumed run, which starts
    after it, leaves no gap; one header, every logging step once."""
    from onevae.errors import Preempted

    out = tmp_path / "run"

    def logging_steps(below: int) -> list[int]:
        return [s for s in range(below) if (s + 1) % every == 0]

    with pytest.raises(Preempted):
        train_steps(out, callbacks=[SendSignal(signum, 1)], max_steps=50, log_every_n_steps=every)
    stopped = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert logging_steps(stopped)[-1] == stopped - 1  # the step stopped on was a logging step
    assert logged_steps(out) == logging_steps(stopped)
    train_steps(out, resume="auto", max_steps=stopped + 2, log_every_n_steps=every)
    assert logged_steps(out) == logging_steps(stopped + 2)
    lines = (out / "logs" / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,step,") and not any(line.startswith("epoch,") for line in lines[1:])


def test_d6_a_stop_on_a_checkpoint_and_validation_step_saves_that_step_and_validates_it_on_resume(tmp_path):
    """A signal whose step is a checkpoint step and a validation step: the stop saves step=N.ckpt too (it saved
    last.ckpt only: Lightning runs the checkpoint callback after the one that stops), and the resumed run redoes
    the validation of step N, which the stop came before (Lightning counts it as done: a gap in validation.jsonl)."""
    from onevae.errors import Preempted

    def run(out: Path, max_steps: int, resume=None, callbacks=None) -> None:
        from onevae.train.config import load_train_config
        from onevae.train.runner import train

        data = train_config(out, max_steps=max_steps)
        data["val"].update(every_n_steps=2, save_media=False)
        train(load_train_config(write_yaml(tmp_path / f"{out.name}.yaml", data)), resume=resume, extra_callbacks=callbacks)

    def rows(out: Path) -> dict[int, float]:
        lines = (out / "validation.jsonl").read_text().splitlines()
        return {row["step"]: row["val/discrete/psnr"] for row in map(json.loads, lines)}

    run(tmp_path / "straight", 4)
    out = tmp_path / "stopped"
    with pytest.raises(Preempted, match="after step 4"):
        run(out, 8, callbacks=[SendSignal(signal.SIGTERM, 3)])  # seen at the end of the next step: 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt", "step=0000002.ckpt", "step=0000004.ckpt"]
    assert torch.load(out / "checkpoints" / "step=0000004.ckpt", weights_only=True)["global_step"] == 4
    assert list(rows(out)) == [2]  # the stop comes before step 4's validation
    run(out, 6, resume="auto")
    assert list(rows(out)) == [2, 4, 6]
    for step, psnr in rows(tmp_path / "straight").items():  # the same numbers as the uninterrupted run's
        assert rows(out)[step] == pytest.approx(psnr, rel=1e-5), step
    assert logged_steps(out) == list(range(6))


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [False, True], ids=["to-process", "to-group-with-loader-workers"])
def test_d6_sigterm_to_the_command_line_exits_75(tmp_path, to_group):
    """`timeout`, schedulers and Ctrl-C signal the whole process group: loader workers included (they must not
    die before the trainer saves; a GPU run lost its last steps that way)."""
    out = tmp_path / "run"
    data = train_config(out, max_steps=100000, checkpoint_every_n_steps=1)
    if to_group:
        data["data"].update(num_workers=2, num_samples=64)
    config = write_yaml(tmp_path / "c.yaml", data)
    proc = subprocess.Popen([sys.executable, "-m", "onevae.cli.main", "train", "--config", str(config)], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=to_group)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "step=0000001.ckpt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    one_line_error(stderr, "stopped by SIGTERM", proc.returncode, code=75)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] >= 1
    assert not (out / "export").exists()


# ------------------------------------------------------------------------------------------------ D7, D13
def test_d7_d13_resume_falls_back_to_the_newest_valid_checkpoint_and_keeps_the_log(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path)
    assert logged_steps(out) == [0, 1, 2, 3]
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # damaged
    (out / "checkpoints" / "step=0000004.ckpt").write_bytes(b"")  # damaged too
    train_steps(out, resume="auto", max_steps=5)
    assert "skipping a damaged checkpoint" in capsys.readouterr().err
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert logged_steps(out) == [0, 1, 2, 3, 4]  # main: the rows before the resume point were lost (D13)


def test_d7_resume_with_another_architecture_is_refused(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path)
    config = train_config(out)
    config["model"]["config"] = {**TRAIN_MODEL, "z_dim": 16}
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", config)), "--resume", "auto"],
              "another architecture (z_dim 8 -> 16)")


# ------------------------------------------------------------------------------------------------ D12, D16, D21
class RunsCode:
    """Unpickling this calls builtins.open, creating the marker file: a stand-in for os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_run_that_fails_before_its_first_step_leaves_no_directory(tmp_path, capsys):
    (tmp_path / "no_videos").mkdir()  # exists, so it passes the early source check; fails when the data is loaded
    config = train_config(tmp_path / "runs" / "new")
    config["data"] = {**config["data"], "kind": "files", "sources": [str(tmp_path / "no_videos")]}
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", config))], "no usable video or image")
    assert not (tmp_path / "runs" / "new").exists()
    (tmp_path / "mine").mkdir()  # a directory the user made is left, as it was
    config["output_dir"] = str(tmp_path / "mine")
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", config))], "no usable video or image")
    assert (tmp_path / "mine").is_dir()


def test_d12_resume_never_unpickles_code(finished_run, tmp_path, capsys, monkeypatch):
    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"] = RunsCode(tmp_path / "pwned")
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # a common workaround
    out = tmp_path / "run"
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", train_config(out))), "--resume", str(tmp_path / "evil.ckpt")],
              "it would call")
    assert not (tmp_path / "pwned").exists()
    cli_error(capsys, ["export", str(tmp_path / "evil.ckpt"), "-o", str(tmp_path / "x")], "holds Python objects")
    assert not (tmp_path / "pwned").exists()


def test_d16_export_refuses_nan_weights_and_malformed_checkpoints(finished_run, tmp_path, capsys):
    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    for key in checkpoint["state_dict"]:
        if key.startswith("ema.shadow__"):
            checkpoint["state_dict"][key] = torch.full_like(checkpoint["state_dict"][key], float("nan"))
    torch.save(checkpoint, tmp_path / "nan.ckpt")
    cli_error(capsys, ["export", str(tmp_path / "nan.ckpt"), "-o", str(tmp_path / "x")], "EMA weights hold NaN or inf")
    assert cli_main(["export", str(tmp_path / "nan.ckpt"), "-o", str(tmp_path / "raw"), "--no-ema"]) == 0
    config = checkpoint["onevae_model_config"]
    for name, bad in {"list": [1, 2], "no_state": {"onevae_model_config": config},
                      "bad_config": {"onevae_model_config": {"dim": "8"}, "state_dict": {}},
                      "wrong_tensors": {"onevae_model_config": config, "state_dict": {"vae.model.x": torch.zeros(1)}}}.items():
        torch.save(bad, tmp_path / f"{name}.ckpt")
        code = cli_main(["export", str(tmp_path / f"{name}.ckpt"), "-o", str(tmp_path / "x")])
        err = capsys.readouterr().err
        one_line_error(err, "", code)
        assert "trust-checkpoint" not in err  # D21: export has no such option
    assert not (tmp_path / "x").exists()


def test_save_pretrained_never_replaces_the_shipped_model(tmp_path, monkeypatch):
    from onevae import OneVAE, model_dir
    from onevae.errors import CheckpointError

    shipped = tmp_path / "package" / "onevae-small"  # a copy stands in for the package's, which must stay untouched
    shutil.copytree(model_dir.default_model_dir(), shipped)
    monkeypatch.setattr(model_dir, "default_model_dir", lambda: shipped)
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    model = OneVAE.from_pretrained(None)  # fine-tuned, then saved back where it came from: the natural slip
    assert model.source_dir == shipped
    for target in (model.source_dir, tmp_path / "package" / "." / "onevae-small"):
        with pytest.raises(CheckpointError, match="the model shipped inside the package, which is never replaced"):
            model.save_pretrained(target, dtype=torch.float32)  # was written over it (float32: other bytes)
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    model.save_pretrained(tmp_path / "mine")
    assert OneVAE.from_pretrained(tmp_path / "mine").config.name == "onevae-small"


def test_export_and_convert_never_replace_a_model_unasked(finished_run, tmp_path, capsys):
    from onevae.model_dir import default_model_dir

    checkpoint = finished_run / "checkpoints" / "last.ckpt"
    shipped = default_model_dir() / "model.safetensors"
    before = shipped.stat().st_mtime_ns
    for flags in ([], ["--overwrite"]):
        cli_error(capsys, ["export", str(checkpoint), "-o", str(default_model_dir()), *flags], "the model shipped inside the package")
    assert shipped.stat().st_mtime_ns == before
    assert cli_main(["export", str(checkpoint), "-o", str(tmp_path / "m")]) == 0
    weights = (tmp_path / "m" / "model.safetensors").read_bytes()
    cli_error(capsys, ["export", str(checkpoint), "-o", str(tmp_path / "m"), "--save-dtype", "float16"], "already holds files; pass --overwrite")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == weights
    assert cli_main(["export", str(checkpoint), "-o", str(tmp_path / "m"), "--save-dtype", "float16", "--overwrite"]) == 0
    assert len((tmp_path / "m" / "model.safetensors").read_bytes()) < len(weights)
    (tmp_path / "file").write_text("x")
    cli_error(capsys, ["export", str(checkpoint), "-o", str(tmp_path / "file")], "is a file; give a directory")
    cli_error(capsys, ["convert", str(tmp_path / "m"), "--to", "diffusers", "-o", str(tmp_path / "m")], "already holds files")
    (tmp_path / "empty").mkdir()
    assert cli_main(["export", str(checkpoint), "-o", str(tmp_path / "empty")]) == 0  # an empty directory is fine


def test_d21_refused_pickles_are_named_and_wan_drops_are_reported(tmp_path):
    from onevae.checkpoints import load_wan
    from onevae.checkpoints.files import read_weights_file

    class System:  # the classic: os.system("...") on load (here a harmless command, and refused anyway)
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"w": torch.zeros(1), "evil": System()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"it would call posix\.system.*--trust-checkpoint"):
        read_weights_file(tmp_path / "evil.pth")
    config = OneVAEConfig(**{**TINY, "fsq_levels": None, "num_codebooks": 1})
    state = {k.removeprefix("model."): v for k, v in OneVAE(config).state_dict().items()}
    torch.save({**state, "text_encoder.weight": torch.zeros(2)}, tmp_path / "wan.pth")
    _, report = load_wan(tmp_path / "wan.pth", config=config)
    assert report.dropped == ["text_encoder.weight"] and "dropped:      1 (text_encoder.weight)" in report.summary()


# ------------------------------------------------------------------------------------------------ D8
def test_d8_decode_checks_memory_before_allocating(model_dir, token_file, tmp_path, capsys, monkeypatch):
    meta, tensors = read_parts(token_file)
    big = torch.zeros(1, 1, 256, 256, 2, dtype=torch.int32)  # 512 KB of tokens: a 2048x2048 frame
    meta.update(grid_shapes=[list(big.shape)], frames=1, padded_frames=0, fit={})
    write_parts(tmp_path / "big.tokens.safetensors", meta, {"tokens.0": big})
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(2**20))  # not even one tile's caches fit (tile by tile)
    cli_error(capsys, ["decode", str(tmp_path / "big.tokens.safetensors"), "-o", str(tmp_path / "o.mp4"), "--model", str(model_dir)], "GiB")
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(2**30))
    meta, tensors = read_parts(token_file)  # metadata asking for 200000x200000 output frames
    meta["fit"].update(source_height=200000, source_width=200000)
    write_parts(tmp_path / "fit.tokens.safetensors", meta, tensors)
    cli_error(capsys, ["decode", str(tmp_path / "fit.tokens.safetensors"), "-o", str(tmp_path / "o.mp4"), "--model", str(model_dir)], "GiB")
    assert not (tmp_path / "o.mp4").exists()


# ------------------------------------------------------------------------------------------------ D9
def test_d9_fingerprint_does_not_depend_on_the_compute_dtype(model_dir, token_file, tmp_path):
    from onevae.model_dir import model_fingerprint

    fp32 = OneVAE.from_pretrained(model_dir)
    assert model_fingerprint(OneVAE.from_pretrained(model_dir, dtype=torch.bfloat16)) == model_fingerprint(fp32)
    fresh = OneVAE(fp32.config)
    fresh.load_state_dict(fp32.state_dict())
    assert model_fingerprint(fresh) == model_fingerprint(fp32)  # float32 fingerprints are what they always were
    assert cli_main(["decode", str(token_file), "-o", str(tmp_path / "o.mp4"), "--model", str(model_dir), "--dtype", "bfloat16", "--quiet"]) == 0


# ------------------------------------------------------------------------------------------------ D10, D20
MALFORMED_META = {
    "fps_string": lambda m: m.update(fps="25"),
    "fps_nan": lambda m: m.update(fps=float("nan")),
    "fps_zero": lambda m: m.update(fps=0),
    "shapes_string": lambda m: m.update(grid_shapes="1x2"),
    "names_unknown": lambda m: m.update(grid_names=["everything"]),
    "kind_unknown": lambda m: m.update(kind="pixels"),
    "source_number": lambda m: m.update(source=5),
    "fit_unknown_key": lambda m: m["fit"].update(cropp_top=0),
    "fit_float": lambda m: m["fit"].update(height=16.5),
    "fit_bool": lambda m: m["fit"].update(pad_bottom=True),
    "fit_contradicts_grid": lambda m: m["fit"].update(height=64, resized_height=64, source_height=64),
    "version_string": lambda m: m.update(version="1"),
    "model_config_list": lambda m: m.update(model_config=[1]),
    "model_config_huge": lambda m: m["model_config"].update(z_dim=10**9),
    "frames_contradict": lambda m: m.update(frames=99),
    "shapes_contradict": lambda m: m.update(grid_shapes=[[1, 9, 9, 9, 2]]),
    "codebooks_contradict": lambda m: m.update(num_codebooks=3),
    "unknown_field": lambda m: m.update(colour="blue"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_META))
def test_d10_d20_malformed_metadata_is_refused_on_read(token_file, tmp_path, name):
    from onevae.io.tokens import load_token_file

    meta, tensors = read_parts(token_file)
    MALFORMED_META[name](meta)
    with pytest.raises(InputError):
        load_token_file(write_parts(tmp_path / "bad.tokens.safetensors", meta, tensors))


@pytest.mark.parametrize("raw", ["[" * 100000 + "]" * 100000, "[1, 2]", '"text"', "null", '{"format": "onevae-tokens", "version": [1]}'])
def test_d10_metadata_that_is_not_an_object_is_refused(token_file, tmp_path, capsys, raw):
    _, tensors = read_parts(token_file)
    path = write_parts(tmp_path / "bad.tokens.safetensors", None, tensors, raw_meta=raw)
    cli_error(capsys, ["info", str(path)], str(path))


@pytest.mark.parametrize("name, tensor", [
    ("rank4", torch.zeros(1, 2, 2, 2, dtype=torch.int32)),
    ("zero_size", torch.zeros(1, 2, 0, 2, 2, dtype=torch.int32)),
    ("float", torch.zeros(1, 2, 2, 2, 2, dtype=torch.float32)),
    ("bool", torch.zeros(1, 2, 2, 2, 2, dtype=torch.bool)),
])
def test_d10_d20_bad_token_tensors_are_refused(token_file, tmp_path, name, tensor):
    from onevae.io.tokens import load_token_file

    meta, _ = read_parts(token_file)
    meta["grid_shapes"] = [list(tensor.shape)]
    with pytest.raises(InputError):  # main: float and bool tokens were silently cast
        load_token_file(write_parts(tmp_path / "bad.tokens.safetensors", meta, {"tokens.0": tensor}))


def test_d20_a_batch_of_two_is_refused_by_decode(model_dir, token_file, tmp_path, capsys):
    meta, tensors = read_parts(token_file)
    tensors = {"tokens.0": torch.cat([tensors["tokens.0"]] * 2)}
    meta["grid_shapes"] = [list(tensors["tokens.0"].shape)]
    path = write_parts(tmp_path / "two.tokens.safetensors", meta, tensors)
    cli_error(capsys, ["decode", str(path), "-o", str(tmp_path / "o.mp4"), "--model", str(model_dir)], "a batch of 2 clips")


def test_d20_latent_files_with_nan_are_refused(model_dir, clip, tmp_path):
    from onevae.io.tokens import load_token_file

    out = tmp_path / "c.latents.safetensors"
    assert cli_main(["encode", str(clip), "-o", str(out), "--continuous", "--model", str(model_dir), "--quiet"]) == 0
    meta, tensors = read_parts(out)
    tensors["latents.0"][0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        load_token_file(write_parts(tmp_path / "nan.latents.safetensors", meta, tensors))


# ------------------------------------------------------------------------------------------------ D11
def test_d11_disk_full_is_one_line_and_leaves_nothing(model_dir, clip, finished_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for args in (["encode", str(clip), "-o", str(out / "t.tokens.safetensors"), "--model", str(model_dir)],
                 ["reconstruct", str(clip), "-o", str(out / "r.mp4"), "--model", str(model_dir)],
                 ["export", str(finished_run / "checkpoints" / "last.ckpt"), "-o", str(out / "m")],
                 ["train", "--config", str(write_yaml(tmp_path / "c.yaml", train_config(out / "run")))]):
        result = run_cli(*args, limit_file_bytes=200)  # writes past 200 bytes fail with EFBIG, as on a full disk
        one_line_error(result.stderr, "File too large", result.returncode)
        leftovers = [p for p in out.rglob("*") if p.is_file() and p.name != ".onevae-train.lock"]
        assert leftovers == [], (args[0], leftovers)


def test_d11_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", train_config(tmp_path / "file")))], "cannot use output_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_d11_read_only_output_dir_is_refused(tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o500)
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", train_config(tmp_path / "ro" / "run")))], "cannot use output_dir")


def test_os_errors_anywhere_end_in_one_line(monkeypatch, capsys):
    import errno

    from onevae.cli import commands

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.mp4")

    monkeypatch.setattr(commands, "run_info", full)
    cli_error(capsys, ["info"], "/data/out.mp4: No space left on device")


# ------------------------------------------------------------------------------------------------ D14, D15
@pytest.mark.parametrize("change, message", [
    ({"dim": "8"}, "must be a number"), ({"z_dim": 1.5}, "must be an integer"), ({"num_res_blocks": -1}, ">= 1"),
    ({"z_dim": 10**9}, "<= 2048"), ({"num_res_blocks": 10**6}, "<= 16"), ({"first_frame_highres": "no"}, "true or false"),
    ({"dim_mult": [1, 2, 4, 4] * 5}, "dim_mult"), ({"fsq_levels": [2**16] * 3}, "fsq_levels"),
])
def test_d14_bad_config_json_values_are_refused(model_dir, tmp_path, capsys, change, message):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, **change}))
    cli_error(capsys, ["info", str(bad)], message)


@pytest.mark.parametrize("override, message", [
    ("trainer.max_steps=-5", "trainer.max_steps must be >= 1"), ("optim.lr=-1", "optim.lr must be > 0"),
    ("val.every_n_steps=0", "val.every_n_steps must be >= 1"), ("trainer.precision=fp7", "trainer.precision must be one of"),
    ("ema.decay=2.0", "ema.decay must be >= 0 and < 1"), ("schedule.ramp_steps=-3", "schedule.ramp_steps must be >= 0"),
    ("data.height=33", "multiples of 4"), ("data.num_frames=6", "1 + k*4"), ("optim.lr=.nan", "finite"),
])
def test_d15_bad_training_values_are_refused_up_front(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    cli_error(capsys, ["train", "--config", str(write_yaml(tmp_path / "c.yaml", train_config(out))), override], message)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ D17
def test_d17_writes_are_flushed_before_the_rename(tmp_path, monkeypatch):
    from onevae.io import atomic

    events = []
    monkeypatch.setattr(atomic, "fsync_path", lambda p: events.append(("fsync", Path(p).name)))
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b)))
    with atomic.atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("x")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"] and events[2][1] == tmp_path.name


def test_d17_sigterm_during_reconstruct_leaves_no_temporary_file(model_dir, tmp_path):
    from onevae.io.samples import sample_video_path

    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "onevae.cli.main", "reconstruct", str(sample_video_path("bikes")), "-o", str(out / "r.mp4"),
                             "--model", str(model_dir), "--quiet"], stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not any(out.iterdir()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated" in stderr and "Traceback" not in stderr, stderr[-2000:]
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------------------ D18, D19
@pytest.mark.parametrize("fps", ["nan", "inf", "0", "-3", "1e6"])
def test_d18_bad_frame_rates_are_refused(model_dir, clip, tmp_path, capsys, fps):
    cli_error(capsys, ["encode", str(clip), "-o", str(tmp_path / "t.safetensors"), "--model", str(model_dir), f"--fps={fps}"], "--fps must be")
    cli_error(capsys, ["info", str(model_dir), f"--fps={fps}"], "--fps must be")


def test_d18_decompression_bomb_images_are_refused(tmp_path, monkeypatch):
    from PIL import Image

    from onevae.io.video import read_video

    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels: more than twice the limit
    with pytest.raises(InputError, match="too large"):
        read_video(tmp_path / "bomb.png")


def test_d19_frames_smaller_than_the_ssim_window_are_reconstructed(model_dir, tmp_path, capsys):
    small = make_clip(tmp_path / "small.mkv", smooth_frames(5, 8, 8), codec="ffv1", pix_fmt="yuv444p")
    assert cli_main(["reconstruct", str(small), "--model", str(model_dir), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)["metrics"]
    assert 0 < summary["tokens"]["ssim"] <= 1 and summary["tokens"]["psnr"] > 0


def test_preempted_is_not_a_user_error():
    from onevae.cli.main import exit_code
    from onevae.errors import Preempted

    assert exit_code(Preempted(signal.SIGTERM, "x")) == 75 and exit_code(Preempted(signal.SIGINT, "x")) == 130
    assert exit_code(OneVAEError("x")) == exit_code(OSError("x")) == 2 and exit_code(RuntimeError("bug")) is None
