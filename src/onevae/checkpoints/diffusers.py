"""Wan2.1 VAE weights in diffusers' layout (``AutoencoderKLWan``), both ways.

A diffusers model folder holds ``config.json`` (with ``_class_name``) and ``diffusion_pytorch_model.safetensors``
(or a sharded ``.safetensors.index.json``, a variant such as ``.fp16.safetensors``, or a pickled ``.bin``). It
may be a pipeline repository's ``vae/`` folder, a Hugging Face cache folder (``models--org--name``, its
``snapshots/``) or an ``org/name`` id already in the local cache; nothing is downloaded.

Our tensor names follow the official Wan2.1 layout (``model.encoder.downsamples.N.residual.2.weight``), which
diffusers regroups (``encoder.down_blocks.N.conv1.weight``, decoder stages as ``up_blocks.S.resnets.J``).
:func:`onevae_key_map` derives the renaming from the architecture, for any ``dim_mult``/``num_res_blocks``;
nothing is hard-coded per released size. diffusers itself is not needed to read or write these folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..config import OneVAEConfig, preset
from ..errors import CheckpointError, InputError
from ..model import OneVAE
from ..model_dir import _hf_cache_root, _snapshot_dir
from ..nn.layers import AttentionBlock, Resample, ResidualBlock
from ..state_dict import LoadReport, copy_matching, require_complete
from .files import read_weights_file

DIFFUSERS_CLASS = "AutoencoderKLWan"
CONFIG_NAME = "config.json"
WEIGHTS_STEM = "diffusion_pytorch_model"
WEIGHTS_NAME = f"{WEIGHTS_STEM}.safetensors"

# Inside a residual block: the official Sequential indices -> diffusers' names.
_RESIDUAL_RENAMES = (
    ("residual.0.", "norm1."), ("residual.2.", "conv1."), ("residual.3.", "norm2."), ("residual.6.", "conv2."),
    ("shortcut.", "conv_shortcut."),
)
# Fixed renames of whole prefixes (ours, below ``model.`` -> diffusers').
_PREFIX_RENAMES = (
    ("encoder.conv1.", "encoder.conv_in."), ("decoder.conv1.", "decoder.conv_in."),
    ("encoder.head.0.", "encoder.norm_out."), ("encoder.head.2.", "encoder.conv_out."),
    ("decoder.head.0.", "decoder.norm_out."), ("decoder.head.2.", "decoder.conv_out."),
    ("encoder.middle.0.", "encoder.mid_block.resnets.0."), ("encoder.middle.1.", "encoder.mid_block.attentions.0."),
    ("encoder.middle.2.", "encoder.mid_block.resnets.1."),
    ("decoder.middle.0.", "decoder.mid_block.resnets.0."), ("decoder.middle.1.", "decoder.mid_block.attentions.0."),
    ("decoder.middle.2.", "decoder.mid_block.resnets.1."),
    ("conv1.", "quant_conv."), ("conv2.", "post_quant_conv."),
)
# diffusers' constructor arguments and their defaults (AutoencoderKLWan.__init__, diffusers 0.3x-0.4x): a key
# missing from config.json takes this value, as in diffusers.
_DIFFUSERS_DEFAULTS: dict[str, Any] = {
    "base_dim": 96, "decoder_base_dim": None, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
    "attn_scales": [], "temperal_downsample": [False, True, True], "dropout": 0.0, "is_residual": False,
    "in_channels": 3, "out_channels": 3, "patch_size": None, "scale_factor_temporal": 4, "scale_factor_spatial": 8,
    "latents_mean": None, "latents_std": None,  # filled from the wan2.1 preset below (the same values as diffusers')
}


# ------------------------------------------------------------------------------------------------ locating
def find_diffusers_folder(name_or_path: str | Path) -> Path | None:
    """The diffusers model folder that ``name_or_path`` designates, or None if it is not one: the folder itself,
    its ``vae/`` subfolder (a pipeline repository), a HF cache folder's snapshot (and its ``vae/``), an
    ``org/name`` id in the local HF cache, or the folder of a ``diffusion_pytorch_model.*`` file."""
    path = Path(name_or_path).expanduser()
    if not path.exists() and "/" in str(name_or_path) and not str(name_or_path).startswith((".", "/", "~")):
        path = _snapshot_dir(_hf_cache_root() / ("models--" + str(name_or_path).replace("/", "--"))) or path
    if path.is_file():
        return path.parent if path.name.startswith(WEIGHTS_STEM) and _is_diffusers_config(path.parent / CONFIG_NAME) else None
    if not path.is_dir():
        return None
    if (path / "snapshots").is_dir():
        path = _snapshot_dir(path) or path
    for candidate in (path, path / "vae"):
        if _is_diffusers_config(candidate / CONFIG_NAME):
            return candidate
    return None


def _is_diffusers_config(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "_class_name" in data


def looks_like_diffusers_keys(keys) -> bool:
    """diffusers' naming, told apart from the official one (which shares ``quant_conv.``) by its block names."""
    return any(k.startswith(("encoder.conv_in.", "encoder.down_blocks.", "decoder.up_blocks.", "encoder.mid_block.")) for k in keys)


# ------------------------------------------------------------------------------------------------ config
def config_from_diffusers(data: dict[str, Any], source: str) -> tuple[OneVAEConfig, list[str]]:
    """Our config (the ``wan2.1`` architecture with diffusers' sizes) from an ``AutoencoderKLWan`` config.json,
    and notes for the load report. Refuses other classes and the options our network does not have."""
    cls = data.get("_class_name")
    if cls is None:
        raise CheckpointError(f"{source}: not a diffusers model config (no _class_name)")
    if cls != DIFFUSERS_CLASS:
        raise CheckpointError(f"{source}: a diffusers {cls} model, not {DIFFUSERS_CLASS} (the Wan2.1 VAE), the only diffusers class onevae reads")
    values = {**_DIFFUSERS_DEFAULTS, **{k: v for k, v in data.items() if not k.startswith("_")}}
    notes = [f"ignored config keys unknown to {DIFFUSERS_CLASS}: {', '.join(sorted(unknown))}"] if (unknown := set(values) - set(_DIFFUSERS_DEFAULTS)) else []
    _refuse_unsupported(values, source)
    wan = preset("wan2.1")
    try:
        config = wan.replace(
            dim=int(values["base_dim"]), z_dim=int(values["z_dim"]), dim_mult=list(values["dim_mult"]),
            num_res_blocks=int(values["num_res_blocks"]), attn_scales=[], temporal_downsample=list(values["temperal_downsample"]),
            dropout=float(values["dropout"]), latents_mean=None, latents_std=None,
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: invalid {DIFFUSERS_CLASS} config ({exc})") from None
    for key, derived in (("scale_factor_temporal", config.temporal_factor), ("scale_factor_spatial", config.spatial_factor)):
        if values[key] is not None and int(values[key]) != derived:
            raise CheckpointError(f"{source}: {key}={values[key]} but its temperal_downsample/dim_mult give {derived}")
    config, stats_note = _with_diffusers_stats(config, values, wan, "latents_mean" in data)
    notes += [stats_note] if stats_note else []
    config.name = "wan2.1" if _architecture(config) == _architecture(wan) else "wan2.1-custom"
    return config, notes


def _refuse_unsupported(values: dict[str, Any], source: str) -> None:
    problems = []
    if values["is_residual"]:
        problems.append("is_residual=true (the Wan2.2 VAE)")
    if values["patch_size"] is not None:
        problems.append(f"patch_size={values['patch_size']} (the Wan2.2 VAE)")
    if values["decoder_base_dim"] not in (None, values["base_dim"]):
        problems.append(f"decoder_base_dim={values['decoder_base_dim']} differs from base_dim={values['base_dim']}")
    if values["in_channels"] != 3 or values["out_channels"] != 3:
        problems.append(f"in/out_channels={values['in_channels']}/{values['out_channels']} (RGB only)")
    if values["attn_scales"]:
        problems.append(f"attn_scales={values['attn_scales']} (diffusers' decoder drops those attention layers)")
    if problems:
        raise CheckpointError(f"{source}: this {DIFFUSERS_CLASS} has options the Wan2.1 architecture lacks: {'; '.join(problems)}")


def _with_diffusers_stats(config: OneVAEConfig, values: dict[str, Any], wan: OneVAEConfig, given: bool) -> tuple[OneVAEConfig, str | None]:
    """Carry latents_mean/std; diffusers' defaults are Wan2.1's 16 values (so a folder without them has those)."""
    mean, std = (values["latents_mean"], values["latents_std"]) if given else (wan.latents_mean, wan.latents_std)
    if mean is None or std is None or len(mean) != config.z_dim or len(std) != config.z_dim:
        return config, f"latents_mean/latents_std not kept: they do not hold z_dim={config.z_dim} values"
    try:
        return config.replace(latents_mean=list(mean), latents_std=list(std)), None
    except (InputError, TypeError, ValueError) as exc:
        return config, f"latents_mean/latents_std not kept ({exc})"


def _architecture(config: OneVAEConfig) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in ("name", "latents_mean", "latents_std")}


def read_diffusers_config(folder: Path) -> tuple[OneVAEConfig, list[str]]:
    path = folder / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} (a diffusers model folder has config.json and {WEIGHTS_NAME})") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a config must be a JSON object")
    return config_from_diffusers(data, str(path))


def diffusers_config_for(config: OneVAEConfig) -> dict[str, Any]:
    """An ``AutoencoderKLWan`` config.json for one of our continuous, non-fe, 4x-temporal models."""
    problems = []
    if config.first_frame_highres:
        problems.append("its first-frame-high-res latent is a second grid that AutoencoderKLWan cannot hold")
    if config.temporal_factor != 4:
        problems.append(f"AutoencoderKLWan encodes in chunks of 4 frames, this model compresses time {config.temporal_factor}x")
    if config.attn_scales:
        problems.append("AutoencoderKLWan's decoder has no attention at attn_scales")
    if problems:
        raise InputError(f"{config.name} cannot be written as a diffusers {DIFFUSERS_CLASS}: {'; '.join(problems)}")
    mean = config.latents_mean if config.has_latent_stats else [0.0] * config.z_dim
    std = config.latents_std if config.has_latent_stats else [1.0] * config.z_dim
    return {
        "_class_name": DIFFUSERS_CLASS, "_diffusers_version": _diffusers_version(),
        "base_dim": config.dim, "z_dim": config.z_dim, "dim_mult": config.dim_mult, "num_res_blocks": config.num_res_blocks,
        "attn_scales": [], "temperal_downsample": config.temporal_downsample, "dropout": config.dropout,
        "latents_mean": mean, "latents_std": std, "is_residual": False, "in_channels": 3, "out_channels": 3,
        "patch_size": None, "scale_factor_temporal": config.temporal_factor, "scale_factor_spatial": config.spatial_factor,
    }


def _diffusers_version() -> str:
    try:
        from importlib.metadata import version

        return version("diffusers")
    except Exception:  # noqa: BLE001 - not installed: any version that has AutoencoderKLWan reads the file
        return "0.33.0"


# ------------------------------------------------------------------------------------------------ key names
def onevae_key_map(config: OneVAEConfig) -> dict[str, str]:
    """Our ``model.*`` tensor names -> diffusers' names, for this architecture."""
    with torch.device("meta"):
        vae = OneVAE(config.replace(fsq_levels=None, num_codebooks=1)).model
    decoder_slots = _decoder_slots(vae.decoder.upsamples)
    mapping = {}
    for key in vae.state_dict():
        mapping["model." + key] = _diffusers_name(key, decoder_slots)
    return mapping


def _decoder_slots(upsamples) -> list[str]:
    """diffusers' name of each entry of our flat ``decoder.upsamples``: ``up_blocks.S.resnets.J`` or
    ``up_blocks.S.upsamplers.0`` (a Resample closes stage S)."""
    slots, stage, block = [], 0, 0
    for layer in upsamples:
        if isinstance(layer, Resample):
            slots.append(f"up_blocks.{stage}.upsamplers.0")
            stage, block = stage + 1, 0
        elif isinstance(layer, ResidualBlock):
            slots.append(f"up_blocks.{stage}.resnets.{block}")
            block += 1
        elif isinstance(layer, AttentionBlock):
            raise InputError("diffusers' AutoencoderKLWan decoder has no attention blocks in its up-sampling stages")
    return slots


def _diffusers_name(key: str, decoder_slots: list[str]) -> str:
    for ours, theirs in _PREFIX_RENAMES:
        if key.startswith(ours):
            return theirs + _residual_name(key[len(ours):])
    if key.startswith("encoder.downsamples."):  # the same flat list in both
        index, rest = key[len("encoder.downsamples."):].split(".", 1)
        return f"encoder.down_blocks.{index}.{_residual_name(rest)}"
    if key.startswith("decoder.upsamples."):
        index, rest = key[len("decoder.upsamples."):].split(".", 1)
        return f"decoder.{decoder_slots[int(index)]}.{_residual_name(rest)}"
    raise InputError(f"no diffusers name for {key}")  # every key of the Wan2.1 architecture has one


def _residual_name(rest: str) -> str:
    for ours, theirs in _RESIDUAL_RENAMES:
        if rest.startswith(ours):
            return theirs + rest[len(ours):]
    return rest


def diffusers_to_onevae_names(state: dict[str, torch.Tensor], config: OneVAEConfig) -> dict[str, torch.Tensor]:
    """Rename diffusers tensors into our naming for ``config``'s architecture; names it does not know keep a
    ``diffusers:`` prefix, so that a load reports them as unknown."""
    inverse = {theirs: ours for ours, theirs in onevae_key_map(config).items()}
    return {inverse.get(key, f"diffusers:{key}"): value for key, value in state.items()}


def onevae_to_diffusers_names(state: dict[str, torch.Tensor], config: OneVAEConfig) -> dict[str, torch.Tensor]:
    """Our continuous model's tensors in diffusers' naming (the FSQ layers of a discrete model are left out)."""
    mapping = onevae_key_map(config)
    return {mapping[key]: value for key, value in state.items() if key in mapping}


# ------------------------------------------------------------------------------------------------ reading
def read_diffusers_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The tensors of a diffusers folder, in diffusers' naming, and the file they came from."""
    exact = folder / WEIGHTS_NAME
    index = folder / f"{WEIGHTS_NAME}.index.json"
    variants = sorted(folder.glob(f"{WEIGHTS_STEM}.*.safetensors"))
    pickled = folder / f"{WEIGHTS_STEM}.bin"
    if exact.is_file():
        return read_weights_file(exact), exact
    if index.is_file():
        return _read_sharded(index), index
    if len(variants) == 1:
        return read_weights_file(variants[0]), variants[0]
    if len(variants) > 1:
        names = ", ".join(v.name for v in variants)
        raise CheckpointError(f"{folder}: several weight variants ({names}) and no {WEIGHTS_NAME}; give the one to use as the path")
    if pickled.is_file():
        return read_weights_file(pickled), pickled
    raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} next to its {CONFIG_NAME} (the weights are missing)")


def _read_sharded(index: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: not a readable shard index ({exc})") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state.update(read_weights_file(index.parent / shard))
    return state


def read_diffusers(name_or_path: str | Path, config: OneVAEConfig | None = None) -> tuple[OneVAEConfig, dict[str, torch.Tensor], LoadReport]:
    """(config, tensors in our naming, a report with the notes) from a diffusers folder, or from a weights file
    in diffusers' naming with ``config`` giving the architecture."""
    folder = find_diffusers_folder(name_or_path)
    path = Path(name_or_path)
    notes: list[str] = []
    if folder is None:
        if not path.is_file():
            raise CheckpointError(f"{name_or_path}: not a diffusers model folder (config.json with _class_name and {WEIGHTS_NAME}), nor a cached id")
        if config is None:
            raise CheckpointError(f"{path}: a diffusers weights file without its {CONFIG_NAME}; put it next to the file or give the architecture (--variant wan2.1 or --config)")
        state, source = read_weights_file(path), path
    else:
        folder_config, notes = read_diffusers_config(folder)
        config = config or folder_config
        if path.is_file() and path.name.startswith(WEIGHTS_STEM):
            state, source = read_weights_file(path), path
        else:
            state, source = read_diffusers_weights(folder)
    report = LoadReport(source=str(source), notes=notes)
    return config, diffusers_to_onevae_names(state, config), report


def load_diffusers(name_or_path: str | Path, config: OneVAEConfig | None = None) -> tuple[OneVAE, LoadReport]:
    """A continuous OneVAE (the ``wan2.1`` architecture, sizes from config.json) with the weights of a diffusers
    ``AutoencoderKLWan``, loaded strictly. Returns ``(model, report)``."""
    config, state, report = read_diffusers(name_or_path, config)
    model = OneVAE(config)
    copy_matching(model, state, report)
    require_complete(report, f"{model.config.name} (the architecture in its config.json)")
    return model.eval(), report


def load_diffusers_prior(model: OneVAE, name_or_path: str | Path) -> LoadReport:
    """Initialise ``model`` (any OneVAE config) from a diffusers ``AutoencoderKLWan`` where names and shapes
    match (as :func:`onevae.checkpoints.wan.load_wan_prior` does for the ``.pth``)."""
    _, state, report = read_diffusers(name_or_path)
    copy_matching(model, state, report)
    report.notes.append("continuous prior: keys that did not match keep their fresh initialisation")
    return report


# ------------------------------------------------------------------------------------------------ writing
def save_diffusers(model: OneVAE, path: str | Path) -> Path:
    """Write ``model``'s continuous VAE as a diffusers ``AutoencoderKLWan`` folder (config.json +
    diffusion_pytorch_model.safetensors), each file whole or not at all; ``AutoencoderKLWan.from_pretrained``
    reads it. A model without latent statistics gets mean 0 and std 1 (no normalisation)."""
    from safetensors.torch import save_file

    from ..io.atomic import atomic_path

    config_json = diffusers_config_for(model.config)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create {path}: {exc.strerror}") from None
    state = onevae_to_diffusers_names(model.state_dict(), model.config)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_path(path / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config_json, indent=2) + "\n")
    return path
