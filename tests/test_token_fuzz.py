"""Property-based fuzzing of the token/latent file reader (issue 13, D10/D20): whatever bytes or metadata a file
holds, reading it either returns grids that agree with their metadata or raises InputError, never anything else
(no traceback reaches the user, nothing is decoded from a contradiction). Derandomized so CI is reproducible;
a few seconds on a 2-core CPU."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from onevae import OneVAE, OneVAEConfig
from onevae.errors import InputError
from onevae.io.fit import fit_size
from onevae.io.tokens import describe, load_token_file, save_token_file, token_meta_for

TINY = dict(name="tiny-fuzz", dim=8, z_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temporal_downsample=[False, True, True])
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _encoded(kind: str, directory: Path) -> Path:
    torch.manual_seed(0)
    model = OneVAE(OneVAEConfig(**TINY)).eval()
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        grids = model.encode_tokens(video) if kind == "tokens" else model.encode_latents(video)
    meta = token_meta_for(model, kind, 10.0, "0123456789abcdef", source={"path": "clip.mp4"}, fit=fit_size(16, 16, 8).to_dict(),
                          frames=5, padded_frames=0)
    path = directory / f"valid.{kind}.safetensors"
    save_token_file(path, grids, meta)
    return path


@pytest.fixture(scope="module")
def files():
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        yield directory, {kind: _encoded(kind, directory) for kind in ("tokens", "latents")}


def read_or_refuse(path: Path) -> None:
    """The property: a clean refusal, or a result that agrees with itself."""
    try:
        grids, meta = load_token_file(path)
    except InputError:
        return
    assert [list(g.shape) for g in grids] == meta.grid_shapes
    assert all(g.dtype == torch.int64 for g in grids) if meta.kind == "tokens" else all(g.is_floating_point() and torch.isfinite(g).all() for g in grids)
    json.dumps(describe(meta))  # what `onevae info` prints


def test_valid_files_read_back(files):
    _, paths = files
    for kind, path in paths.items():
        grids, meta = load_token_file(path)
        assert meta.kind == kind and meta.frames == 5 and [list(g.shape) for g in grids] == meta.grid_shapes


@FUZZ
@given(kind=st.sampled_from(["tokens", "latents"]), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=6),
       cut=st.none() | st.integers(0, 10**6))
def test_random_byte_damage_is_refused_or_harmless(files, kind, flips, cut):
    directory, paths = files
    data = bytearray(paths[kind].read_bytes())
    for position, mask in flips:  # a bit flip, mostly in the JSON header (where the fields are)
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: cut % len(data)]
    path = directory / "damaged.safetensors"
    path.write_bytes(bytes(data))
    read_or_refuse(path)


def _paths(value, prefix=()):
    """Every key path of a nested dict."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield prefix + (key,)
            yield from _paths(inner, prefix + (key,))


@FUZZ
@given(kind=st.sampled_from(["tokens", "latents"]), choice=st.integers(0, 10**6), value=JSON, action=st.sampled_from(["replace", "delete", "add"]))
def test_any_metadata_change_is_refused_or_harmless(files, kind, choice, value, action):
    directory, paths = files
    with safe_open(str(paths[kind]), "pt") as f:
        meta, tensors = json.loads(f.metadata()["onevae"]), {k: f.get_tensor(k) for k in f.keys()}
    keys = list(_paths(meta))
    *parents, last = keys[choice % len(keys)]
    node = meta
    for key in parents:
        node = node[key]
    if action == "replace":
        node[last] = value
    elif action == "delete":
        del node[last]
    else:
        node[f"{last}_extra"] = value
    path = directory / "edited.safetensors"
    save_file(tensors, str(path), metadata={"onevae": json.dumps(meta)})
    read_or_refuse(path)
