"""Loading weights: official naming, Wan2.1 as a prior, our model directory, and the safety rules."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from onevae import CheckpointError, OneVAE
from onevae.checkpoints import load_official, load_wan_prior, read_weights_file
from onevae.model_dir import model_fingerprint

from conftest import random_video, tiny_config, tiny_model


def _official_state(model: OneVAE) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_wan_naming_prior_gives_the_right_report(tmp_path):
    """A Wan2.1-layout state dict (no model. prefix, z_dim 16) initialises a larger discrete model."""
    wan = tiny_model("wan", seed=1)
    wan_state = {k.removeprefix("model."): v for k, v in wan.state_dict().items()}
    path = tmp_path / "Wan2.1_VAE.pth"
    torch.save(wan_state, path)
    target = OneVAE(tiny_config("888", z_dim=32))
    report = load_wan_prior(target, path)
    # 8x8x8 makes the first encoder resample and the last decoder resample temporal: their time convs are new
    new_time_convs = {"model.encoder.downsamples.2.time_conv.weight", "model.decoder.upsamples.11.time_conv.weight"}
    assert new_time_convs <= set(report.initialised)
    # the z-dependent layers differ in shape and are not copied
    mismatched = {k for k, _, _ in report.mismatched}
    assert {"model.encoder.head.2.weight", "model.conv1.weight", "model.conv2.weight", "model.decoder.conv1.weight"} <= mismatched
    assert {"quant_conv.weight", "post_quant_conv.weight"} <= set(report.initialised)
    assert report.dropped == []
    copied = set(report.copied)
    assert "model.encoder.conv1.weight" in copied and "model.decoder.middle.1.to_qkv.weight" in copied
    for key in copied:
        assert torch.equal(target.state_dict()[key], wan.state_dict()[key])
    assert len(copied) + len(report.mismatched) + len(report.initialised) == len(target.state_dict())
    assert "copied" in report.summary() and "mismatched" in report.summary()


def test_other_variant_checkpoint_is_refused(tmp_path):
    path = tmp_path / "fe.safetensors"
    save_file(_official_state(tiny_model("81616_fe")), str(path))
    with pytest.raises(CheckpointError, match="another variant"):
        load_official(path, tiny_config("888"))
    with pytest.raises(CheckpointError, match="another variant"):
        load_official(path, tiny_config("161616_fe"))  # same keys, one more temporal conv


def test_ema_weights_can_be_taken_instead(tmp_path):
    model = tiny_model("888")
    state = _official_state(model)
    for key, value in list(state.items()):
        top, _, rest = key.partition(".")
        state[f"ema_{top}.{rest.replace('.', '')}"] = value + 0.5
    state["ema_model.decay"] = torch.tensor(0.9999)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state}, path)
    raw, report = load_official(path, tiny_config("888"))
    assert torch.equal(raw.quant_conv.weight, model.quant_conv.weight)
    assert any(k.startswith("ema_") for k in report.ignored)
    ema, report = load_official(path, tiny_config("888"), use_ema=True)
    torch.testing.assert_close(ema.quant_conv.weight, model.quant_conv.weight + 0.5)
    torch.testing.assert_close(ema.model.encoder.conv1.weight, model.model.encoder.conv1.weight + 0.5)
    with pytest.raises(CheckpointError, match="no EMA copy"):
        path2 = tmp_path / "no_ema.ckpt"
        torch.save({"state_dict": _official_state(model)}, path2)
        load_official(path2, tiny_config("888"), use_ema=True)


class NotAllowed:
    """A class that a safe load must refuse to construct."""

    def __reduce__(self):
        return (print, ("this would run code",))


def test_pickled_objects_need_explicit_trust(tmp_path):
    model = tiny_model("888")
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": _official_state(model), "hyper_parameters": {"x": NotAllowed()}}, path)
    with pytest.raises(CheckpointError, match=r"refuses \(it would call builtins\.print\).*--trust-checkpoint"):
        read_weights_file(path)
    with pytest.warns(UserWarning, match="full unpickling"):
        loaded, _ = load_official(path, tiny_config("888"), trust=True)
    assert torch.equal(loaded.quant_conv.weight, model.quant_conv.weight)


def test_lightning_hyperparameters_load_without_trust(tmp_path):
    import argparse
    import pathlib

    model = tiny_model("888")
    path = tmp_path / "lightning.ckpt"
    hparams = {"lr": 5e-5, "args": argparse.Namespace(batch=8), "dir": pathlib.Path("/data")}
    torch.save({"state_dict": _official_state(model), "hyper_parameters": hparams, "epoch": 3}, path)
    loaded, _ = load_official(path, tiny_config("888"))
    assert torch.equal(loaded.post_quant_conv.bias, model.post_quant_conv.bias)


@pytest.mark.parametrize("content,message", [(b"not a checkpoint", "not a readable"), (b"", "not a readable")])
def test_unreadable_files(tmp_path, content, message):
    for suffix in (".ckpt", ".safetensors"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            read_weights_file(path)
    with pytest.raises(CheckpointError, match="no such file"):
        read_weights_file(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="unknown weights format"):
        (tmp_path / "w.npz").write_bytes(b"x")
        read_weights_file(tmp_path / "w.npz")


def test_save_and_from_pretrained_round_trip(tmp_path):
    model = tiny_model("81616_fe")
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["first_frame_highres"] is True and config["fsq_levels"] == [8, 8, 8, 5, 5, 5]
    loaded = OneVAE.from_pretrained(tmp_path / "m")
    video = random_video(9, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model.encode_tokens(video).to_list(), loaded.encode_tokens(video).to_list()))
    assert model_fingerprint(model) == model_fingerprint(loaded)
    assert model_fingerprint(tiny_model("81616_fe", seed=5)) != model_fingerprint(loaded)


def test_weights_stored_in_float16_load_as_float32(tmp_path):
    from safetensors.torch import load_file

    model = tiny_model("888")
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    stored = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size("half") < 0.55 * size("full")
    loaded = OneVAE.from_pretrained(tmp_path / "half")
    assert loaded.quant_conv.weight.dtype == torch.float32
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.half().float()), key


def test_hugging_face_cache_layout(tmp_path, monkeypatch):
    model = tiny_model("888")
    repo = tmp_path / "hub" / "models--someone--onevae-tiny"
    model.save_pretrained(repo / "snapshots" / "abc123" / "vae")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = OneVAE.from_pretrained("someone/onevae-tiny", subfolder="vae")
    assert torch.equal(loaded.quant_conv.weight, model.quant_conv.weight)
    loaded = OneVAE.from_pretrained(repo, subfolder="vae")
    assert torch.equal(loaded.quant_conv.weight, model.quant_conv.weight)


def test_broken_model_directories(tmp_path):
    model = tiny_model("888")
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        OneVAE.from_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m2")
    (tmp_path / "m2" / "config.json").write_text(json.dumps(tiny_config("161616_fe").to_dict()))
    with pytest.raises(CheckpointError, match="does not fit"):
        OneVAE.from_pretrained(tmp_path / "m2")
    (tmp_path / "m2" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid JSON"):
        OneVAE.from_pretrained(tmp_path / "m2")
    with pytest.raises(CheckpointError, match="no such model directory"):
        OneVAE.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="onevae-888 is a preset .* without weights"):
        OneVAE.from_pretrained("onevae-888")


def test_from_pretrained_takes_a_file_of_a_model_directory_and_points_other_files_to_their_loader(tmp_path):
    """A model directory's own files stand for it; weights in another format (an official checkpoint, a diffusers
    folder) are named with the function that loads them, not reported as a 'missing model.safetensors'."""
    model = tiny_model("888")
    model.save_pretrained(tmp_path / "m")
    for name in ("model.safetensors", "config.json"):
        loaded = OneVAE.from_pretrained(tmp_path / "m" / name)
        assert loaded.source_dir == tmp_path / "m" and torch.equal(loaded.quant_conv.weight, model.quant_conv.weight)
    torch.save({"state_dict": _official_state(model)}, tmp_path / "official.ckpt")
    with pytest.raises(CheckpointError, match="a file, not a model directory.*load_official.*onevae convert"):
        OneVAE.from_pretrained(tmp_path / "official.ckpt")
    diffusers_folder = tmp_path / "pipeline" / "vae"
    diffusers_folder.mkdir(parents=True)
    (diffusers_folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan"}))
    (diffusers_folder / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (tmp_path / "pipeline" / "model_index.json").write_text("{}")
    for path, subfolder in ((diffusers_folder, None), (tmp_path / "pipeline", None), (tmp_path / "pipeline", "vae")):
        with pytest.raises(CheckpointError, match="a diffusers folder: load it with onevae.checkpoints.load_diffusers"):
            OneVAE.from_pretrained(path, subfolder=subfolder)


def test_a_config_that_leaves_architecture_keys_unset_says_which(tmp_path):
    """A hand-written config.json without ``dim`` (or ``z_dim``) builds the defaults' network: the error names
    the keys the file left unset, not only the mismatch they cause."""
    model = tiny_model("888")
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["dim"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not fit .*the file does not set dim, so the defaults were used: dim=96"):
        OneVAE.from_pretrained(tmp_path / "m")

    config = {**json.loads(json.dumps(model.config.to_dict())), "latents_mean": [0.0] * model.config.z_dim,
              "latents_std": [1.0] * model.config.z_dim}
    del config["z_dim"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"need z_dim=256 values each.*does not set z_dim, so the defaults were used: z_dim=256"):
        OneVAE.from_pretrained(tmp_path / "m")
