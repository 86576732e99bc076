"""Our model directory format, as diffusers does it: ``config.json`` + ``model.safetensors``.

``from_pretrained`` also accepts a Hugging Face cache folder (``models--org--name`` with ``snapshots/``), an
``org/name`` id already in the local Hugging Face cache (nothing is downloaded), a ``subfolder``, and the name
of the shipped default model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .config import PRESETS, OneVAEConfig, architecture_fields
from .errors import CheckpointError
from .io.atomic import atomic_path, write_safetensors
from .io.paths import same_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_MODEL_NAME = "onevae-small"


def names_default_model(name: str | Path | None) -> bool:
    """Whether ``name`` asks for the shipped model: ``default`` or its preset name (None counts where it may)."""
    return name is None or str(name) in ("default", DEFAULT_MODEL_NAME)


def default_model_dir() -> Path:
    """The small tokenizer shipped inside the package (see its model card, MODEL_CARD.md)."""
    return Path(__file__).resolve().parent / "assets" / DEFAULT_MODEL_NAME


def _hf_cache_root() -> Path:
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _snapshot_dir(repo_dir: Path) -> Path | None:
    """The snapshot a Hugging Face cache folder's ``refs/main`` points at (else the newest one)."""
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def resolve_model_dir(name_or_path: str | Path | None, subfolder: str | None = None) -> Path:
    """A local directory holding ``config.json`` for a path, a HF cache folder or id, or None (the default)."""
    if names_default_model(name_or_path):
        path = default_model_dir()
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists() and "/" in str(name_or_path) and not str(name_or_path).startswith((".", "/")):
            cached = _hf_cache_root() / ("models--" + str(name_or_path).replace("/", "--"))
            path = _snapshot_dir(cached) or path
        elif path.is_dir() and (path / "snapshots").is_dir():
            path = _snapshot_dir(path) or path
    if subfolder:
        path = path / subfolder
    if not path.exists():
        refuse_weightless_preset(str(name_or_path))
        raise CheckpointError(f"{path}: no such model directory (nor a Hugging Face cache entry)")
    if path.is_file() and path.name in (CONFIG_NAME, WEIGHTS_NAME) and _is_model_dir(path.parent):
        return path.parent  # a file of one of our model directories stands for the directory
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file, not a model directory ({CONFIG_NAME} + {WEIGHTS_NAME}). A weights file is loaded "
            "with onevae.checkpoints.load_official (OneVAE releases), load_wan (Wan2.1 .pth) or load_diffusers, "
            "or converted once: onevae convert FILE -o models/NAME"
        )
    if not (path / WEIGHTS_NAME).is_file() and _is_diffusers_layout(path):
        raise CheckpointError(
            f"{path} is a diffusers folder: load it with onevae.checkpoints.load_diffusers(path) or "
            "onevae.compat.diffusers.DiffusersVAE.from_pretrained(path), or convert it once: onevae convert FOLDER -o models/NAME"
        )
    for needed in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / needed).is_file():
            raise CheckpointError(f"{path}: model directory is missing {needed}")
    return path


def _is_model_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def _is_diffusers_layout(path: Path) -> bool:
    """A pipeline repository (``model_index.json``) or a diffusers model folder (``diffusion_pytorch_model*``):
    read by :mod:`onevae.checkpoints.diffusers`, which this module does not import."""
    return (path / "model_index.json").is_file() or any(path.glob("diffusion_pytorch_model*"))


def refuse_weightless_preset(name: str) -> None:
    """A preset name is an architecture without weights: say how to get the weights instead of 'not found'."""
    if name in PRESETS:
        raise CheckpointError(
            f"{name} is a preset (an architecture) without weights: convert the released checkpoint first, e.g. "
            f"'onevae convert CHECKPOINT --variant {name} -o models/{name}', then load models/{name}"
        )


def read_model_dir(
    name_or_path: str | Path | None, subfolder: str | None = None
) -> tuple[OneVAEConfig, dict[str, torch.Tensor], Path]:
    """The config and the weights of a model directory (see :func:`resolve_model_dir`), and its path."""
    path = resolve_model_dir(name_or_path, subfolder)
    config = OneVAEConfig.load(path / CONFIG_NAME)
    try:
        state = load_file(str(path / WEIGHTS_NAME))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path / WEIGHTS_NAME}: not a readable safetensors file ({exc})") from None
    return config, state, path  # NaN/inf weights are refused by state_dict.copy_matching, for every format


def write_model_dir(
    path: str | Path, config: OneVAEConfig, state: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None, dtype: torch.dtype | None = None,
) -> None:
    """Write ``config.json`` and ``model.safetensors`` into ``path``; each file appears whole or not at all. The
    shipped model's directory is refused.

    ``dtype`` stores the floating-point tensors in that precision (e.g. float16 halves the file); loading casts
    them back to the model's dtype."""
    path = Path(path)
    if same_file(path, default_model_dir()):  # what from_pretrained(None) and every token file of it depend on
        raise CheckpointError(f"{path} is the model shipped inside the package, which is never replaced: save to another directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create model directory {path}: {exc.strerror}") from None
    stored = {k: _stored(v, dtype) for k, v in state.items()}
    meta = {"format": "onevae", "config": json.dumps(config.to_dict())}
    meta.update(metadata or {})
    write_safetensors(path / WEIGHTS_NAME, stored, metadata=meta)
    with atomic_path(path / CONFIG_NAME) as tmp:
        config.save(tmp)


def _stored(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.detach().to("cpu")
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.contiguous()


def model_fingerprint(model) -> str:
    """A short hash of the config and every weight: token files record it so that decoding with another model
    is refused. A model loaded from a directory keeps the fingerprint of its weights as stored
    (``stored_fingerprint``), whatever dtype they were cast to since."""
    return model.stored_fingerprint or weights_fingerprint(model.config, model.state_dict())


def weights_fingerprint(config: OneVAEConfig, state) -> str:
    """The hash behind :func:`model_fingerprint`. ``OneVAE.from_pretrained`` takes it of the weights as stored in the
    file, before any cast, so that a model loaded in bfloat16 recognises the files it wrote in float32.
    Every weight is widened to float32 first (exact for float16/bfloat16/float32 files), which keeps the
    fingerprints of float32 models what they always were. The latent statistics are left out: measuring them
    later does not orphan the files already written (a file of normalised latents records the statistics it used)."""
    architecture = architecture_fields(config.to_dict())
    digest = hashlib.sha256(json.dumps(architecture, sort_keys=True).encode())
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]

