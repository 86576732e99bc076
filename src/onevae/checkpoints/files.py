"""Reading weight files safely: ``.safetensors`` directly, pickled ``.ckpt``/``.pth``/``.pt`` only through
``torch.load(weights_only=True)`` with a narrow allow-list, or with an explicit opt-in to trust the file."""

from __future__ import annotations

import argparse
import io
import pathlib
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io.paths import existing_file

PICKLE_SUFFIXES = {".ckpt", ".pth", ".pt", ".bin"}


def _harmless_globals() -> list[Any]:
    """Plain-data classes found in the hyper-parameters of real Lightning checkpoints; none runs code."""
    return [argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath]


def check_file(path: str | Path) -> Path:
    return existing_file(path, "weights file", CheckpointError)


TRUST_HINT = "Only if you trust where the file comes from, pass --trust-checkpoint (Python: trust=True)."
NO_TRUST_HINT = "Checkpoints written by onevae train hold none: this file was written by something else, or altered."


def read_weights_file(path: str | Path, trust: bool = False, trust_hint: str = TRUST_HINT) -> dict[str, Any]:
    """The object stored in a weights file (a flat state dict for safetensors, anything for pickles).

    ``trust_hint`` ends the message that refuses a pickle holding code: how the caller can opt in, if it can
    (``NO_TRUST_HINT`` where there is no such option, as for ``export`` and ``--resume``)."""
    path = check_file(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix in PICKLE_SUFFIXES:
        return _read_pickle(path, trust, trust_hint)
    raise CheckpointError(f"{path}: unknown weights format {path.suffix!r} (expected .safetensors, .ckpt, .pth or .pt)")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _read_pickle(path: Path, trust: bool, trust_hint: str = TRUST_HINT) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals(_harmless_globals()):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # what the file holds is read from the file (its pickle opcodes), not from the text of torch's message
        refs = pickled_globals(path)
        if refs is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint") from None
        if not trust:
            raise CheckpointError(f"{path} holds Python objects that a safe load refuses ({_describe_refs(refs)}). {trust_hint}") from None
        warnings.warn(f"loading {path} with full unpickling: this runs code from the file (trust_checkpoint=True)", stacklevel=2)
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first_line})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(obj).__name__}")
    return dict(obj)


def pickled_globals(path: Path) -> list[str] | None:
    """The ``module.name`` globals (classes, functions) a pickled checkpoint references, read with pickletools,
    which executes nothing; None when the file is not a well-formed torch zip archive or legacy pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [name for name in archive.namelist() if name.endswith("data.pkl")]
                return _globals_of_one_pickle(io.BytesIO(archive.read(names[0]))) if names else None
        return _legacy_globals(path.read_bytes())
    except (ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile, OSError):
        return None


def _legacy_globals(data: bytes) -> list[str] | None:
    """The legacy format: a few pickles in a row (magic number, protocol, system info, the object, the storage
    keys), then raw tensor bytes."""
    stream, refs, parsed = io.BytesIO(data), [], 0
    while stream.tell() < len(data):
        try:
            refs += _globals_of_one_pickle(stream)
        except (ValueError, IndexError, EOFError):
            break
        parsed += 1
    return refs if parsed else None


def _globals_of_one_pickle(stream: io.BytesIO) -> list[str]:
    refs, strings = [], []
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name in ("GLOBAL", "INST"):  # protocol 2 writes Python 2 module names
            refs.append(str(arg).replace(" ", ".").replace("__builtin__.", "builtins.", 1))
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            refs.append(f"{strings[-2]}.{strings[-1]}")
        if isinstance(arg, str):
            strings.append(arg)
    return refs


def _describe_refs(refs: list[str]) -> str:
    """Name what a safe load would not allow: the first global that is neither torch's nor plain data."""
    plain = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.bytearray",
             "argparse.Namespace", "pathlib.", "numpy.")
    unsafe = [r for r in refs if not r.startswith(plain)]
    if not unsafe:
        return "unsupported content"
    return f"it would call {unsafe[0]}" + (f" and {len(set(unsafe)) - 1} more" if len(set(unsafe)) > 1 else "")


def tensors_only(state: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """Keep the tensors of a state dict; refuse one that holds none."""
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source}: holds no weight tensors")
    return tensors


def unwrap_state_dict(obj: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """A Lightning checkpoint keeps its weights under ``state_dict``; other trainers under ``model``."""
    for key in ("state_dict", "model", "module"):
        if key in obj and isinstance(obj[key], Mapping) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
            return tensors_only(obj[key], source)
    return tensors_only(obj, source)
