"""What an installed wheel needs: every data file the package reads at run time is declared as package data, and
the starter training config a pip user gets (``onevae train --print-config``) is the one docs/training.md shows."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli
from onevae.train.config import STARTER_CONFIG, load_train_config, starter_config_text

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "onevae"


def package_data_patterns() -> list[str]:
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["onevae"]


def test_every_data_file_of_the_package_is_package_data():
    shipped = {p for pattern in package_data_patterns() for p in PACKAGE.glob(pattern) if p.is_file()}
    data_files = {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert sorted(map(str, data_files - shipped)) == []
    assert {PACKAGE / "py.typed", STARTER_CONFIG, PACKAGE / "assets" / "onevae-small" / "model.safetensors"} <= shipped
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_print_config_is_the_starter_the_docs_show_and_it_loads(tmp_path):
    docs = (ROOT / "docs" / "training.md").read_text()
    block = re.search(r"## Training on your own videos\n.*?```yaml\n(.*?)```", docs, re.S).group(1)
    assert starter_config_text() == block
    result = run_cli("train", "--print-config")
    assert result.returncode == 0 and result.stdout == block and result.stderr == ""
    (tmp_path / "my.yaml").write_text(result.stdout)
    config = load_train_config(tmp_path / "my.yaml")
    assert config.model.init_from == "default" and config.data.sources == ["videos"]


def test_print_config_with_other_options_is_refused_in_one_line():
    for extra in (["--config", "my.yaml"], ["trainer.max_steps=3"], ["--resume", "auto"]):
        result = run_cli("train", "--print-config", *extra)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            "onevae train: error: --print-config takes no other option or override: it prints the starter config and exits "
            "(onevae train --print-config > my.yaml; then onevae train --config my.yaml)"]
