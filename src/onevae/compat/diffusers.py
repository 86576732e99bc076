"""A OneVAE behind diffusers' VAE interfaces, so that diffusers pipelines and training scripts can use it.

* :class:`DiffusersVAE`, continuous latents the way ``AutoencoderKLWan`` gives them:
  ``encode(x).latent_dist`` (a diffusers ``DiagonalGaussianDistribution``: ``.mode()``, ``.mean``,
  ``.sample(generator)``, ``.kl()``), ``decode(z).sample`` (clamped to [-1, 1], as ``AutoencoderKLWan`` does),
  ``config`` with the fields pipelines read (``z_dim``, ``latents_mean``, ``latents_std``,
  ``scale_factor_temporal``, ``scale_factor_spatial``, ``scaling_factor``), ``enable_tiling()`` (the model's
  spatial tiling, diffusers' arguments mapped), ``enable_slicing()``, ``from_pretrained`` (our model directory or
  a diffusers ``AutoencoderKLWan`` folder, ``subfolder``, ``torch_dtype``), ``save_pretrained`` (our directory) and
  the attributes Wan pipelines read (``z_dim``, ``temperal_downsample``, ``spatial_compression_ratio``).
  Latents are raw (the encoder's mean, or a posterior sample); pipelines normalise them themselves with
  ``config.latents_mean``/``latents_std`` (None when the model carries no statistics: measure them with
  ``onevae stats``).
* :class:`DiffusersTokenizer`, tokens the way ``AutoencoderVidTok`` gives them with its FSQ regulariser:
  ``encode(x)`` returns ``(quantised latents, indices)``, ``decode(z)``, ``decode(indices,
  decode_from_indices=True)`` and ``decode_from_indices(indices)``. Our indices are (B, t, h, w, K): K tokens
  per position (VidTok has K = 1 and drops the last axis).

diffusers' interfaces carry one latent tensor per clip. The first-frame-high-res ("fe") models have two grids
of different sizes (see :mod:`onevae.latents`), which no single tensor can hold without inventing a layout that
no pipeline would understand: both adapters refuse them, and the fe models are used through the OneVAE API.

Videos are (B, 3, T, H, W) in [-1, 1] with T = 1 + k*tf and H, W multiples of the spatial factor, as for
``AutoencoderKLWan``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checkpoints.diffusers import find_diffusers_folder, load_diffusers
from ..errors import InputError, OneVAEError
from ..latents import Latents, Tokens
from ..model import OneVAE
from ..streaming import DEFAULT_TILE

try:
    from diffusers.configuration_utils import FrozenDict
    from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
    from diffusers.models.modeling_outputs import AutoencoderKLOutput
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise OneVAEError(f"onevae.compat.diffusers needs diffusers ({exc}); install it with: pip install 'onevae[diffusers]'") from None


def _check_single_grid(model: OneVAE) -> None:
    if model.config.first_frame_highres:
        raise InputError(
            f"{model.config.name} keeps frame 0 in a second, high-res latent grid, which diffusers' one-tensor VAE "
            "interface cannot carry; use the OneVAE API (encode_latents/decode_latents) for this model"
        )


def _require_tensor(x: Any) -> None:
    """diffusers' interfaces take one tensor (a list of grids is the OneVAE API's form)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"expected one torch.Tensor, got {type(x).__name__}")


def diffusers_config(model: OneVAE, class_name: str) -> FrozenDict:
    """The config fields diffusers pipelines and scripts read from a VAE."""
    c = model.config
    return FrozenDict(
        _class_name=class_name, base_dim=c.dim, z_dim=c.z_dim, dim_mult=list(c.dim_mult), num_res_blocks=c.num_res_blocks,
        temperal_downsample=list(c.temporal_downsample), in_channels=3, out_channels=3, latent_channels=c.z_dim,
        scale_factor_temporal=c.temporal_factor, scale_factor_spatial=c.spatial_factor,
        temporal_compression_ratio=c.temporal_factor, spatial_compression_ratio=c.spatial_factor,
        latents_mean=list(c.latents_mean) if c.has_latent_stats else None,
        latents_std=list(c.latents_std) if c.has_latent_stats else None,
        scaling_factor=1.0, shift_factor=None,  # normalisation is per channel (latents_mean/std), as for Wan
        num_codebooks=c.num_codebooks if c.discrete else None, vocab_size=c.vocab_size if c.discrete else None,
    )


class _Adapter(nn.Module):
    """What both adapters share: the wrapped model, device/dtype, slicing and tiling switches."""

    def __init__(self, model: OneVAE) -> None:
        super().__init__()
        _check_single_grid(model)
        self.model = model
        self.use_slicing = False
        self.use_tiling = False
        self.train(model.training)  # a loaded model is in eval mode, and so is its adapter (AutoencoderKLWan's is too)

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, subfolder: str | None = None, device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None, torch_dtype: torch.dtype | None = None,
    ):
        """Wrap a model loaded from one of our model directories (:meth:`OneVAE.from_pretrained`, ``None``: the
        shipped one) or from a diffusers ``AutoencoderKLWan`` folder (a pipeline repository, its ``vae/``, a HF
        cache entry: :func:`onevae.checkpoints.load_diffusers`). ``torch_dtype`` is diffusers' name for ``dtype``
        (the FSQ projections stay float32, see :meth:`OneVAE.set_precision`)."""
        dtype = dtype or torch_dtype
        folder = None
        if path is not None:
            local = Path(path).expanduser()
            folder = find_diffusers_folder(local / subfolder if subfolder and local.is_dir() else path)
        if folder is None:
            return cls(OneVAE.from_pretrained(path, device=device, dtype=dtype, subfolder=subfolder))
        model = load_diffusers(folder)[0].to(device)
        if dtype is not None:
            model.set_precision(encode=dtype, decode=dtype)
        return cls(model)

    def save_pretrained(self, save_directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write the wrapped model as one of our model directories (:meth:`OneVAE.save_pretrained`, FSQ and latent
        statistics included), which :meth:`from_pretrained` reads back. For a folder that diffusers'
        ``AutoencoderKLWan.from_pretrained`` reads, use :func:`onevae.checkpoints.save_diffusers` (continuous path only)."""
        self.model.save_pretrained(save_directory, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def enable_slicing(self) -> None:
        """Encode and decode a batch one clip at a time (memory of one clip)."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def enable_tiling(
        self, tile_sample_min_height: int | None = None, tile_sample_min_width: int | None = None,
        tile_sample_stride_height: int | None = None, tile_sample_stride_width: int | None = None, **ours: Any,
    ) -> None:
        """Spatial tiling with diffusers' arguments, mapped onto the model's square tiles
        (:meth:`OneVAE.enable_tiling`): tile = the smaller of the given tile sizes, overlap = tile - the smaller
        stride (without a stride, a quarter of the tile). Our own ``tile=``/``overlap=`` are accepted too; with no
        argument, our defaults (384, 96; AutoencoderKLWan's are 256 with stride 192, i.e. our tile 256, overlap 64)."""
        sizes = [int(v) for v in (tile_sample_min_height, tile_sample_min_width) if v]
        strides = [int(v) for v in (tile_sample_stride_height, tile_sample_stride_width) if v]
        if sizes:
            ours.setdefault("tile", min(sizes))
        if strides:
            ours.setdefault("overlap", ours.get("tile", DEFAULT_TILE) - min(strides))
        self.model.enable_tiling(**ours)
        self.use_tiling = True

    def disable_tiling(self) -> None:
        self.use_tiling = False
        self.model.disable_tiling()

    def _per_clip(self, fn, x: torch.Tensor):
        """``fn`` on the whole batch, or clip by clip with slicing (results joined along the batch)."""
        _require_tensor(x)
        if not self.use_slicing or x.shape[0] == 1:
            return fn(x)
        parts = [fn(clip) for clip in x.split(1)]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(items) for items in zip(*parts))
        return torch.cat(parts)


class DiffusersVAE(_Adapter):
    """A OneVAE with ``AutoencoderKLWan``'s interface (continuous latents; any model without fe)."""

    def __init__(self, model: OneVAE) -> None:
        super().__init__(model)
        self.config = diffusers_config(model, "OneVAE")

    # AutoencoderKLWan's attributes that pipelines read (WanVideoToVideoPipeline, WanVACEPipeline: temperal_downsample)
    @property
    def z_dim(self) -> int:
        return self.model.config.z_dim

    @property
    def temperal_downsample(self) -> list[bool]:
        return list(self.model.config.temporal_downsample)

    @property
    def temperal_upsample(self) -> list[bool]:
        return self.temperal_downsample[::-1]

    @property
    def spatial_compression_ratio(self) -> int:
        return self.model.config.spatial_factor

    def clear_cache(self) -> None:
        """Nothing to clear: the causal caches live only as long as one encode/decode call."""

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        mean, logvar = self.model.encode_moments(x)
        return torch.cat([mean.rest, logvar.rest], dim=1)  # (B, 2z, t, h, w), DiagonalGaussianDistribution's layout

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> Any:
        """Video (B, 3, T, H, W) in [-1, 1] -> ``AutoencoderKLOutput(latent_dist=...)``; ``.mode()`` is our
        :meth:`OneVAE.encode_latents`.

        With tiling on and frames larger than a tile, only the mean is computed (tile by tile, blended): the
        posterior is then deterministic (``sample()`` returns the mean, with a warning)."""
        _require_tensor(x)
        tiling = self.model.tiling
        if tiling is not None and x.dim() == 5 and tiling.applies(*x.shape[3:]):
            warnings.warn("tiled encoding gives the posterior mean only: latent_dist.sample() returns it without noise", stacklevel=2)
            mean = self._per_clip(lambda clip: self.model.encode_latents(clip).rest, x)
            posterior = DiagonalGaussianDistribution(torch.cat([mean, torch.zeros_like(mean)], dim=1), deterministic=True)
        else:
            posterior = DiagonalGaussianDistribution(self._per_clip(self._moments, x))
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> Any:
        """Latents (B, z_dim, t, h, w) -> ``DecoderOutput(sample=video)``, clamped to [-1, 1]."""
        video = self._per_clip(lambda part: self.model.decode_latents(Latents(part)), z).clamp(-1, 1)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator: torch.Generator | None = None) -> Any:
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)


class DiffusersTokenizer(_Adapter):
    """A discrete OneVAE with ``AutoencoderVidTok``'s FSQ interface: indices out, ``decode_from_indices``."""

    def __init__(self, model: OneVAE) -> None:
        super().__init__(model)
        model.require_discrete()
        self.config = diffusers_config(model, "OneVAETokenizer")
        self.regularizer = "fsq"

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quantised, tokens = self.model.quantize(self.model.encode_latents(x))
        return quantised.rest, tokens.rest

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Video -> (the quantised latents the decoder takes (B, z_dim, t, h, w), indices (B, t, h, w, K))."""
        return self._per_clip(self._encode, x)

    def indices_to_latent(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, t, h, w, K) -> the decoder's latents (B, z_dim, t, h, w)."""
        _require_tensor(indices)
        return self.model.tokens_to_latents(Tokens(indices)).rest

    def decode(self, z: torch.Tensor, decode_from_indices: bool = False) -> torch.Tensor:
        """Latents (or indices with ``decode_from_indices``) -> video (B, 3, T, H, W), not clamped."""
        def run(part: torch.Tensor) -> torch.Tensor:
            return self.model.decode_latents(Latents(self.indices_to_latent(part) if decode_from_indices else part))

        return self._per_clip(run, z)

    def decode_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(indices, decode_from_indices=True)

    def forward(self, sample: torch.Tensor, encoder_mode: bool = False, return_dict: bool = True) -> Any:
        z, indices = self.encode(sample)
        if encoder_mode:
            return z, indices
        video = self.decode(z)
        return DecoderOutput(sample=video) if return_dict else (video,)
