"""Reading weight files safely: ``.safetensors`` directly, pickled ``.ckpt``/``.pth``/``.pt`` only through
``torch.load(weights_only=True)`` with a narrow allow-list, or with an explicit opt-in to trust the file."""

from __future__ import annotations

import argparse
import pathlib
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from ..errors import CheckpointError
from ..io.paths import existing_file

PICKLE_SUFFIXES = {".ckpt", ".pth", ".pt", ".bin"}


def _harmless_globals() -> list[Any]:
    """Plain-data classes found in the hyper-parameters of real Lightning checkpoints; none runs code."""
    return [argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath]


def check_file(path: Union[str, Path]) -> Path:
    return existing_file(path, "weights file", CheckpointError)


TRUST_HINT = "Only if you trust where the file comes from, pass --trust-checkpoint (Python: trust=True)."
NO_TRUST_HINT = "Checkpoints written by onevae train hold none: this file was written by something else, or altered."


def read_weights_file(path: Union[str, Path], trust: bool = False, trust_hint: str = TRUST_HINT) -> dict[str, Any]:
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
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower() and "SETITEMS" not in str(exc) and "BUILD" not in str(exc):
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint") from None
        if not trust:
            raise CheckpointError(f"{path} holds Python objects that a safe load refuses ({_refused_class(exc)}). {trust_hint}") from None
        warnings.warn(f"loading {path} with full unpickling: this runs code from the file (trust_checkpoint=True)", stacklevel=2)
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first_line})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(obj).__name__}")
    return dict(obj)


def _refused_class(exc: Exception) -> str:
    named = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
    if named:
        return f"it would call {named.group(1)}"
    for line in str(exc).splitlines():
        if "Unsupported global" in line:
            return line.split("Unsupported global:", 1)[1].split(" was not", 1)[0].strip()
        if "Can only" in line or "BUILD" in line:
            return line.strip().rstrip(".")
    return "unsupported content"


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
