"""Training through the user's entry point: stages, initialisation chain, resume, DDP, non-finite losses."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from onevae import OneVAE, OneVAEConfig, OneVAEError
from onevae.cli.main import main as cli_main

TINY_MODEL = {
    "name": "tiny", "dim": 8, "z_dim": 8, "dim_mult": [1, 2, 2], "num_res_blocks": 1,
    "temporal_downsample": [True, True], "fsq_levels": [8, 5, 5, 5], "num_codebooks": 2,
}


def tiny_config(out: Path, stage: str = "continuous", **sections) -> dict:
    config = {
        "stage": stage,
        "seed": 0,
        "output_dir": str(out),
        "model": {"preset": None, "config": TINY_MODEL},
        "schedule": {"kind": "continuous" if stage == "continuous" else "ramp", "ramp_steps": 4},
        "loss": {"disc_start": 4, "discriminator": {"base_channels": 8}},
        "optim": {"lr": 2e-3, "betas": [0.9, 0.99], "weight_decay": 0.0},
        "ema": {"decay": 0.9, "warmup": True},
        # one fixed tiny batch: two procedural clips, batch size two
        "data": {"kind": "procedural", "num_frames": 5, "height": 32, "width": 32, "batch_size": 2, "num_workers": 0, "num_samples": 2},
        "val": {"num_clips": 1, "num_frames": 5, "height": 32, "width": 32, "every_n_steps": 1000},
        "trainer": {"max_steps": 12, "checkpoint_every_n_steps": 4, "progress_bar": False, "log_every_n_steps": 1},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def write_config(tmp_path: Path, name: str, config: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def losses(out: Path, column: str) -> list[float]:
    with (out / "logs" / "metrics.csv").open() as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)]


def test_stages_chain_through_the_cli(tmp_path):
    """continuous -> discrete (initialised from it, report written) -> joint; each loss goes down."""
    cont = tmp_path / "continuous"
    assert cli_main(["train", "--config", str(write_config(tmp_path, "c", tiny_config(cont)))]) == 0
    pixel = losses(cont, "train/loss/pixel_continuous")
    assert len(pixel) == 12 and sum(pixel[-3:]) / 3 < 0.8 * sum(pixel[:3]) / 3
    exported = OneVAE.from_pretrained(cont / "export")
    assert (cont / "checkpoints" / "last.ckpt").is_file() and (cont / "checkpoints" / "step=0000004.ckpt").is_file()

    disc = tmp_path / "discrete"
    config = tiny_config(disc, "discrete", model={"preset": None, "config": TINY_MODEL, "init_from": str(cont / "export")})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "d", config)), "trainer.max_steps=8"]) == 0
    report = json.loads((disc / "init_report.json").read_text())
    assert "model.encoder.conv1.weight" in report["copied"] and not report["mismatched"]
    assert report["initialised"] == []  # the continuous model already had its FSQ projections
    # the discrete stage really started from the continuous weights: its first validation-free step used them
    first = torch.load(disc / "checkpoints" / "step=0000004.ckpt", weights_only=True)
    assert first["onevae_model_config"]["name"] == "tiny"
    shares = losses(disc, "train/schedule/discrete_share")
    assert shares[0] == 0.0 and shares[-1] == 1.0  # ramped from continuous to discrete
    assert losses(disc, "train/loss/pixel_discrete")  # the FSQ path was trained

    joint = tmp_path / "joint"
    config = tiny_config(joint, "joint", model={"preset": None, "config": TINY_MODEL, "init_from": str(disc / "checkpoints" / "last.ckpt")},
                         schedule={"kind": "joint", "joint_mode": "sum"})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "j", config)), "trainer.max_steps=6"]) == 0
    both_c, both_d = losses(joint, "train/loss/pixel_continuous"), losses(joint, "train/loss/pixel_discrete")
    assert len(both_c) == len(both_d) == 6  # both paths every step
    report = json.loads((joint / "init_report.json").read_text())
    assert "(training)" in report["source"] and report["copied"]
    model = OneVAE.from_pretrained(joint / "export")
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        assert model.decode_tokens(model.encode_tokens(video)).shape == video.shape
        assert model.decode_latents(model.encode_latents(video)).shape == video.shape
    del exported


def test_discrete_stage_from_a_continuous_only_model_initialises_the_bottleneck(tmp_path):
    """A continuous prior without FSQ projections (like Wan2.1): the report lists them as newly initialised."""
    prior = OneVAE(OneVAEConfig(**{**TINY_MODEL, "fsq_levels": None, "num_codebooks": 1}))
    prior.save_pretrained(tmp_path / "prior")
    out = tmp_path / "d"
    config = tiny_config(out, "discrete", model={"preset": None, "config": TINY_MODEL, "init_from": str(tmp_path / "prior")})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "d", config)), "trainer.max_steps=2"]) == 0
    report = json.loads((out / "init_report.json").read_text())
    assert sorted(report["initialised"]) == ["post_quant_conv.bias", "post_quant_conv.weight", "quant_conv.bias", "quant_conv.weight"]
    assert len(report["copied"]) == len(prior.state_dict())


class _Interrupt(Exception):
    pass


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    import lightning as L

    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 6:
                raise _Interrupt()

    def run(out: Path, resume=None, callbacks=None):
        sections = {"loss": {"disc_start": 2, "discriminator": {"base_channels": 8}}}
        config = tiny_config(out, "discrete", schedule={"kind": "ramp", "ramp_steps": 6}, **sections)
        config["trainer"].update(max_steps=10, checkpoint_every_n_steps=4)
        path = write_config(tmp_path, out.name, config)
        return train(load_train_config(path), resume=resume, extra_callbacks=callbacks)

    run(tmp_path / "straight")
    with pytest.raises(_Interrupt):
        run(tmp_path / "broken", callbacks=[StopAt()])
    assert not (tmp_path / "broken" / "export").exists()
    run(tmp_path / "broken", resume="auto")
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "broken" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 10
    for key, value in a["state_dict"].items():  # model, EMA and discriminator
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"]):
        for pa, pb in zip(sa["state"].values(), sb["state"].values()):
            torch.testing.assert_close(pb["exp_avg"], pa["exp_avg"], rtol=1e-5, atol=1e-7)


def test_non_finite_loss_is_skipped_then_stops_with_a_clear_message(tmp_path, monkeypatch, capsys):
    from onevae.losses import ReconstructionLoss
    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    real_forward = ReconstructionLoss.forward
    poisoned = {2, 3}

    def forward(self, video, recon, step, **kwargs):
        total, logs = real_forward(self, video, recon, step, **kwargs)
        return (total * float("nan"), logs) if step in poisoned else (total, logs)

    monkeypatch.setattr(ReconstructionLoss, "forward", forward)
    out = tmp_path / "nan"
    config = tiny_config(out, loss={"g_loss_weight": 0.0})
    config["trainer"].update(max_steps=6, max_nonfinite=3)
    train(load_train_config(write_config(tmp_path, "nan", config)))
    skipped = losses(out, "train/skipped_steps")
    assert skipped[-1] == 2.0  # steps 2 and 3 skipped, training went on to step 6
    weights = load_file(str(out / "export" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert "[onevae] warning: 2 of the run's 6 steps were skipped as non-finite" in capsys.readouterr().err

    poisoned.clear()
    poisoned.update({4, 5})  # the run ends on skipped steps: the export is step 4's weights, and it says so
    config["output_dir"] = str(tmp_path / "nan_end")
    train(load_train_config(write_config(tmp_path, "nan_end", config)))
    assert "the last 2 in a row, so the export holds step 4's weights" in capsys.readouterr().err

    poisoned.update(range(0, 100))
    out2 = tmp_path / "nan2"
    config["output_dir"] = str(out2)
    with pytest.raises(OneVAEError, match=r"non-finite loss \(4 step\(s\) in a row\)"):
        train(load_train_config(write_config(tmp_path, "nan2", config)))
    config["trainer"]["nonfinite"] = "stop"
    config["output_dir"] = str(tmp_path / "nan3")
    with pytest.raises(OneVAEError, match="non-finite loss"):
        train(load_train_config(write_config(tmp_path, "nan3", config)))


def test_collapse_to_flat_colours_stops_training(tmp_path, monkeypatch):
    from onevae.model import CausalVAE
    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    real_decode = CausalVAE.decode
    monkeypatch.setattr(CausalVAE, "decode", lambda self, grids, cache=None: real_decode(self, grids, cache) * 0)
    config = tiny_config(tmp_path / "flat", loss={"g_loss_weight": 0.0})
    config["trainer"].update(max_steps=20, collapse_patience=3)
    with pytest.raises(OneVAEError, match="collapsed to flat colours"):
        train(load_train_config(write_config(tmp_path, "flat", config)))


def test_collapse_is_caught_between_logging_steps(tmp_path, monkeypatch):
    """The flat-colour count runs on the device every step and is read on logging steps: a run of
    collapse_patience flat steps is caught even when no logging step falls inside it."""
    from onevae.model import CausalVAE
    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    real_decode = CausalVAE.decode
    calls = {"n": 0}

    def decode(self, grids, cache=None):  # flat output on the 3 training decodes 2-4 (steps 2-4), then normal
        calls["n"] += 1
        return real_decode(self, grids, cache) * (0 if 2 <= calls["n"] <= 4 else 1)

    monkeypatch.setattr(CausalVAE, "decode", decode)
    config = tiny_config(tmp_path / "flat", loss={"g_loss_weight": 0.0})
    config["trainer"].update(max_steps=12, collapse_patience=3, log_every_n_steps=6)
    with pytest.raises(OneVAEError, match="collapsed to flat colours for 3 steps"):
        train(load_train_config(write_config(tmp_path, "flat", config)))


def test_codebook_usage_waits_for_the_device_on_logging_steps_only(tmp_path, monkeypatch):
    """torch.unique waits for the GPU: the batch's codebook usage is computed on the steps the logger keeps
    (trainer.log_every_n_steps), and each of those rows has it."""
    from onevae.train import module
    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    calls = []
    real = module.codebook_usage
    monkeypatch.setattr(module, "codebook_usage", lambda tokens, vocab: calls.append(1) or real(tokens, vocab))
    out = tmp_path / "d"
    config = tiny_config(out, "discrete", loss={"g_loss_weight": 0.0})
    config["trainer"].update(max_steps=12, log_every_n_steps=4)
    train(load_train_config(write_config(tmp_path, "d", config)))
    usage = losses(out, "train/codebook/batch_usage/token0")
    assert len(calls) == 3 and len(usage) == 3 and all(0 < u <= 1 for u in usage)


def test_freezing_by_name_keeps_the_encoder_fixed(tmp_path):
    out = tmp_path / "frozen"
    config = tiny_config(out, trainer={"max_steps": 3, "freeze": ["model.encoder"], "progress_bar": False, "checkpoint_every_n_steps": 3})
    config["ema"] = {"enabled": False}
    assert cli_main(["train", "--config", str(write_config(tmp_path, "f", config))]) == 0
    torch.manual_seed(0)
    start = OneVAE(OneVAEConfig(**TINY_MODEL))
    end = OneVAE.from_pretrained(out / "export")
    assert torch.equal(start.model.encoder.conv1.weight, end.model.encoder.conv1.weight)
    assert not torch.equal(start.model.decoder.head[-1].weight, end.model.decoder.head[-1].weight)
    assert cli_main(["train", "--config", str(write_config(tmp_path, "f", config)), "trainer.freeze=[model.nothing]"]) == 2


def _fine_tune_frozen(tmp_path, freeze: list[str]) -> tuple[OneVAE, OneVAE, torch.Tensor]:
    """4 joint steps of the tiny model with ``freeze`` (EMA on): the model before, the export after, a clip."""
    out = tmp_path / "frozen_run"
    config = tiny_config(out, stage="joint", schedule={"kind": "joint", "joint_mode": "sample", "final_discrete": 0.7},
                         loss={"g_loss_weight": 0.0}, trainer={"max_steps": 4, "freeze": freeze})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "frozen", config))]) == 0
    torch.manual_seed(0)
    start = OneVAE(OneVAEConfig(**TINY_MODEL))
    return start, OneVAE.from_pretrained(out / "export"), torch.rand(1, 3, 5, 32, 32) * 2 - 1  # clip: (B, C, T, H, W)


def test_decoder_only_fine_tune_keeps_every_token(tmp_path):
    """Freezing everything up to the tokens (configs/default_small_decoder_cpu.yaml), EMA included,
    changes how tokens decode but not one token: a corpus tokenized with the starting model stays valid."""
    start, end, clip = _fine_tune_frozen(tmp_path, ["model.encoder", "model.conv1", "quant_conv"])
    with torch.no_grad():
        start_tokens, end_tokens = start.encode_tokens(clip).to_list(), end.encode_tokens(clip).to_list()
        assert all(torch.equal(a, b) for a, b in zip(start_tokens, end_tokens))
        assert not torch.allclose(start.reconstruct(clip), end.reconstruct(clip))


def test_encoder_only_fine_tune_decodes_every_token_the_same(tmp_path):
    """Freezing everything after the tokens (configs/default_small_encoder_cpu.yaml), EMA included, changes
    which tokens the encoder writes but not what a given token grid decodes to."""
    start, end, clip = _fine_tune_frozen(tmp_path, ["model.decoder", "model.conv2", "post_quant_conv"])
    with torch.no_grad():
        tokens = start.encode_tokens(clip)
        assert torch.equal(start.decode_tokens(tokens), end.decode_tokens(tokens))
        assert not torch.equal(start.encode_latents(clip).rest, end.encode_latents(clip).rest)


def test_bad_configs_are_clear_errors(tmp_path, capsys):
    path = write_config(tmp_path, "bad", {"stage": "continuous", "trainer": {"max_stepz": 3}})
    assert cli_main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key(s) in trainer: max_stepz (did you mean max_steps?)" in err and len(err.splitlines()) == 1
    # valid data (procedural clips): an empty data.sources is itself refused first (check_sources)
    good = write_config(tmp_path, "good", {"stage": "continuous", "data": {"kind": "procedural"}, "output_dir": str(tmp_path / "run")})
    assert cli_main(["train", "--config", str(good), "data.batchsize=2"]) == 2
    assert "unknown config key(s) in data: batchsize (did you mean batch_size?)" in capsys.readouterr().err
    assert cli_main(["train", "--config", str(good), "model.config.dimm=8"]) == 2
    assert "model config: dimm (did you mean dim?)" in capsys.readouterr().err
    assert cli_main(["train", "--config", str(good), "data.sources=videos/"]) == 2
    assert "config key data.sources must be a list, got 'videos/' (one item: [videos/])" in capsys.readouterr().err
    assert cli_main(["train", "--config", str(good), "--resume", str(tmp_path)]) == 2
    assert f"--resume {tmp_path} is a directory: give a training checkpoint (.ckpt)" in capsys.readouterr().err
    assert cli_main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert cli_main(["train", "--config", str(path), "trainer.max_steps=abc"]) == 2
    capsys.readouterr()
    no_stage = write_config(tmp_path, "no_stage", {"schedule": {"kind": "continuous"}, "data": {"kind": "procedural"},
                                                   "output_dir": str(tmp_path / "run")})
    assert cli_main(["train", "--config", str(no_stage)]) == 2
    assert "schedule.kind continuous never trains the tokens, but stage is discrete" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    # no trainer.strategy: two devices make Lightning's "auto" a DDP run, which must take the parameters a step
    # leaves without gradients (it failed at the second step with DDP's unused-parameters error)
    config = tiny_config(out, "discrete", trainer={"max_steps": 3, "devices": 2, "accelerator": "cpu",
                                                    "progress_bar": False, "checkpoint_every_n_steps": 3})
    path = write_config(tmp_path, "ddp", config)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "onevae.cli.main", "train", "--config", str(path)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3
    assert (out / "export" / "model.safetensors").is_file()
    assert result.stderr.count("[onevae] exported the trained model") == 1  # said by the first process only


def _processes_running(needle: str) -> list[int]:
    """The pids of processes whose command line names ``needle`` (Linux /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:  # gone meanwhile
            pass
    return pids


@pytest.mark.slow
def test_sigterm_to_the_first_ddp_process_stops_every_process_and_resume_continues(tmp_path):
    """`kill PID` of the first process of a two-process DDP run: every process stops after the same step (the
    other one blocked in the next step's all-reduce for ever, or crashed with a traceback when the first one
    left), the command exits 75 within seconds with one line, and --resume auto trains on to max_steps."""
    import signal
    import time

    out = tmp_path / "ddp"
    config = tiny_config(out, trainer={"max_steps": 6, "devices": 2, "accelerator": "cpu", "progress_bar": False,
                                       "checkpoint_every_n_steps": 2})
    path = write_config(tmp_path, "ddp_stop", config)
    command = [sys.executable, "-m", "onevae.cli.main", "train", "--config", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step=0000002.ckpt").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)  # to the first process only
    sent = time.time()
    try:
        _, stderr = first.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in _processes_running(str(path)):
            os.kill(pid, signal.SIGKILL)
        pytest.fail("the DDP run did not stop within 60 s of SIGTERM")
    assert first.returncode == 75 and time.time() - sent < 30, stderr[-3000:]
    assert "Traceback" not in stderr and "[rank1]" not in stderr, stderr[-3000:]
    assert stderr.count("stopped by SIGTERM after step") == 1  # said by the first process only
    assert _processes_running(str(path)) == []  # the second process has exited too
    stopped = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= stopped < 6 and not (out / "export").exists()
    resumed = subprocess.run([*command, "--resume", "auto"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {out / 'checkpoints' / 'last.ckpt'} (step {stopped})" in resumed.stderr
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    assert (out / "export" / "model.safetensors").is_file()
    assert len(losses(out, "train/loss/total")) == 6  # every step logged once


def test_several_devices_train_with_ddp_that_allows_unused_parameters(tmp_path):
    from lightning.pytorch.strategies import DDPStrategy

    from onevae.train.config import load_train_config
    from onevae.train.runner import _strategy

    path = write_config(tmp_path, "c", tiny_config(tmp_path / "run"))
    for overrides in (["trainer.devices=2"], ["trainer.devices=2", "trainer.strategy=ddp"], ["trainer.devices='0,1'"],
                      ["trainer.num_nodes=2"]):
        strategy = _strategy(load_train_config(path, overrides + ["trainer.accelerator=cpu"]))
        assert isinstance(strategy, DDPStrategy) and strategy._ddp_kwargs["find_unused_parameters"], overrides
    for overrides in ([], ["trainer.devices=1"], ["trainer.devices='1,'"], ["trainer.devices=-1", "trainer.accelerator=cpu"]):
        assert _strategy(load_train_config(path, overrides)) == "auto", overrides


def test_resume_with_a_changed_config_says_so_and_trains_with_the_new_values(tmp_path, capsys):
    out = tmp_path / "run"
    path = write_config(tmp_path, "c", tiny_config(out, "discrete", trainer={"max_steps": 4, "checkpoint_every_n_steps": 4}))
    assert cli_main(["train", "--config", str(path), "--resume", "auto"]) == 0
    assert f"[onevae] --resume auto: no checkpoint in {out / 'checkpoints'} yet; starting a new run" in capsys.readouterr().err
    # init_from is not read again on resume (the weights come from the checkpoint): a file gone since is fine
    assert cli_main(["train", "--config", str(path), "--resume", "auto", "optim.lr=5e-4", "trainer.max_steps=6",
                     "model.init_from=gone/export"]) == 0
    err = capsys.readouterr().err
    changes = [line for line in err.splitlines() if "changed config" in line]
    assert changes == ["[onevae] resuming with a changed config (from the checkpoint's step on): optim.lr 0.002 -> 0.0005, "
                       "trainer.max_steps 4 -> 6"]
    assert "load report" not in err and not (out / "init_report.json").exists()
    rates = losses(out, "train/lr")
    assert rates[:4] == pytest.approx([2e-3] * 4) and rates[4:] == pytest.approx([5e-4] * 2)  # the new rate, not the restored one
    assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"] == 5e-4
    for override, says in (("ema.enabled=false", "ema.enabled False (the checkpoint has EMA weights)"),
                           ("loss.g_loss_weight=0", "loss.g_loss_weight 0 (the checkpoint has a discriminator"),
                           ("loss.discriminator.num_layers=3", "another discriminator (loss.discriminator.num_layers)"),
                           ("trainer.freeze=[model.encoder]", "another trainer.freeze")):
        assert cli_main(["train", "--config", str(path), "--resume", "auto", "trainer.max_steps=8", override]) == 2
        err = capsys.readouterr().err
        assert f"cannot be resumed with {says}" in err and len(err.splitlines()) == 1, err
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_init_from_default_is_the_shipped_model(tmp_path):
    from onevae.model_dir import default_model_dir
    from onevae.train.initialise import init_source

    assert init_source("default") == init_source("onevae-small") == default_model_dir()
    assert init_source(str(tmp_path)) == tmp_path
    with pytest.raises(OneVAEError, match=r"model.init_from missing/export: no such file or directory \('default' names"):
        init_source("missing/export")
    with pytest.raises(OneVAEError, match="onevae-888 is a preset"):
        init_source("onevae-888")


def test_channels_last_and_compile_train_the_same_weights(tmp_path):
    """trainer.channels_last and trainer.compile (the GPU speed options) change the layout and the graph, not
    the training: same losses and weights as the plain run, same parameter names in checkpoint and export
    (the "eager" backend here: the CPU test machine has no time to run inductor)."""
    def run(name: str, **trainer) -> Path:
        out = tmp_path / name
        config = tiny_config(out, trainer={"max_steps": 4, "checkpoint_every_n_steps": 4, "progress_bar": False, **trainer})
        config["loss"] = {"disc_start": 100, "discriminator": {"base_channels": 8}}
        assert cli_main(["train", "--config", str(write_config(tmp_path, name, config))]) == 0
        return out

    plain, fast = run("plain"), run("fast", channels_last=True, compile="eager")
    reference = losses(plain, "train/loss/pixel_continuous")
    assert len(reference) == 4
    assert losses(fast, "train/loss/pixel_continuous") == pytest.approx(reference, rel=1e-4)
    a = torch.load(plain / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(fast / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert list(a) == list(b)  # no "_orig_mod." in the names: resume and init_from work across the options
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert sorted(load_file(fast / "export" / "model.safetensors")) == sorted(load_file(plain / "export" / "model.safetensors"))


@pytest.mark.parametrize("native", [False, True])
def test_bf16_training_on_a_cpu_that_emulates_it_warns_once(tmp_path, monkeypatch, capsys, native):
    from onevae import hardware

    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: native)
    config = tiny_config(tmp_path / "bf16", trainer={"max_steps": 1, "precision": "bf16-mixed"})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "b", config))]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[onevae] warning:")]
    assert warnings == ([] if native else [warnings[0]]) and all("trainer.precision=32-true" in w for w in warnings)


def test_precision_auto_trains_in_float32_on_a_cpu_that_emulates_bf16(tmp_path, monkeypatch, capsys):
    from onevae import hardware

    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: dtype not in (torch.bfloat16, torch.float16))
    config = tiny_config(tmp_path / "auto", trainer={"max_steps": 1, "precision": "auto", "accelerator": "cpu"})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "a", config))]) == 0
    err = capsys.readouterr().err
    assert "[onevae] trainer.precision=auto: 32-true (the CPU would emulate bfloat16" in err and "warning" not in err
    assert yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["trainer"]["precision"] == "auto"


def test_16_true_is_refused_and_16_mixed_on_a_cpu_says_it_runs_bf16(tmp_path, capsys):
    """16-true never trains (AdamW's float16 statistics underflow): refused before anything is written. Lightning
    runs 16-mixed as bf16-mixed on a CPU: said in one line, and the run is bf16-mixed."""
    config = tiny_config(tmp_path / "fp16", trainer={"max_steps": 1, "precision": "16-true"})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "f", config))]) == 2
    assert "error: trainer.precision 16-true does not train" in capsys.readouterr().err
    assert not (tmp_path / "fp16").exists()
    from onevae.train.config import load_train_config
    from onevae.train.runner import train

    built = load_train_config(write_config(tmp_path, "m32", tiny_config(tmp_path / "api", trainer={"max_steps": 1})))
    built.trainer.precision = "16-true"  # set in Python, after the file was read and checked: train() checks again
    with pytest.raises(OneVAEError, match="16-true does not train"):
        train(built)
    assert not (tmp_path / "api").exists()
    config = tiny_config(tmp_path / "mixed", trainer={"max_steps": 1, "precision": "16-mixed", "accelerator": "cpu"})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "m", config))]) == 0
    err = capsys.readouterr().err
    assert "[onevae] trainer.precision=16-mixed: bf16-mixed (no float16 autocast on a CPU)" in err
    assert "emulates float16" not in err  # the slow-CPU warning, if any, is about the bfloat16 that runs


@pytest.mark.slow
def test_gpu_lease_script_trains_in_pieces_and_leaves_a_returnable_export(tmp_path):
    """scripts/gpu_lease.sh (run on a lent GPU, here on the CPU): pieces stopped by SIGTERM resume, and what it
    leaves under $OUT comes back (files split below the size limit) and joins into the run's model."""
    config = tiny_config(tmp_path / "run", trainer={"max_steps": 100000, "checkpoint_every_n_steps": 1000})
    path = write_config(tmp_path, "lease", config)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PIECE": "15", "SPLIT_BYTES": "100000", "PYTHON": sys.executable}
    repo = Path(__file__).resolve().parents[1]
    # 100 s: a second piece starts only with >= 30 s left after the 30 s kept for the export, and the config check
    # (2-5 s) plus a 15 s piece and its checkpoint took 80 s to the edge on a loaded 2-core machine
    result = subprocess.run(["bash", "scripts/gpu_lease.sh", str(path), "100"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("== piece of") >= 2 and "Restored all states" in result.stdout + result.stderr
    parts = sorted(out.iterdir())   # all of it in a few parts: the device returns at most 8 files
    assert [p.name for p in parts] == [f"lease.tar.part{i:02d}" for i in range(len(parts))]
    assert len(parts) >= 2 and all(p.stat().st_size <= 100_000 for p in parts)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    from onevae.train.checkpointing import export_checkpoint

    export_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", tmp_path / "here", dtype=torch.float16)
    returned, here = (load_file(str(d / "model.safetensors")) for d in (tmp_path / "back" / "export", tmp_path / "here"))
    assert returned.keys() == here.keys() and all(torch.equal(returned[k], here[k]) for k in here)
    back = tmp_path / "back"
    assert (back / "metrics.csv").is_file() and (back / "config.yaml").is_file() and "== piece of" in (back / "lease.log").read_text()
    assert "WARNING" not in result.stdout


@pytest.mark.slow
def test_gpu_lease_goes_on_after_a_piece_stopped_before_training_began(tmp_path):
    """A piece too short for the trainer to start (killed by the TERM, exit 143, no checkpoint) does not end the
    lease: the next pieces run until the deadline."""
    config = tiny_config(tmp_path / "run", trainer={"max_steps": 100000, "checkpoint_every_n_steps": 1000})
    path = write_config(tmp_path, "short", config)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PIECE": "1", "PYTHON": sys.executable}
    repo = Path(__file__).resolve().parents[1]
    # 75 s: pieces start while >= 30 s are left beyond the 30 s kept for the export, so ~10 s of 1 s pieces even
    # after a slow (2-5 s) config check; 65 s left none to spare on a loaded 2-core machine
    result = subprocess.run(["bash", "scripts/gpu_lease.sh", str(path), "75"], cwd=repo, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("== piece of 1 s") >= 2 and "training failed" not in result.stdout
    assert "== out of time" in result.stdout


def test_validation_on_the_held_out_set(tmp_path, capsys):
    """val.sources: [heldout:...] validates on `onevae eval`'s clips at their native size, cut to val.num_frames
    (1 + 4k), skipping one whose file is missing with a note; the logged PSNR is the mean over those clips."""
    from onevae.eval.heldout import load, select
    from onevae.train.config import load_train_config
    from onevae.train.data import HeldOutClips, build_val_dataset, held_out_names

    assert held_out_names(["heldout"]) == [clip.name for clip in select()] and held_out_names(["a.mp4"]) is None
    with pytest.raises(OneVAEError, match="cannot be mixed"):
        held_out_names(["heldout:carphone", "a.mp4"])
    with pytest.raises(OneVAEError, match="no_such_clip"):
        held_out_names(["heldout:no_such_clip"])
    notes = []
    clips = HeldOutClips(["carphone", "cup"], str(tmp_path / "no_opencv"), 7, 4, log=notes.append)
    assert clips.names == ["carphone"] and len(clips) == 1 and "cup" in notes[0]
    carphone, _ = load(select(["carphone"])[0])
    assert torch.equal(clips[0], carphone[:, :5])  # (3, 5, 144, 176): 7 frames cut to 1 + 4
    with pytest.raises(OneVAEError, match="none of the held-out clips cup"):
        HeldOutClips(["cup"], str(tmp_path / "no_opencv"), 7, 4)

    out = tmp_path / "run"
    val = {"sources": ["heldout:carphone", "heldout:bikes_end"], "num_frames": 5, "every_n_steps": 2}
    path = write_config(tmp_path, "h", tiny_config(out, trainer={"max_steps": 2, "progress_bar": False}, val=val))
    dataset = build_val_dataset(load_train_config(path))
    assert [tuple(c.shape) for c in dataset] == [(3, 5, 144, 176), (3, 5, 256, 256)]
    assert cli_main(["train", "--config", str(path)]) == 0
    (row,) = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert row["step"] == 2 and 5 < row["val/continuous/psnr"] < 40
    clips = [row["val/continuous/psnr/carphone"], row["val/continuous/psnr/bikes_end"]]
    assert row["val/continuous/psnr"] == pytest.approx(sum(clips) / 2) and clips[0] != clips[1]
    bad = tiny_config(tmp_path / "bad", val={"sources": ["heldout", "clip.mp4"]})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "bad", bad))]) == 2
    assert "cannot be mixed" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_a_run_says_what_it_trains_and_where_its_weights_come_from(tmp_path):
    """A config without ``model:`` trains the default preset: the run's first line says so, with the size."""
    from onevae.train.checkpointing import ResumePoint
    from onevae.train.config import load_train_config
    from onevae.train.runner import model_line

    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run")}))
    config = load_train_config(bare)
    assert model_line(config, OneVAE(config.model_config()), None) == (
        "[onevae] model: onevae-small (11.68 M parameters, 4x8x8), randomly initialised")
    config = load_train_config(bare, ["model.config={dim: 8}", "model.init_from=some/export"])
    assert model_line(config, OneVAE(config.model_config()), None).endswith("with dim=8 (1.98 M parameters, 4x8x8), initialised from some/export")
    point = ResumePoint(path="run/checkpoints/last.ckpt", step=40)
    assert model_line(config, OneVAE(config.model_config()), point).endswith("resumed from run/checkpoints/last.ckpt (step 40)")


def test_stills_mixed_with_videos_in_batches_are_refused_before_the_first_step(tmp_path, capsys):
    from PIL import Image

    from media import make_clip, smooth_frames

    media = tmp_path / "my videos"
    media.mkdir()
    make_clip(media / "clip.mp4", smooth_frames(9, 32, 32))
    Image.fromarray(smooth_frames(1, 40, 40)[0]).save(media / "still.png")
    data = {"kind": "files", "sources": [str(media)], "num_frames": 5, "height": 32, "width": 32, "batch_size": 2}
    out = tmp_path / "run"
    path = write_config(tmp_path, "c", tiny_config(out, data=data, trainer={"max_steps": 1}))
    assert cli_main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("onevae train: error: data.sources holds 1 still image(s) and 1 video(s)")
    assert "data.simulate_motion: true" in err[-1] and not out.exists()
    assert cli_main(["train", "--config", str(path), "data.simulate_motion=true"]) == 0
    assert "[onevae] validation on synthetic clips (val.sources is empty)" in capsys.readouterr().err


def test_a_folder_without_usable_video_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.mp4").write_bytes(b"\0" * 100)
    for folder, says in (("empty", "(no video or image file found)"), ("broken", "(1 file(s), all skipped)")):
        data = {"kind": "files", "sources": [str(tmp_path / folder)], "num_frames": 5, "height": 32, "width": 32}
        path = write_config(tmp_path, folder, tiny_config(tmp_path / "run", data=data))
        assert cli_main(["train", "--config", str(path)]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"onevae train: error: no usable video or image in {tmp_path / folder} {says}")
    val = {"sources": [str(tmp_path / "empty")], "every_n_steps": 1}
    path = write_config(tmp_path, "val", tiny_config(tmp_path / "run", val=val, trainer={"max_steps": 1}))
    assert cli_main(["train", "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("onevae train: error: val.sources: no usable video")


def _refused_before_the_model(capsys, path: Path, *overrides: str) -> str:
    """Run ``onevae train``: exit 2, one error line (returned), printed before the model was built."""
    assert cli_main(["train", "--config", str(path), *overrides]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "[onevae] model:" not in err, err  # the model line comes after the model is built
    (line,) = err.strip().splitlines()
    return line


@pytest.mark.parametrize("missing", ["folder", "media_file", "val_source"])
def test_a_missing_data_source_is_refused_before_the_model_is_built(tmp_path, capsys, missing):
    """A missing folder, a missing media file next to a real one (it was skipped with a warning and the run trained
    on the rest), a missing validation clip: one line naming the key and every missing path, nothing created."""
    from media import make_clip, smooth_frames

    clip = make_clip(tmp_path / "clip.mp4", smooth_frames(9, 32, 32))
    data = {"kind": "files", "sources": [str(clip)], "num_frames": 5, "height": 32, "width": 32, "batch_size": 1}
    val = {"every_n_steps": 1000}
    if missing == "folder":
        data["sources"] = [str(tmp_path / "no_such_folder"), str(tmp_path / "nor_this")]
        said = f"(data.sources: {tmp_path / 'no_such_folder'}, {tmp_path / 'nor_this'})"
    elif missing == "media_file":
        data["sources"] = [str(clip), str(tmp_path / "gone.mp4")]
        said = f"(data.sources: {tmp_path / 'gone.mp4'})"
    else:
        val["sources"] = [str(clip), "clips/held_out.mp4"]
        said = f"(val.sources: clips/held_out.mp4) (relative paths are read from the current directory, {Path.cwd()})"
    out = tmp_path / "run"
    path = write_config(tmp_path, "c", tiny_config(out, data=data, val=val, trainer={"max_steps": 1}))
    assert _refused_before_the_model(capsys, path) == f"onevae train: error: data source(s) not found {said}"
    assert not out.exists()


def test_an_empty_data_sources_list_is_refused_before_the_model_is_built(tmp_path, capsys):
    """data.sources=[] for data that reads files was refused only after the model was built (by build_dataset)."""
    out = tmp_path / "run"
    path = write_config(tmp_path, "c", tiny_config(out, trainer={"max_steps": 1}))
    for kind in ("files", "webdataset"):
        line = _refused_before_the_model(capsys, path, f"data.kind={kind}", "data.sources=[]")
        assert line == f"onevae train: error: data kind '{kind}' needs at least one entry in data.sources"
    assert not out.exists()


def test_sources_that_are_not_paths_pass_the_check_and_an_empty_folder_is_refused_as_before(tmp_path, capsys):
    """sample:NAME, heldout[:NAME], procedural data and shard ranges are not file names; an unknown sample or
    held-out name is refused as early, by key; an existing folder without videos fails as it did (at loading)."""
    from onevae.train.config import load_train_config
    from onevae.train.data import check_sources

    path = write_config(tmp_path, "c", tiny_config(tmp_path / "run", trainer={"max_steps": 1}))
    for overrides in (["data.kind=files", "data.sources=[sample:bikes]", "val.sources=[heldout:carphone, heldout:cup]"],
                      ["data.sources=[nothing/here]", "val.sources=[heldout]"],  # procedural data reads no source
                      ["data.kind=files", f"data.sources=[{tmp_path}]"]):
        check_sources(load_train_config(path, overrides))
    (tmp_path / "shards").mkdir()
    for i in range(2):
        (tmp_path / "shards" / f"s-{i:02d}.tar").write_bytes(b"")
    shards = ["data.kind=webdataset", f"data.sources=['{tmp_path}/shards/s-{{00..02}}.tar', '{tmp_path}/shards/*.tar']"]
    assert _refused_before_the_model(capsys, path, *shards).endswith(f"(data.sources: {tmp_path}/shards/s-02.tar)")
    assert _refused_before_the_model(capsys, path, "data.kind=files", "data.sources=[sample:nope]").startswith(
        "onevae train: error: data.sources: unknown sample clip 'nope'")
    assert "no_such_clip" in _refused_before_the_model(capsys, path, "val.sources=[heldout:no_such_clip]")
    (tmp_path / "empty").mkdir()
    assert cli_main(["train", "--config", str(path), "data.kind=files", f"data.sources=[{tmp_path / 'empty'}]"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"onevae train: error: no usable video or image in {tmp_path / 'empty'} (no video or image file found)")


def test_a_preempted_ddp_process_other_than_the_first_exits_75_silently(monkeypatch, capsys):
    import signal

    from onevae.cli import commands
    from onevae.errors import Preempted

    for quiet, said in ((True, ""), (False, "onevae train: stopped by SIGTERM after step 3\n")):
        def stopped(args, quiet=quiet):
            raise Preempted(signal.SIGTERM, "stopped by SIGTERM after step 3", quiet=quiet)

        monkeypatch.setattr(commands, "run_train", stopped)
        assert cli_main(["train", "--config", "x.yaml"]) == 75
        assert capsys.readouterr().err == said


def test_validation_records_follow_resume_and_overwrite(tmp_path):
    def rows(out: Path) -> list[int]:
        return [json.loads(line)["step"] for line in (out / "validation.jsonl").read_text().splitlines()]

    out = tmp_path / "run"
    config = tiny_config(out, val={"every_n_steps": 2, "save_media": True}, trainer={"max_steps": 4, "checkpoint_every_n_steps": 2})
    path = write_config(tmp_path, "c", config)
    assert cli_main(["train", "--config", str(path)]) == 0
    assert rows(out) == [2, 4] and sorted(p.name for p in (out / "media").iterdir()) == ["step0000002", "step0000004"]
    for name in ("last.ckpt", "step=0000004.ckpt"):  # back to step 2: steps 3-4 are trained and validated again
        (out / "checkpoints" / name).unlink()
    assert cli_main(["train", "--config", str(path), "--resume", "auto"]) == 0
    assert rows(out) == [2, 4]
    assert cli_main(["train", "--config", str(path), "--overwrite", "trainer.max_steps=2"]) == 0
    assert rows(out) == [2] and [p.name for p in (out / "media").iterdir()] == ["step0000002"]
