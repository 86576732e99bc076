"""Latent conventions: Wan2.1's per-channel statistics in the wan2.1 preset, normalised latents (API, encode
--normalize-latents, decode undoing it), statistics measured on data (onevae stats) and shown by info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from onevae import InputError, Latents, OneVAE, OneVAEConfig, preset
from onevae.cli.main import main as cli_main
from onevae.io.tokens import load_token_file
from onevae.latent_stats import LatentStatsAccumulator, measure_latent_stats, with_stats
from onevae.model_dir import model_fingerprint

from conftest import random_video, tiny_config, tiny_model
from media import make_clip, smooth_frames


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_wan21_preset_carries_wans_constants_and_other_configs_are_unchanged():
    wan = preset("wan2.1")
    assert len(wan.latents_mean) == len(wan.latents_std) == 16
    assert wan.latents_mean[0] == -0.7571 and wan.latents_std[8] == 3.2687 and wan.latents_std[15] == 1.9160
    for name in ("onevae-888", "onevae-81616-fe", "onevae-161616-fe", "onevae-small"):
        assert "latents_mean" not in preset(name).to_dict() and not preset(name).has_latent_stats
    assert OneVAEConfig.from_dict(wan.to_dict()) == wan


def test_normalize_is_wans_formula_and_denormalize_inverts_it():
    model = OneVAE(tiny_config("wan").replace(latents_mean=preset("wan2.1").latents_mean, latents_std=preset("wan2.1").latents_std))
    z = torch.randn(1, 16, 3, 2, 2)
    normalised = model.normalize_latents([z]).rest
    # Wan's wrapper: (mu - mean) * (1 / std); diffusers' pipelines the same
    torch.testing.assert_close(normalised[0, 0], (z[0, 0] + 0.7571) / 2.8184)
    torch.testing.assert_close(normalised[0, 8], (z[0, 8] - 0.4134) / 3.2687)
    torch.testing.assert_close(model.denormalize_latents([normalised]).rest, z, atol=1e-6, rtol=0)
    assert model.normalize_latents([z.half()]).rest.dtype == torch.float16


def test_normalisation_covers_the_high_res_first_frame_and_needs_statistics():
    config = tiny_config("81616_fe")
    model = OneVAE(with_stats(config, [1.0] * 16, [2.0] * 16))
    first, rest = torch.randn(1, 16, 1, 4, 4), torch.randn(1, 16, 1, 2, 2)
    out = model.normalize_latents([first, rest])
    torch.testing.assert_close(out.first, (first - 1) / 2)
    torch.testing.assert_close(out.rest, (rest - 1) / 2)
    with pytest.raises(InputError, match="carries no latent statistics"):
        OneVAE(config).normalize_latents([first, rest])
    with pytest.raises(InputError, match="z_dim=16 values"):
        with_stats(config, [0.0] * 15, [1.0] * 15)
    with pytest.raises(InputError, match="positive"):
        with_stats(config, [0.0] * 16, [0.0] * 16)


def test_accumulator_gives_the_per_channel_mean_and_std_of_every_position():
    g = torch.Generator().manual_seed(0)
    shift = torch.tensor([100.0, -3.0, 0.0, 7.0]).view(1, 4, 1, 1, 1)  # a large mean must not cost precision
    grids = [torch.randn(2, 4, 3, 5, 5, generator=g) * 0.01 + shift, torch.randn(1, 4, 1, 10, 10, generator=g) + shift]
    acc = LatentStatsAccumulator()
    acc.update(Latents(grids[0]))
    acc.update(Latents(grids[1][:, :, :, :5, :5], first=grids[1]))
    every = torch.cat([g.transpose(0, 1).reshape(4, -1).double() for g in (grids[0], grids[1][:, :, :, :5, :5], grids[1])], dim=1)
    mean, std = acc.result()
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), every.mean(1), atol=1e-9, rtol=0)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), every.std(1, unbiased=False), atol=1e-9, rtol=1e-9)


def test_measured_statistics_normalise_the_latents_they_were_measured_on():
    model = tiny_model("wan", seed=2)
    videos = [random_video(5, 16, 16, seed=s) for s in range(3)]
    mean, std = measure_latent_stats(model, videos)
    measured = _with(model, mean, std)
    normalised = [measured.normalize_latents(model.encode_latents(v)).rest for v in videos]
    channels = torch.cat([n.transpose(0, 1).reshape(16, -1) for n in normalised], dim=1)
    torch.testing.assert_close(channels.mean(1), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(channels.std(1, unbiased=False), torch.ones(16), atol=1e-4, rtol=0)


def _with(model: OneVAE, mean, std) -> OneVAE:
    other = OneVAE(with_stats(model.config, mean, std))
    other.load_state_dict(model.state_dict())
    return other.eval()


def test_fingerprint_leaves_the_statistics_out():
    model = tiny_model("wan", seed=3)
    assert model_fingerprint(model) == model_fingerprint(_with(model, [0.0] * 16, [1.0] * 16))


# ------------------------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "smooth.mp4", smooth_frames(9, 32, 32), fps=12)


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    path = tmp_path / "tiny"
    tiny_model("wan", seed=5).save_pretrained(path)
    return path


def test_stats_command_measures_saves_and_info_shows(model_dir, clip, capsys):
    code, out, err = cli(capsys, "info", str(model_dir), "--json")
    assert code == 0 and "onevae stats" in json.loads(out)["latent statistics"]
    code, out, err = cli(capsys, "stats", str(clip), "--model", str(model_dir), "--save", "--json", "--quiet")
    assert code == 0, err
    measured = json.loads(out)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["latents_mean"] == measured["latents_mean"] and len(config["latents_std"]) == 16
    model = OneVAE.from_pretrained(model_dir)
    expected_mean, expected_std = measure_latent_stats(model, [_read(clip)], chunk_frames=8)
    torch.testing.assert_close(torch.tensor(measured["latents_mean"]), torch.tensor(expected_mean), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.tensor(measured["latents_std"]), torch.tensor(expected_std), atol=1e-4, rtol=0)
    code, out, err = cli(capsys, "info", str(model_dir), "--json")
    assert json.loads(out)["latents std (per channel)"] == [round(v, 4) for v in measured["latents_std"]]


def _read(clip: Path) -> torch.Tensor:
    from onevae.io.video import read_video

    return read_video(clip)[0].unsqueeze(0)  # (1, 3, T, H, W) in [-1, 1]


def test_encode_normalized_latents_round_trip(model_dir, clip, tmp_path, capsys):
    code, _, err = cli(capsys, "stats", str(clip), "--model", str(model_dir), "--save", "--quiet")
    assert code == 0, err
    raw, norm = tmp_path / "raw.latents.safetensors", tmp_path / "norm.latents.safetensors"
    for out, extra in ((raw, []), (norm, ["--normalize-latents"])):
        code, _, err = cli(capsys, "encode", str(clip), "-o", str(out), "--model", str(model_dir), "--continuous", "--latent-dtype", "float32", "--quiet", *extra)
        assert code == 0, err
    (raw_grid,), raw_meta = load_token_file(raw)
    (norm_grid,), meta = load_token_file(norm)
    assert raw_meta.latent_normalization is None and "latent_normalization" not in json.loads(raw_meta.to_json())
    model = OneVAE.from_pretrained(model_dir)
    assert meta.latent_normalization == {"mean": pytest.approx(model.config.latents_mean), "std": pytest.approx(model.config.latents_std)}
    torch.testing.assert_close(norm_grid, model.normalize_latents([raw_grid]).rest, atol=1e-5, rtol=0)
    channels = norm_grid.transpose(0, 1).reshape(16, -1)
    torch.testing.assert_close(channels.mean(1), torch.zeros(16), atol=1e-3, rtol=0)  # measured on this clip
    videos = []
    for source in (raw, norm):
        code, _, err = cli(capsys, "decode", str(source), "-o", str(source.with_suffix(".mp4")), "--model", str(model_dir), "--quiet")
        assert code == 0, err
        videos.append(_read(source.with_suffix(".mp4")))
    torch.testing.assert_close(videos[0], videos[1], atol=2 / 255, rtol=0)  # the same video, to codec rounding


def test_a_file_encoded_before_the_statistics_were_measured_still_decodes(model_dir, clip, tmp_path, capsys):
    """Statistics are left out of the fingerprint, so measuring them must not orphan the files already written."""
    encoded = tmp_path / "before.latents.safetensors"
    code, _, err = cli(capsys, "encode", str(clip), "-o", str(encoded), "--model", str(model_dir), "--continuous", "--quiet")
    assert code == 0, err
    code, _, err = cli(capsys, "stats", str(clip), "--model", str(model_dir), "--save", "--quiet")
    assert code == 0, err
    code, _, err = cli(capsys, "decode", str(encoded), "-o", str(tmp_path / "after.mp4"), "--model", str(model_dir), "--quiet")
    assert code == 0, err
    assert _read(tmp_path / "after.mp4").shape == (1, 3, 9, 32, 32)
    other = tmp_path / "other"
    tiny_model("wan", seed=6).save_pretrained(other)  # other weights: still refused
    code, _, err = cli(capsys, "decode", str(encoded), "-o", str(tmp_path / "other.mp4"), "--model", str(other), "--quiet")
    assert code == 2 and "was encoded by model" in err and not (tmp_path / "other.mp4").exists()


def test_normalize_latents_bad_uses_are_one_line_errors(model_dir, clip, tmp_path, capsys):
    out = str(tmp_path / "x.safetensors")
    code, _, err = cli(capsys, "encode", str(clip), "-o", out, "--model", str(model_dir), "--normalize-latents")
    assert code == 2 and "add --continuous" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "encode", str(clip), "-o", out, "--model", str(model_dir), "--continuous", "--normalize-latents", "--quiet")
    assert code == 2 and "carries no latent statistics" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "stats", str(clip), "--save", "--quiet")
    assert code == 2 and "--save writes into a model directory of yours" in err
    assert not Path(out).exists()


@pytest.mark.parametrize("norm, message", [
    ({"mean": [0.0] * 15, "std": [1.0] * 15}, "z_dim=16 values"),
    ({"mean": [0.0] * 16, "std": [0.0] * 16}, "positive"),
    ({"mean": [0.0] * 16}, "must hold 'mean' and 'std'"),
    ({"mean": [0.0] * 16, "std": "wide"}, "lists of numbers|invalid metadata"),
])
def test_a_tampered_normalisation_record_is_refused_on_read(tmp_path, norm, message):
    from safetensors.torch import save_file

    from onevae.io.tokens import save_token_file, token_meta_for

    model = tiny_model("wan")
    meta = token_meta_for(model, "latents", 12.0, "0" * 16, frames=5, latent_normalization={"mean": [0.0] * 16, "std": [1.0] * 16})
    good = tmp_path / "good.latents.safetensors"
    save_token_file(good, [torch.zeros(1, 16, 2, 2, 2)], meta)
    assert load_token_file(good)[1].latent_normalization["std"] == [1.0] * 16
    data = json.loads(meta.to_json())
    data["latent_normalization"] = norm
    bad = tmp_path / "bad.latents.safetensors"
    save_file({"latents.0": torch.zeros(1, 16, 2, 2, 2)}, str(bad), metadata={"onevae": json.dumps(data)})
    with pytest.raises(InputError, match=message):
        load_token_file(bad)
