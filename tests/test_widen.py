"""Growing a trained model into a wider one (onevae.nn.widen): the wide model starts out computing what the
narrow one computed, its new channels train, and training's ``init_from`` grows a narrower model directory."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from onevae import OneVAE, OneVAEError
from onevae.cli.main import main as cli_main
from onevae.nn.widen import check_widening, widen_into

from conftest import random_video, tiny_config, tiny_model


def grown(variant: str, dim: int, noise: float = 1.0) -> tuple[OneVAE, OneVAE]:
    narrow = tiny_model(variant)
    wide = OneVAE(dataclasses.replace(narrow.config, dim=dim))
    widen_into(wide, narrow, noise=noise)
    return narrow, wide.eval()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / (a - b).square().mean()))


@pytest.mark.parametrize("variant", ["888", "81616_fe"])  # temporal up/down-sampling and attention; the high-res first frame
def test_the_grown_model_computes_what_the_narrow_one_did(variant):
    """Near-zero new channels reproduce the narrow model; full-size ones (the default) only through the norms."""
    video = random_video(9, 32, 32)
    narrow, exact = grown(variant, 24, noise=1e-2)
    _, default = grown(variant, 20)  # onevae-small's growth ratio; random tiny weights are far more sensitive than trained ones
    assert exact.num_parameters() > 2 * narrow.num_parameters()
    with torch.no_grad():
        for discrete in (False, True):
            a = narrow.reconstruct(video, discrete=discrete)
            assert (exact.reconstruct(video, discrete=discrete) - a).abs().max() < 1e-3
            assert psnr(default.reconstruct(video, discrete=discrete), a) > 25
        ta, tb = narrow.encode_tokens(video).to_list(), exact.encode_tokens(video).to_list()
        agree = torch.cat([(x == y).flatten() for x, y in zip(ta, tb)]).float().mean()
        assert agree > 0.99


def test_the_new_channels_get_gradients_like_the_old_ones():
    """New outputs carry full-size values and new inputs start at zero: the loss's gradient reaches the zero
    columns at the old columns' scale (near-zero new channels would get gradients below AdamW's epsilon)."""
    _, wide = grown("888", 24)
    wide.train()
    video = random_video(9, 32, 32)
    loss = (wide(video).recon - video).square().mean()
    loss.backward()
    conv = wide.model.decoder.middle[0].residual[2]  # (out, in, 3, 3, 3); channels 64.. of 96 are new
    old, new = conv.weight.grad[:, :64].abs().mean(), conv.weight.grad[:, 64:].abs().mean()
    assert conv.weight[:, 64:].abs().max() == 0 and new > 0.1 * old


def test_only_a_wider_model_of_the_same_architecture_can_be_grown():
    narrow = tiny_config("888")
    with pytest.raises(OneVAEError, match="wider one: dim 16 -> 16"):
        check_widening(narrow, narrow)
    with pytest.raises(OneVAEError, match="these differ too: z_dim"):
        check_widening(narrow, dataclasses.replace(narrow, dim=24, z_dim=8))


def test_training_init_from_a_narrower_model_dir_grows_it(tmp_path):
    narrow = tiny_model("888")
    narrow.save_pretrained(tmp_path / "narrow")
    model = {k: v for k, v in dataclasses.asdict(narrow.config).items() if k not in ("latents_mean", "latents_std")}
    config = {
        "stage": "joint", "seed": 0, "output_dir": str(tmp_path / "wide"),
        "model": {"preset": None, "config": {**model, "dim": 24}, "init_from": str(tmp_path / "narrow"), "widen_noise": 0.01},
        "schedule": {"kind": "joint", "joint_mode": "sum"},
        "optim": {"lr": 1.0e-9, "weight_decay": 0.0},
        "ema": {"enabled": False},
        "data": {"kind": "procedural", "num_frames": 9, "height": 32, "width": 32, "batch_size": 1, "num_workers": 0, "num_samples": 1},
        "val": {"num_clips": 1, "num_frames": 9, "height": 32, "width": 32, "every_n_steps": 1000},
        "trainer": {"max_steps": 1, "progress_bar": False},
    }
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli_main(["train", "--config", str(path)]) == 0
    report = json.loads((tmp_path / "wide" / "init_report.json").read_text())
    assert any("grown from dim 16 to 24" in note and "0.01x" in note for note in report["notes"]) and not report["mismatched"]
    wide = OneVAE.from_pretrained(tmp_path / "wide" / "export")
    assert wide.config.dim == 24
    video = random_video(9, 32, 32)
    with torch.no_grad():
        assert (wide.reconstruct(video) - narrow.reconstruct(video)).abs().max() < 1e-3


def load_config(name: str, *overrides: str):
    from pathlib import Path

    from onevae.train.config import load_train_config

    return load_train_config(Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml", list(overrides))


def test_stage_10_grows_stage_9_into_the_shipped_width(tmp_path):
    """configs/default_wide_gpu.yaml (stage 10) grows stage 9's onevae-small (dim 16) into dim 20, under 25 MB in
    float16, starting from the narrow model's output (near-zero new channels: the same reconstruction)."""
    from onevae.train.initialise import initialise_model

    torch.manual_seed(0)
    stage9 = OneVAE(load_config("default_small_gpu_anneal").model_config()).eval()
    assert stage9.config.dim == 16
    stage9.save_pretrained(tmp_path / "stage9")
    config = load_config("default_wide_gpu", f"model.init_from={tmp_path / 'stage9'}", "model.widen_noise=0.01")
    wide = OneVAE(config.model_config())
    report = initialise_model(wide, config.model)
    assert report.complete and wide.config.dim == 20 and any("grown from dim 16 to 20" in n for n in report.notes)
    assert 2 * wide.num_parameters() < 25e6  # float16 weights
    video = random_video(9, 64, 64)
    with torch.no_grad():
        assert psnr(wide.eval().reconstruct(video), stage9.reconstruct(video)) > 38


@pytest.mark.parametrize("name", ["default_wide_cpu", "default_wide_gpu"])
def test_the_wide_configs_continue_the_shipped_model_as_it_is(name):
    """From the shipped model (dim 20 since stage 10) the wide configs copy every weight: nothing is grown."""
    from onevae.model_dir import default_model_dir
    from onevae.train.initialise import initialise_model

    config = load_config(name, f"model.init_from={default_model_dir()}")
    wide = OneVAE(config.model_config())
    report = initialise_model(wide, config.model)
    assert report.complete and not any("grown" in n for n in report.notes)
    shipped = OneVAE.from_pretrained(None).state_dict()
    assert all(torch.equal(t, shipped[k]) for k, t in wide.state_dict().items())
