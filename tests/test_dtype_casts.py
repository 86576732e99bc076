"""Whole-module casts (``.to(dtype)``, ``.half()``, ``.type(...)``, Lightning's ``*-true`` precisions) keep the
token path and the EMA shadows at least float32."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from onevae.cli.main import main as cli_main
from onevae.train.checkpointing import export_checkpoint
from onevae.train.ema import EMA

from conftest import random_video, tiny_model
from test_train import tiny_config, write_config

CASTS = {
    "to(bfloat16)": (lambda m: m.to(torch.bfloat16), torch.bfloat16),
    "bfloat16()": (lambda m: m.bfloat16(), torch.bfloat16),
    "type(bfloat16)": (lambda m: m.type(torch.bfloat16), torch.bfloat16),
    "half()": (lambda m: m.half(), torch.float16),
}


def token_path_dtypes(model) -> set[torch.dtype]:
    modules = (model.quant_conv, model.quantizer, model.post_quant_conv)
    return {t.dtype for module in modules for t in [*module.parameters(), *module.buffers()]}


@pytest.mark.parametrize("cast", list(CASTS))
def test_a_whole_model_cast_keeps_the_token_path_float32(cast):
    apply, dtype = CASTS[cast]
    model = tiny_model()
    cast_model = apply(copy.deepcopy(model))
    assert cast_model.model.encoder.conv1.weight.dtype == dtype and cast_model.model.decoder.head[-1].weight.dtype == dtype
    assert token_path_dtypes(cast_model) == {torch.float32, torch.int64}  # FSQ's _levels / _basis stay int64
    # the same float32 latents give exactly the float32 model's tokens (192 positions x 2 tokens)
    latents = [torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        expected = model.latents_to_tokens(latents).to_list()[0]
        tokens = cast_model.latents_to_tokens(latents).to_list()[0]
    assert tokens.dtype == torch.int64 and torch.equal(tokens, expected)


@pytest.mark.filterwarnings("ignore::onevae.errors.SlowDtypeWarning")  # set_precision's, on a CPU that emulates bf16
@pytest.mark.parametrize("cast", ["to(bfloat16)", "half()"])
def test_a_whole_model_cast_encodes_as_set_precision_does(cast):
    apply, dtype = CASTS[cast]
    model = tiny_model()
    by_precision = copy.deepcopy(model)
    by_precision.set_precision(encode=dtype, decode=dtype)
    cast_model = apply(copy.deepcopy(model))
    video = random_video(9, 32, 32, seed=4)
    with torch.no_grad():
        tokens, expected = (m.encode_tokens(video).to_list()[0] for m in (cast_model, by_precision))
        recon, expected_recon = (m.decode_tokens([expected]) for m in (cast_model, by_precision))
    assert torch.equal(tokens, expected)
    assert recon.dtype == dtype and torch.equal(recon, expected_recon)
    assert {n: p.dtype for n, p in cast_model.named_parameters()} == {n: p.dtype for n, p in by_precision.named_parameters()}


def test_double_and_float_still_cast_everything():
    model = tiny_model()
    video = random_video(9, 32, 32, seed=5)
    with torch.no_grad():
        expected = model.encode_tokens(video).to_list()[0]
        double = copy.deepcopy(model).double()
        assert {p.dtype for p in double.parameters()} == {torch.float64}
        assert double.quantizer._basis.dtype == torch.int64
        assert (double.encode_tokens(video.double()).to_list()[0] == expected).float().mean() > 0.99
    back = copy.deepcopy(model).to(torch.bfloat16).float()
    assert {p.dtype for p in back.parameters()} == {torch.float32}


def test_ema_shadows_stay_float32_when_their_owner_is_cast():
    model = tiny_model()
    ema = EMA(model, decay=0.9)
    owner = nn.ModuleDict({"vae": model, "ema": ema}).to(torch.bfloat16)  # what Lightning's bf16-true does
    shadows = {name: getattr(ema, EMA.shadow_key(name)) for name in ema.names}
    assert {s.dtype for s in shadows.values()} == {torch.float32} and ema.num_updates.dtype == torch.int64
    before = {name: s.clone() for name, s in shadows.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    ema.update(model)  # crashed: lerp_ expected BFloat16
    params = dict(model.named_parameters())
    for name, shadow in shadows.items():
        assert torch.equal(shadow, before[name].lerp(params[name].float(), 0.1))
    ema.copy_to(model)
    assert model.model.decoder.head[-1].weight.dtype == torch.bfloat16
    assert torch.equal(model.model.decoder.head[-1].weight, shadows["model.decoder.head.2.weight"].bfloat16())
    owner.double()
    assert {getattr(ema, EMA.shadow_key(n)).dtype for n in ema.names} == {torch.float64}


@pytest.mark.parametrize("precision", ["bf16-true", "64-true"])
def test_true_precision_training_exports_the_float32_ema(tmp_path, precision):
    """Two steps in bf16-true / 64-true, both paths and the adversarial term on: the export holds the EMA shadows
    in float32, not the model's bf16-rounded weights."""
    out = tmp_path / "run"
    config = tiny_config(out, "joint", schedule={"kind": "joint"}, loss={"disc_start": 0, "discriminator": {"base_channels": 8}},
                         trainer={"max_steps": 2, "precision": precision, "checkpoint_every_n_steps": 2})
    assert cli_main(["train", "--config", str(write_config(tmp_path, "c", config))]) == 0
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    shadows = {k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.shadow__")}
    assert {v.dtype for v in shadows.values()} == {torch.float32 if precision == "bf16-true" else torch.float64}
    if precision == "bf16-true":
        assert state["vae.model.decoder.head.2.weight"].dtype == torch.bfloat16
        assert state["vae.quant_conv.weight"].dtype == torch.float32
    for exported in (out / "export", export_checkpoint(out / "checkpoints" / "last.ckpt", tmp_path / "exported")):
        weights = load_file(str(Path(exported) / "model.safetensors"))
        assert {w.dtype for w in weights.values()} == {torch.float32}
        for name, w in weights.items():
            assert torch.equal(w, shadows[EMA.shadow_key(name)].float()), name

