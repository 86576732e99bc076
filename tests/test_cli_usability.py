"""Command-line rough edges a new user hit: bad --device values, a closed stdout pipe, conflicting options,
train overrides around options, ``info`` on the wrong kind of file, directories created and cleaned up, and
the wording of sizes and warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import assert_user_error, run_cli, save_tiny_model
from onevae.cli.commands import checked_device
from onevae.errors import OneVAEError


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
