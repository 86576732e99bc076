"""diffusers interop: Wan2.1 weights in AutoencoderKLWan's layout read (and written) by us, checked against
diffusers' own AutoencoderKLWan on the same weights; the adapters that give a OneVAE diffusers' interfaces;
bad diffusers folders refused in one line with exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

diffusers = pytest.importorskip("diffusers")
from diffusers import AutoencoderKLWan  # noqa: E402

from onevae import CheckpointError, InputError, OneVAE, preset  # noqa: E402
from onevae.checkpoints.detect import detect_format  # noqa: E402
from onevae.checkpoints.diffusers import (  # noqa: E402
    config_from_diffusers,
    find_diffusers_folder,
    load_diffusers,
    onevae_key_map,
    save_diffusers,
)
from onevae.cli.main import main as cli_main  # noqa: E402
from onevae.compat.diffusers import DiffusersTokenizer, DiffusersVAE  # noqa: E402

from conftest import random_video, tiny_model  # noqa: E402

# fp32 on CPU: the two implementations differ only in the order of float operations.
ATOL = 1e-4
TINY_WAN = dict(base_dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])


def _random_diffusers_wan(seed: int = 0, **changes) -> AutoencoderKLWan:
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**{**TINY_WAN, **changes}).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("proj.weight"):  # zero-initialised attention outputs would hide a wrong mapping
                p.normal_(0, 0.05)
            elif name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return vae


@pytest.fixture(scope="module")
def diffusers_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("diffusers") / "vae"
    _random_diffusers_wan().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(diffusers_dir):
    return AutoencoderKLWan.from_pretrained(diffusers_dir).eval()


def cli(capsys, *args: str) -> tuple[int, str]:
    code = cli_main(list(args))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, message: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert ": error: " in lines[0] and message in lines[0], lines[0]


# ------------------------------------------------------------------------------------------ reading diffusers
@torch.no_grad()
def test_diffusers_folder_gives_diffusers_numbers(diffusers_dir, reference):
    model, report = load_diffusers(diffusers_dir)
    assert report.complete and not report.dropped and len(report.copied) == len(reference.state_dict())
    assert model.config.name == "wan2.1-custom" and model.config.dim == 16 and not model.config.discrete
    assert model.config.latents_mean == preset("wan2.1").latents_mean  # diffusers' defaults are Wan2.1's
    video = random_video(9, 16, 24, seed=3)
    posterior = reference.encode(video).latent_dist
    ours = model.encode_latents(video)
    assert ours.rest.shape == posterior.mean.shape == (1, 16, 3, 2, 3)
    torch.testing.assert_close(ours.rest, posterior.mean, atol=ATOL, rtol=0)
    _, logvar = model.encode_moments(video)
    torch.testing.assert_close(logvar.rest, posterior.logvar, atol=ATOL, rtol=0)
    torch.testing.assert_close(model.encode_latents(video, mode="stream").rest, posterior.mean, atol=ATOL, rtol=0)
    expected = reference.decode(posterior.mean).sample  # diffusers clamps to [-1, 1]
    assert expected.std() > 0.05  # a non-trivial output, so that the comparison means something
    torch.testing.assert_close(model.decode_latents(ours).clamp(-1, 1), expected, atol=ATOL, rtol=0)


def test_full_size_config_maps_onto_the_wan21_preset_and_every_diffusers_tensor():
    with torch.device("meta"):
        full = AutoencoderKLWan()  # the released Wan2.1 VAE's architecture (diffusers' defaults)
    config, notes = config_from_diffusers({**dict(full.config), "_class_name": "AutoencoderKLWan"}, "config.json")  # as save_pretrained writes it
    assert config.to_dict() == preset("wan2.1").to_dict() and notes == []
    mapping = onevae_key_map(config)
    theirs = full.state_dict()
    with torch.device("meta"):
        ours = OneVAE(config).state_dict()
    assert sorted(mapping.values()) == sorted(theirs) and sorted(mapping) == sorted(ours)
    assert all(ours[k].shape == theirs[v].shape for k, v in mapping.items())
    assert mapping["model.decoder.upsamples.3.resample.1.weight"] == "decoder.up_blocks.0.upsamplers.0.resample.1.weight"
    assert mapping["model.decoder.upsamples.4.shortcut.weight"] == "decoder.up_blocks.1.resnets.0.conv_shortcut.weight"
    assert mapping["model.conv1.weight"] == "quant_conv.weight"


def test_other_block_counts_map_too():
    """The renaming is derived from the architecture: one residual block per stage, five stages, 8x time."""
    with torch.device("meta"):
        vae = AutoencoderKLWan(base_dim=8, num_res_blocks=1, dim_mult=[1, 2, 2, 4, 4], temperal_downsample=[True, True, True, False],
                               scale_factor_temporal=8, scale_factor_spatial=16)
    config, _ = config_from_diffusers({**dict(vae.config), "_class_name": "AutoencoderKLWan"}, "config.json")
    with torch.device("meta"):
        ours = OneVAE(config).state_dict()
    mapping = onevae_key_map(config)
    assert sorted(mapping.values()) == sorted(vae.state_dict())
    assert all(ours[k].shape == vae.state_dict()[v].shape for k, v in mapping.items())


@torch.no_grad()
def test_our_model_written_in_diffusers_layout_gives_the_same_numbers_in_diffusers(tmp_path):
    model = tiny_model("wan", seed=4)
    save_diffusers(model, tmp_path / "out")
    theirs = AutoencoderKLWan.from_pretrained(tmp_path / "out").eval()
    assert theirs.config.latents_mean == [0.0] * 16 and theirs.config.latents_std == [1.0] * 16  # no statistics: identity
    video = random_video(5, 16, 16, seed=5)
    posterior = theirs.encode(video).latent_dist
    torch.testing.assert_close(posterior.mean, model.encode_latents(video).rest, atol=ATOL, rtol=0)
    torch.testing.assert_close(theirs.decode(posterior.mean).sample, model.decode_latents([posterior.mean]).clamp(-1, 1), atol=ATOL, rtol=0)
    back, _ = load_diffusers(tmp_path / "out")
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    with pytest.raises(InputError, match="second, high-res|high-res latent"):
        save_diffusers(tiny_model("81616_fe"), tmp_path / "fe")


def test_pipeline_repository_and_hf_cache_layouts_are_found(diffusers_dir, tmp_path, monkeypatch):
    repo = tmp_path / "Wan2.1-T2V-1.3B-Diffusers"
    shutil.copytree(diffusers_dir, repo / "vae")
    (repo / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "vae": ["diffusers", "AutoencoderKLWan"]}))
    assert find_diffusers_folder(repo) == repo / "vae" and detect_format(repo) == "diffusers"
    cache = tmp_path / "hub" / "models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers"
    shutil.copytree(repo, cache / "snapshots" / "abc123")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert find_diffusers_folder("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") == cache / "snapshots" / "abc123" / "vae"
    assert find_diffusers_folder(cache) == cache / "snapshots" / "abc123" / "vae"
    assert detect_format(diffusers_dir / "diffusion_pytorch_model.safetensors") == "diffusers"


def test_convert_cli_reads_a_repository_and_writes_our_model(diffusers_dir, tmp_path, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(diffusers_dir, repo / "vae")
    code, err = cli(capsys, "convert", str(repo), "-o", str(tmp_path / "ours"))
    assert code == 0, err
    ours = OneVAE.from_pretrained(tmp_path / "ours")
    direct, _ = load_diffusers(diffusers_dir)
    assert ours.config == direct.config and all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), direct.state_dict().values()))
    code, err = cli(capsys, "convert", str(tmp_path / "ours"), "--to", "diffusers", "-o", str(tmp_path / "again"))
    assert code == 0, err
    assert json.loads((tmp_path / "again" / "config.json").read_text())["latents_std"] == preset("wan2.1").latents_std


def test_diffusers_folder_as_a_training_prior(diffusers_dir):
    from onevae.train.config import ModelSection
    from onevae.train.initialise import initialise_model

    target = tiny_model("888", z_dim=32)  # another temporal layout and latent size: a partial copy
    report = initialise_model(target, ModelSection(init_from=str(diffusers_dir)))
    source, _ = load_diffusers(diffusers_dir)
    assert "model.encoder.conv1.weight" in report.copied and "model.decoder.middle.1.to_qkv.weight" in report.copied
    assert {"model.conv1.weight", "model.decoder.conv1.weight"} <= {k for k, _, _ in report.mismatched}
    assert {"quant_conv.weight", "model.encoder.downsamples.2.time_conv.weight"} <= set(report.initialised)
    assert not report.dropped
    for key in report.copied:
        assert torch.equal(target.state_dict()[key], source.state_dict()[key])
    named = initialise_model(tiny_model("888", z_dim=32), ModelSection(init_from=str(diffusers_dir), init_format="diffusers"))
    assert named.copied == report.copied


# ------------------------------------------------------------------------------------------ bad diffusers input
def _folder_like(diffusers_dir: Path, path: Path, **config_changes) -> Path:
    shutil.copytree(diffusers_dir, path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **config_changes}))
    return path


def test_bad_diffusers_folders_are_one_line_errors(diffusers_dir, tmp_path, capsys):
    out = str(tmp_path / "out")
    other_class = _folder_like(diffusers_dir, tmp_path / "kl", _class_name="AutoencoderKL")
    assert_one_line_error(*cli(capsys, "convert", str(other_class), "-o", out), "a diffusers AutoencoderKL model, not AutoencoderKLWan")
    no_weights = _folder_like(diffusers_dir, tmp_path / "noweights")
    (no_weights / "diffusion_pytorch_model.safetensors").unlink()
    assert_one_line_error(*cli(capsys, "convert", str(no_weights), "-o", out), "the weights are missing")
    wrong_size = _folder_like(diffusers_dir, tmp_path / "wrongsize", base_dim=24)
    assert_one_line_error(*cli(capsys, "convert", str(wrong_size), "-o", out), "tensors of another shape")
    state = load_file(str(diffusers_dir / "diffusion_pytorch_model.safetensors"))
    name = "decoder.mid_block.attentions.0.proj.bias"
    for case, tensors, message in (
        ("missing", {k: v for k, v in state.items() if k != name}, "1 missing, 0 unknown (first missing: model.decoder.middle.1.proj.bias)"),
        ("extra", {**state, "encoder.extra.weight": torch.zeros(3)}, "0 missing, 1 unknown (first unknown: diffusers:encoder.extra.weight)"),
        ("shape", {**state, name: torch.zeros(2, 2)}, "1 tensors of another shape, 0 missing, 0 unknown (first mismatch: model.decoder.middle.1.proj.bias file[2, 2]"),
        ("nan", {**state, name: torch.full_like(state[name], float("nan"))}, "weight model.decoder.middle.1.proj.bias holds NaN or inf; the model is broken"),
    ):
        folder = _folder_like(diffusers_dir, tmp_path / case)
        save_file(tensors, str(folder / "diffusion_pytorch_model.safetensors"))
        assert_one_line_error(*cli(capsys, "convert", str(folder), "-o", out), message)
    wan22 = _folder_like(diffusers_dir, tmp_path / "wan22", is_residual=True, patch_size=2)
    assert_one_line_error(*cli(capsys, "convert", str(wan22), "-o", out), "the Wan2.2 VAE")
    not_diffusers = tmp_path / "plain"
    not_diffusers.mkdir()
    assert_one_line_error(*cli(capsys, "convert", str(not_diffusers), "--format", "diffusers", "-o", out), "not a diffusers model folder")
    bare = tmp_path / "bare" / "diffusion_pytorch_model.safetensors"
    bare.parent.mkdir()
    shutil.copy(diffusers_dir / "diffusion_pytorch_model.safetensors", bare)
    assert_one_line_error(*cli(capsys, "convert", str(bare), "-o", out), "without its config.json")
    fe_model = tmp_path / "fe"
    tiny_model("81616_fe").save_pretrained(fe_model)
    assert_one_line_error(*cli(capsys, "convert", str(fe_model), "--to", "diffusers", "-o", out), "cannot be written as a diffusers AutoencoderKLWan")
    assert not Path(out).exists()
    with pytest.raises(CheckpointError, match="AutoencoderKL model"):  # the API raises what the CLI prints
        load_diffusers(other_class)


# ------------------------------------------------------------------------------------------ adapters
@torch.no_grad()
def test_adapter_matches_autoencoderklwan_on_the_same_weights(diffusers_dir, reference):
    vae = DiffusersVAE(load_diffusers(diffusers_dir)[0])
    video = random_video(5, 16, 24, seed=6, batch=2)
    ours, theirs = vae.encode(video).latent_dist, reference.encode(video).latent_dist
    torch.testing.assert_close(ours.mean, theirs.mean, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.std, theirs.std, atol=ATOL, rtol=0)
    torch.testing.assert_close(vae.encode(video).latent_dist.mode(), theirs.mode(), atol=ATOL, rtol=0)  # pipelines' "argmax"
    a = ours.sample(generator=torch.Generator().manual_seed(1))
    b = theirs.sample(generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    torch.testing.assert_close(vae.decode(a).sample, reference.decode(a).sample, atol=ATOL, rtol=0)
    assert vae.config.z_dim == 16 and vae.config.scale_factor_temporal == 4 and vae.config.scale_factor_spatial == 8
    assert vae.config.latents_mean == reference.config.latents_mean and vae.config.latents_std == reference.config.latents_std
    vae.enable_slicing()
    vae.enable_tiling(tile_sample_min_height=64, tile_sample_min_width=96, tile_sample_stride_height=48)
    assert (vae.model.tiling.tile, vae.model.tiling.overlap) == (64, 16)
    vae.enable_tiling()  # docs/interop.md: our defaults, not AutoencoderKLWan's 256/192 ...
    assert (vae.model.tiling.tile, vae.model.tiling.overlap) == (384, 96)
    vae.enable_tiling(tile_sample_min_height=256, tile_sample_stride_height=192)  # ... which map to 256/64
    assert (vae.model.tiling.tile, vae.model.tiling.overlap) == (256, 64)
    vae.enable_tiling(tile_sample_min_height=64, tile_sample_min_width=96, tile_sample_stride_height=48)
    torch.testing.assert_close(vae.encode(video).latent_dist.mean, ours.mean, atol=1e-5, rtol=0)  # smaller than a tile
    wide = random_video(5, 16, 96, seed=10)
    with pytest.warns(UserWarning, match="posterior mean only"):
        tiled = vae.encode(wide).latent_dist
    assert torch.equal(tiled.sample(), tiled.mode()) and tiled.mode().shape == (1, 16, 2, 2, 12)
    torch.testing.assert_close(tiled.mode(), reference.encode(wide).latent_dist.mode(), atol=0.5, rtol=0)  # blended tiles, not exact
    vae.disable_tiling()


@torch.no_grad()
def test_adapter_loads_and_saves_as_a_diffusers_user_calls_it(diffusers_dir, reference, tmp_path):
    """``DiffusersVAE.from_pretrained`` on what a diffusers user has (a pipeline repository with ``subfolder``, its
    ``vae/``, ``torch_dtype``), ``save_pretrained`` read back bit for bit, and AutoencoderKLWan's attributes that
    Wan pipelines read (``temperal_downsample`` in WanVideoToVideoPipeline)."""
    pipeline = diffusers_dir.parent
    (pipeline / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "vae": ["diffusers", "AutoencoderKLWan"]}))
    video = random_video(5, 16, 16, seed=4)
    expected = reference.encode(video).latent_dist.mode()
    for vae in (DiffusersVAE.from_pretrained(pipeline, subfolder="vae"), DiffusersVAE.from_pretrained(diffusers_dir)):
        torch.testing.assert_close(vae.encode(video).latent_dist.mode(), expected, atol=ATOL, rtol=0)
    vae = DiffusersVAE.from_pretrained(diffusers_dir, torch_dtype=torch.float16)
    assert vae.dtype == torch.float16
    vae = DiffusersVAE.from_pretrained(diffusers_dir)
    assert not vae.training and not reference.training
    for name in ("z_dim", "temperal_downsample", "temperal_upsample", "spatial_compression_ratio"):
        assert getattr(vae, name) == getattr(reference, name), name
    vae.clear_cache()  # AutoencoderKLWan's, called by some scripts between clips
    vae.save_pretrained(tmp_path / "saved")
    again = DiffusersVAE.from_pretrained(tmp_path / "saved")
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), again.state_dict().values()))
    assert dict(again.config) == dict(vae.config)
    with pytest.raises(InputError, match="one torch.Tensor, got list"):
        vae.decode([expected])
    vae.enable_tiling(tile_sample_min_height=64)
    with pytest.raises(InputError, match="one torch.Tensor, got list"):
        vae.encode([video])
    with pytest.raises(InputError, match="5 dimensions"):
        vae.encode(video[:, :, 0])  # an image batch without its time axis, tiling on


def test_adapter_in_a_diffusers_training_step_and_video_processor():
    """As a diffusers training script uses a VAE: preprocess, encode, sample, normalise with the config's
    statistics; and back: denormalise, decode, postprocess."""
    from diffusers.video_processor import VideoProcessor

    model = OneVAE(tiny_model("wan", seed=7).config.replace(latents_mean=[0.5] * 16, latents_std=[2.0] * 16))
    model.load_state_dict(tiny_model("wan", seed=7).state_dict())
    vae = DiffusersVAE(model.eval())
    processor = VideoProcessor(vae_scale_factor=vae.config.scale_factor_spatial)
    frames = (random_video(5, 16, 16, seed=8)[0].permute(1, 0, 2, 3) + 1) / 2  # (T, 3, H, W) in [0, 1]
    pixels = processor.preprocess_video(frames.unsqueeze(0))  # (1, 3, T, H, W) in [-1, 1]
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    latents = vae.encode(pixels).latent_dist.sample(generator=torch.Generator().manual_seed(0))
    normalised = (latents - mean) / std
    torch.testing.assert_close(model.normalize_latents([latents]).rest, normalised)
    noise_pred = torch.nn.Parameter(torch.zeros_like(normalised))  # a stand-in for the diffusion model
    loss = torch.nn.functional.mse_loss(normalised.detach() + noise_pred, normalised.detach())
    loss.backward()
    with torch.no_grad():
        video = vae.decode(normalised * std + mean).sample
    out = processor.postprocess_video(video, output_type="pt")
    assert out.shape == (1, 5, 3, 16, 16) and 0 <= float(out.min()) and float(out.max()) <= 1
    torch.testing.assert_close(video, model.decode_latents([latents]).clamp(-1, 1), atol=1e-5, rtol=0)


@torch.no_grad()
def test_token_adapter_gives_our_tokens_vidtok_style():
    model = tiny_model("888")
    tokenizer = DiffusersTokenizer(model)
    video = random_video(9, 16, 16, seed=9)
    z, indices = tokenizer.encode(video)
    assert torch.equal(indices, model.encode_tokens(video).rest) and indices.shape == (1, 2, 2, 2, 2)
    expected = model.decode_tokens([indices])
    torch.testing.assert_close(tokenizer.decode_from_indices(indices), expected)
    torch.testing.assert_close(tokenizer.decode(indices, decode_from_indices=True), expected)
    torch.testing.assert_close(tokenizer.decode(z), expected)
    assert tokenizer.config.vocab_size == 64000 and tokenizer.config.num_codebooks == 2
    with pytest.raises(InputError):
        tokenizer.decode_from_indices(indices + 70000)


def test_adapters_refuse_first_frame_highres_models_and_continuous_tokenizers():
    with pytest.raises(InputError, match="second, high-res latent grid"):
        DiffusersVAE(tiny_model("81616_fe"))
    with pytest.raises(InputError, match="continuous-only"):
        DiffusersTokenizer(tiny_model("wan"))


# ------------------------------------------------------------------------------------------ the documentation
@pytest.mark.slow
def test_docs_interop_examples_run(tmp_path):
    """Every python and bash block of docs/interop.md, in order, in one fresh directory (``onevae`` and
    ``python`` are this interpreter)."""
    import re
    import subprocess
    import sys

    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    blocks = re.findall(r"```(python|bash)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 7
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "2"}
    for language, code in blocks:
        if language == "python":
            command = [sys.executable, "-c", code]
        else:
            code = re.sub(r"^onevae ", f"{sys.executable} -m onevae.cli.main ", code, flags=re.M)
            command = ["bash", "-euo", "pipefail", "-c", code.replace("$(python ", f"$({sys.executable} ")]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, f"{language} block failed:\n{code}\n{result.stderr[-3000:]}"
    assert json.loads((tmp_path / "models" / "my-model" / "config.json").read_text())["latents_std"]
