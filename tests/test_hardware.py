"""A bf16/fp16 run on a CPU that emulates it warns once, in one line, and still runs (onevae.hardware)."""

from __future__ import annotations

import pytest
import torch

from cli_helpers import save_tiny_model
from onevae import hardware
from onevae.cli.main import main as cli_main
from onevae.io.samples import sample_video_path


@pytest.fixture
def emulated_half(monkeypatch):
    """A CPU with native float32 only, like the 2-core AVX2 EPYC VMs here."""
    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: dtype not in (torch.bfloat16, torch.float16))


def test_message_names_the_setting_and_the_faster_choice(emulated_half):
    message = hardware.slow_cpu_dtype_message(torch.bfloat16, "trainer.precision=bf16-mixed", "trainer.precision=32-true")
    assert message.count("\n") == 0
    assert "trainer.precision=bf16-mixed" in message and "trainer.precision=32-true" in message
    assert "AVX-512 BF16" in message
    assert hardware.slow_cpu_dtype_message(torch.float32, "x", "y") is None


def test_no_message_where_the_cpu_runs_it_natively(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: True)
    assert hardware.slow_cpu_dtype_message(torch.bfloat16, "x", "y") is None


def test_the_probe_answers_for_this_machine():
    assert hardware.cpu_runs_natively(torch.float32)
    assert isinstance(hardware.cpu_runs_natively(torch.bfloat16), bool)


def test_reconstruct_in_bfloat16_on_such_a_cpu_warns_once_and_still_writes(emulated_half, tmp_path, capsys):
    model = save_tiny_model(tmp_path / "model", "tiny-hardware")
    out = tmp_path / "out.mp4"
    assert cli_main(["reconstruct", str(sample_video_path("carphone_pristine")), "--model", str(model), "-o", str(out),
                     "--max-frames", "5", "--dtype", "bfloat16", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("[onevae] warning: computing in bfloat16 on a CPU without") == 1 and "--dtype float32" in err
    assert out.is_file()


def test_reconstruct_in_float32_does_not_warn(emulated_half, tmp_path, capsys):
    model = save_tiny_model(tmp_path / "model", "tiny-hardware")
    assert cli_main(["reconstruct", str(sample_video_path("carphone_pristine")), "--model", str(model), "-o", str(tmp_path / "o.mp4"),
                     "--max-frames", "5", "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_python_api_warns_once_per_emulated_dtype_and_not_for_float32(emulated_half, tmp_path):
    import warnings

    from onevae import OneVAE, SlowDtypeWarning

    model = OneVAE.from_pretrained(save_tiny_model(tmp_path / "model", "tiny-hardware"))
    with pytest.warns(SlowDtypeWarning) as caught:
        model.set_precision(encode=torch.float16, decode=torch.bfloat16)
    assert sorted(str(w.message).split(" on a CPU")[0] for w in caught) == ["computing in bfloat16", "computing in float16"]
    assert "10-35x slower than float32; float32 is faster" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.set_precision(encode=torch.float32, decode=torch.float32)


def test_auto_precision_picks_bf16_only_where_it_is_native(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: False)
    assert hardware.auto_precision("auto")[0] == "32-true" and hardware.auto_precision("cpu")[0] == "32-true"
    monkeypatch.setattr(hardware, "cpu_runs_natively", lambda dtype: True)
    assert hardware.auto_precision("cpu") == ("bf16-mixed", "the CPU runs bfloat16 natively")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert hardware.auto_precision("auto")[0] == "bf16-mixed" and hardware.auto_precision("gpu")[0] == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.auto_precision("cuda")[0] == "32-true"
