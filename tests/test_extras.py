"""Optional dependencies (pyproject's extras): a missing one is one line naming the extra, never a traceback,
and it is found before any work is done."""

from __future__ import annotations

import os
import sys

import pytest

from cli_helpers import assert_user_error, run_cli
from onevae.errors import OneVAEError
from onevae.extras import require


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import MODULE`` fail as if the package were not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_require_names_the_extra_to_install(monkeypatch):
    hide(monkeypatch, "webdataset")
    with pytest.raises(OneVAEError, match=r"^writing shards needs webdataset: pip install 'onevae\[corpus\]'$"):
        require("webdataset", "corpus", "writing shards")
    assert require("json", "corpus", "anything").dumps([]) == "[]"


def test_ray_engine_imports_without_ray_and_says_what_to_install(monkeypatch):
    hide(monkeypatch, "ray", "ray.data", "msgpack")
    monkeypatch.delitem(sys.modules, "onevae.corpus.ray_engine", raising=False)
    from onevae.corpus import ray_engine  # msgpack (a Ray dependency) is not imported at module level

    with pytest.raises(OneVAEError, match=r"--engine ray needs Ray Data: pip install 'onevae\[corpus\]'"):
        ray_engine.start_ray(None, 1)


def test_library_quantizers_say_what_to_install(monkeypatch):
    from onevae.quantizers.library import _library

    hide(monkeypatch, "vector_quantize_pytorch")
    with pytest.raises(OneVAEError, match=r"vector-quantize-pytorch: pip install 'onevae\[experiments\]'"):
        _library()


def test_training_data_photos_say_what_to_install(monkeypatch):
    from onevae.data.prepare import skimage_photos

    hide(monkeypatch, "skimage", "skimage.data")
    with pytest.raises(OneVAEError, match=r"scikit-image: pip install 'onevae\[data\]'"):
        skimage_photos()


def test_tokenize_without_webdataset_is_one_line_before_any_output(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "webdataset.py").write_text("raise ImportError('No module named webdataset')\n")
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"not read: the check comes first")
    env = {"PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    result = run_cli("tokenize", str(videos), "-o", str(tmp_path / "out"), env=env)
    assert_user_error(result, "needs webdataset: pip install 'onevae[corpus]'")
    assert not (tmp_path / "out").exists()
