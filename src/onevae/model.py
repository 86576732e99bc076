"""OneVAE: one causal video VAE that gives both continuous latents and discrete FSQ tokens.

Representations (for a valid clip of T = 1 + k*tf frames, H and W multiples of sf), see :mod:`onevae.latents`:

* continuous latents: the encoder's deterministic mean, :class:`~onevae.latents.Latents` (B, z_dim, t, h, w)
  (first-frame-high-res models also hold frame 0 at twice the resolution);
* tokens: the same grids through Linear(z_dim -> K*d) and FSQ, :class:`~onevae.latents.Tokens`, int64
  (B, t, h, w, K), K tokens per position.

Both decode with the same decoder. Two execution modes give the same numbers (to float rounding):
``mode="full"`` runs the whole clip in one pass (fastest, used for training); ``mode="stream"`` runs it chunk by
chunk with causal caches (:mod:`onevae.streaming`, the one owner of chunking and tiling), so memory is bounded by
the chunk whatever the clip length; with :meth:`OneVAE.enable_tiling`, also by the tile whatever the frame size.

:meth:`OneVAE.forward` is the training pass (used by training, validation and the training benchmark): one
encoding, then one reconstruction per :class:`PathPlan` (continuous, discrete, or an interpolation of both).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn

from .config import OneVAEConfig, preset, read_config_json, unset_keys_note
from .errors import InputError, InputRangeWarning
from .hardware import warn_in_python_if_slow_on_cpu
from .latents import Latents, Tokens
from .model_dir import CONFIG_NAME, WEIGHTS_NAME, read_model_dir, weights_fingerprint, write_model_dir
from .nn.float32 import TensorFn, at_least_float32
from .nn.vae import CausalVAE
from .padding import Padding, pad_to_multiple
from .quantizers.factory import build_quantizer
from .state_dict import LoadReport, copy_matching, require_complete
from .streaming import DEFAULT_TILE, StreamingDecoder, Tiling, decoder_for, default_overlap, encoder_for

# Values a little outside [-1, 1] come from resampling filters and codecs: tolerate them, refuse the rest.
RANGE_TOLERANCE = 1e-2
# Log-variances are clamped to this range before sampling the posterior (exp(20/2) is already huge).
LOGVAR_RANGE = (-30.0, 20.0)

Path_ = Literal["continuous", "discrete"]


@dataclass(frozen=True)
class PathPlan:
    """One reconstruction of a forward pass: ``path`` "continuous" (the latents go to the decoder) or
    "discrete" (FSQ with a straight-through gradient); ``alpha`` < 1 feeds ``(1-alpha)*latents +
    alpha*quantised`` (the interpolating transition); ``weight`` is this term's share of a loss."""

    path: Path_
    weight: float = 1.0
    alpha: float = 1.0


CONTINUOUS = PathPlan("continuous", 1.0, 0.0)
DISCRETE = PathPlan("discrete", 1.0, 1.0)


@dataclass
class PathOutput:
    """One path's reconstruction in a forward pass."""

    plan: PathPlan
    recon: torch.Tensor  # (B, 3, T, H, W), not clamped
    decoder_input: Latents  # what the decoder was given (latents, a posterior sample, or their quantised version)
    tokens: Tokens | None  # None on the continuous path


@dataclass
class ModelOutput:
    """What :meth:`OneVAE.forward` returns: the encoding, and one :class:`PathOutput` per plan, in order."""

    latents: Latents  # the encoder's means
    logvars: Latents
    paths: list[PathOutput]

    @property
    def recon(self) -> torch.Tensor:
        """The last path's reconstruction (the only one for a single plan)."""
        return self.paths[-1].recon


class OneVAE(nn.Module):
    """The tokenizer. Build it from a config or a preset name; load weights with :meth:`from_pretrained`
    (our directory format) or the functions of :mod:`onevae.checkpoints`."""

    def __init__(self, config: OneVAEConfig | str) -> None:
        super().__init__()
        self.config = preset(config) if isinstance(config, str) else config
        self.source_dir: Path | None = None  # the model directory it was loaded from, if any
        self.stored_fingerprint: str | None = None  # of the weights as stored there (onevae.model_dir.model_fingerprint)
        self.tiling: Tiling | None = None  # spatial tiling of encode/decode (enable_tiling)
        self.model = CausalVAE(self.config)
        if self.config.discrete:
            self.quant_conv = nn.Linear(self.config.z_dim, self.config.embed_dim)
            self.post_quant_conv = nn.Linear(self.config.embed_dim, self.config.z_dim)
            self.quantizer = build_quantizer(self.config)  # FSQ unless config.quantizer says otherwise

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def decoder_last_layer(self) -> torch.Tensor:
        """The weight of the decoder's output convolution (for the adaptive adversarial weight)."""
        return self.model.decoder.head[-1].weight

    def enable_tiling(self, tile: int = DEFAULT_TILE, overlap: int | None = None) -> None:
        """Encode and decode frames larger than ``tile`` pixels as overlapping tiles (memory bounded by the
        tile; see :mod:`onevae.streaming`), as diffusers' ``enable_tiling`` does. ``overlap`` defaults to a
        quarter of the tile (a multiple of the spatial factor). The defaults (384, 96) keep a tiled 720p
        reconstruction within 0.05 dB of the untiled one; smaller tiles bound memory tighter."""
        sf = self.config.spatial_factor
        tiling = Tiling(tile, default_overlap(tile, sf) if overlap is None else overlap)
        tiling.check(sf)
        self.tiling = tiling

    def disable_tiling(self) -> None:
        self.tiling = None

    def float32_modules(self) -> list[nn.Module]:
        """The token path (FSQ projections and quantizer), which runs in float32 whatever the encoder's and the
        decoder's dtypes, so that tokens do not depend on them: :meth:`set_precision` puts it in float32, and
        whole-model casts (``.to(torch.bfloat16)``, ``.half()``, ``.type(...)``) never take it below float32."""
        return [self.quant_conv, self.quantizer, self.post_quant_conv] if self.config.discrete else []

    def _apply(self, fn: TensorFn, recurse: bool = True) -> OneVAE:
        """``nn.Module``'s cast or move of every tensor, except that :meth:`float32_modules` stay at least
        float32 (their integer buffers keep their dtype; ``.double()`` still makes them float64)."""
        if recurse:
            kept = self.float32_modules()
            for child in self.children():
                child._apply(at_least_float32(fn) if any(child is module for module in kept) else fn)
        return super()._apply(fn, recurse=False)

    def set_precision(self, encode: torch.dtype | None = None, decode: torch.dtype | None = None) -> None:
        """Run the encoder and the decoder in their own dtypes (e.g. float32 encoding, bfloat16 decoding). The
        FSQ projections and rounding always run in float32 (:meth:`float32_modules`), so tokens do not depend on
        the decoder's dtype; a whole-model cast such as ``model.to(torch.bfloat16)`` keeps them float32 too, and
        equals ``set_precision(torch.bfloat16, torch.bfloat16)``. The weights are cast in place: going back up to
        float32 does not restore the bits a lower precision dropped (load the model again for that). On a CPU
        without native bfloat16/float16 kernels, a :class:`~onevae.errors.SlowDtypeWarning` says so (10-35x
        slower than float32)."""
        vae = self.model
        for module, dtype in ((vae.encoder, encode), (vae.conv1, encode), (vae.conv2, decode), (vae.decoder, decode)):
            if dtype is not None:
                module.to(dtype)
        for module in self.float32_modules():
            module.float()
        if self.device.type == "cpu":
            warn_in_python_if_slow_on_cpu(encode, decode)

    def set_memory_format(self, memory_format: torch.memory_format = torch.channels_last_3d) -> None:
        """Store every 3-D convolution's weight in ``memory_format`` (``torch.channels_last_3d`` or
        ``torch.contiguous_format``). Convolutions then produce, and pass on, activations in that layout, which
        cuDNN prefers in reduced precision; on a CPU it is not faster (docs/benchmarks.md). Same numbers up to
        float rounding."""
        if memory_format not in (torch.channels_last_3d, torch.contiguous_format):
            raise InputError(f"memory format must be torch.channels_last_3d or torch.contiguous_format, got {memory_format}")
        for module in self.model.modules():
            if isinstance(module, nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=memory_format)

    def compile(self, **options) -> None:
        """``torch.compile`` the encoder and the decoder in place (what encode, decode and training run);
        ``options`` go to ``torch.compile`` (e.g. ``mode="max-autotune"``). Weights and their names are unchanged,
        so saving, loading and fingerprints are unaffected. The first call of each shape compiles (slow)."""
        self.model.encoder.compile(**options)
        self.model.decoder.compile(**options)

    @property
    def encode_dtype(self) -> torch.dtype:
        return self.model.conv1.weight.dtype

    @property
    def decode_dtype(self) -> torch.dtype:
        return self.model.conv2.weight.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_video(self, video: torch.Tensor, require_valid_size: bool = True) -> None:
        """Refuse, with one clear message, anything that is not a (B, 3, T, H, W) float video in [-1, 1]."""
        if not isinstance(video, torch.Tensor):
            raise InputError(f"video must be a torch.Tensor, got {type(video).__name__}")
        if video.dim() != 5:
            raise InputError(f"video must have 5 dimensions (B, 3, T, H, W), got shape {tuple(video.shape)}{_layout_hint(video)}")
        if video.shape[1] != 3:
            raise InputError(f"video must have 3 channels (RGB) in dimension 1, got shape {tuple(video.shape)}")
        if video.numel() == 0:
            raise InputError(f"video is empty: shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise InputError(f"video must be a float tensor with values in [-1, 1], got {video.dtype} (uint8 frames map as x.float() / 127.5 - 1)")
        lo, hi = (float(v) for v in video.detach().aminmax())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError("video contains NaN or infinite values")
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise InputError(
                f"video values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}] (uint8 frames map as x / 127.5 - 1)"
            )
        if 0 <= lo < hi:  # a constant video (torch.zeros, a placeholder) is mid-grey or black either way
            warnings.warn(
                f"every value of this video lies in [0, 1] ([{lo:.3g}, {hi:.3g}]): the model takes [-1, 1], so a [0, 1] "
                "video encodes washed out (convert it with video * 2 - 1); a clip with no pixel darker than mid-grey is "
                "fine: warnings.filterwarnings('ignore', category=onevae.InputRangeWarning)", InputRangeWarning, stacklevel=3,
            )
        if require_valid_size:
            self.check_size(*video.shape[2:])

    def check_size(self, t: int, h: int, w: int) -> None:
        """Refuse a clip of ``t`` frames of ``h`` x ``w`` that is not 1 + k*tf frames of multiples of sf."""
        tf, sf = self.config.temporal_factor, self.config.spatial_factor
        problems = []
        if (t - 1) % tf:
            problems.append(f"{t} frames is not 1 + k*{tf}")
        if h % sf or w % sf:
            problems.append(f"{h}x{w} is not a multiple of {sf}")
        if problems:
            raise InputError(
                f"{self.config.name} cannot take this clip: {'; '.join(problems)}. "
                "Pad it to a valid size first (encode_latents(..., pad=True), or video, padding = model.pad_video(video) "
                "and padding.crop(...) after decoding: last frame repeated, bottom/right edge replicated)."
            )

    def pad_video(self, video: torch.Tensor) -> tuple[torch.Tensor, Padding]:
        """Pad (B, 3, T, H, W) to the next valid size: repeat the last frame, replicate the bottom/right edge."""
        self.check_video(video, require_valid_size=False)
        return pad_to_multiple(video, self.config.temporal_factor, self.config.spatial_factor)

    def require_discrete(self) -> None:
        if not self.config.discrete:
            raise InputError(f"{self.config.name} is a continuous-only model: it has no tokens (use the latent functions)")

    def as_latents(self, latents: Latents | Sequence[torch.Tensor]) -> Latents:
        """Accept :class:`Latents` or the list form ``[first, rest]`` / ``[all]``; check the shapes."""
        if not isinstance(latents, Latents):
            latents = Latents.from_list(latents, self.config.first_frame_highres)
        z = self.config.z_dim
        for grid in latents.to_list():
            if grid.dim() != 5 or grid.shape[1] != z:
                raise InputError(f"latent grids must be (B, {z}, t, h, w), got {tuple(grid.shape)}")
            if not grid.is_floating_point():
                raise InputError(f"latent grids must be float tensors, got {grid.dtype} (tokens go to decode_tokens)")
            if grid.shape[0] == 0 or grid.shape[3] == 0 or grid.shape[4] == 0:
                raise InputError(f"latent grids must hold at least one clip and one position per frame, got {tuple(grid.shape)}")
            if not bool(torch.isfinite(grid).all()):
                raise InputError("latents contain NaN or infinite values")
        first, rest = latents.first, latents.rest
        if first is not None:
            if first.shape[0] != rest.shape[0]:
                raise InputError(f"the first-frame and rest grids must hold the same clips, got batches of {first.shape[0]} and {rest.shape[0]}")
            if first.shape[2] != 1:
                raise InputError(f"the first-frame latent must hold 1 frame, got {first.shape[2]}")
            if rest.shape[2] and (first.shape[3] != 2 * rest.shape[3] or first.shape[4] != 2 * rest.shape[4]):
                raise InputError(f"the first-frame latent must be twice the size of the rest: {tuple(first.shape)} vs {tuple(rest.shape)}")
        elif rest.shape[2] == 0:
            raise InputError("the latent grid holds no frames")
        return latents

    def as_tokens(self, tokens: Tokens | Sequence[torch.Tensor]) -> Tokens:
        """Accept :class:`Tokens` or the list form; check dtype, shape and value range."""
        self.require_discrete()
        if not isinstance(tokens, Tokens):
            tokens = Tokens.from_list(tokens, self.config.first_frame_highres)
        for grid in tokens.to_list():
            if grid.dim() != 5:
                raise InputError(f"token grids must be (B, t, h, w, {self.config.num_codebooks}) integer tensors, got {tuple(grid.shape)}")
            self.quantizer.check_indices(grid)
        return tokens

    # -------------------------------------------------------------------------------------- continuous
    def encode_moments(self, video: torch.Tensor) -> tuple[Latents, Latents]:
        """(mean, log-variance) latents, full-sequence."""
        self.check_video(video)
        return self.model.encode_moments(video)

    def encode_latents(self, video: torch.Tensor, mode: str = "full", chunk_frames: int | None = None, pad: bool = False) -> Latents:
        """Video (B, 3, T, H, W) in [-1, 1] -> continuous latents (the encoder's mean)."""
        if pad:
            video, _ = self.pad_video(video)
        self.check_video(video)
        if mode not in ("full", "stream"):
            raise InputError(f"mode must be 'full' or 'stream', got {mode!r}")
        h, w = video.shape[3:]
        tiled = self.tiling is not None and self.tiling.applies(h, w)
        if mode == "full" and not tiled:
            return self.model.encode_moments(video)[0]
        if mode == "full":  # tiles run whole: frame 0, then every later frame in one chunk
            chunk_frames = max(self.config.temporal_factor, video.shape[2] - 1)
        return encoder_for(self, h, w, chunk_frames).encode(video)

    def decode_latents(self, latents: Latents | Sequence[torch.Tensor], mode: str = "full", chunk_latents: int = 1) -> torch.Tensor:
        """Continuous latents -> video (B, 3, T, H, W), not clamped (clamp to [-1, 1] for display)."""
        latents = self.as_latents(latents)
        if not torch.is_inference_mode_enabled() and any(g.is_inference() for g in latents.to_list()):
            latents = latents.map(torch.clone)  # encoded under inference_mode, decoded outside: autograd cannot save them
        if mode not in ("full", "stream"):
            raise InputError(f"mode must be 'full' or 'stream', got {mode!r}")
        h, w = latents.spatial_size
        decoder = decoder_for(self, h * self.config.spatial_factor, w * self.config.spatial_factor)
        if mode == "full" and isinstance(decoder, StreamingDecoder):
            return self.model.decode(latents)
        if mode == "full":  # tiles run whole: frame 0, then every later latent frame in one piece
            chunk_latents = max(1, latents.num_frames)
        return decoder.decode(latents, chunk_latents)

    def normalize_latents(self, latents: Latents | Sequence[torch.Tensor]) -> Latents:
        """Raw latents -> ``(z - latents_mean) / latents_std`` per channel, what a diffusion model is trained
        on (Wan2.1 pipelines do this); refuses a model whose config carries no statistics."""
        from .latent_stats import normalize, stats_tensors

        return normalize(self.as_latents(latents), *stats_tensors(self.config))

    def denormalize_latents(self, latents: Latents | Sequence[torch.Tensor]) -> Latents:
        """The inverse of :meth:`normalize_latents` (what :meth:`decode_latents` takes)."""
        from .latent_stats import denormalize, stats_tensors

        return denormalize(self.as_latents(latents), *stats_tensors(self.config))

    # ---------------------------------------------------------------------------------------- discrete
    def quantize(self, latents: Latents) -> tuple[Latents, Tokens]:
        """Latents -> (their quantised version for the decoder, with a straight-through gradient; tokens)."""
        self.require_discrete()
        proj = self.quant_conv
        pairs = [self.quantizer(proj(grid.permute(0, 2, 3, 4, 1).to(proj.weight.dtype))) for grid in latents.to_list()]  # (B, t, h, w, K*d), (B, t, h, w, K)
        fe = latents.first is not None
        quantised = Latents.from_list([self._codes_to_latent(codes) for codes, _ in pairs], fe)
        tokens = Tokens.from_list([indices for _, indices in pairs], fe)
        return quantised, tokens

    def _codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        # (B, t, h, w, K*d) -> (B, z, t, h, w)
        return self.post_quant_conv(codes.to(self.post_quant_conv.weight.dtype)).permute(0, 4, 1, 2, 3)

    def latents_to_tokens(self, latents: Latents | Sequence[torch.Tensor]) -> Tokens:
        """Continuous latents (B, z, t, h, w) -> their tokens (B, t, h, w, K), as :meth:`encode_tokens` gives them."""
        return self.quantize(self.as_latents(latents))[1]

    def tokens_to_latents(self, tokens: Tokens | Sequence[torch.Tensor]) -> Latents:
        """Tokens (B, t, h, w, K) -> the decoder's input latents (B, z, t, h, w) (any number of frames)."""
        tokens = self.as_tokens(tokens)
        return tokens.map(lambda grid: self._codes_to_latent(self.quantizer.indices_to_codes(grid.to(self.device))), into=Latents)

    def encode_tokens(self, video: torch.Tensor, mode: str = "full", chunk_frames: int | None = None, pad: bool = False) -> Tokens:
        """Video (B, 3, T, H, W) in [-1, 1] -> tokens, int64 (B, t, h, w, K) in [0, vocab_size)."""
        self.require_discrete()
        return self.latents_to_tokens(self.encode_latents(video, mode, chunk_frames, pad))

    def decode_tokens(self, tokens: Tokens | Sequence[torch.Tensor], mode: str = "full", chunk_latents: int = 1) -> torch.Tensor:
        """Tokens -> video (B, 3, T, H, W), not clamped."""
        return self.decode_latents(self.tokens_to_latents(tokens), mode, chunk_latents)

    # ---------------------------------------------------------------------------------------- training
    def forward(
        self, video: torch.Tensor, plans: PathPlan | Sequence[PathPlan] = DISCRETE,
        posterior_noise: torch.Generator | None = None,
    ) -> ModelOutput:
        """The training pass, full-sequence: encode once, then reconstruct through each plan's path.

        ``posterior_noise``: sample the continuous path's decoder input from the posterior N(mean, exp(logvar))
        with this generator (for a KL-regularised continuous VAE); by default the mean is decoded.
        """
        plans = [plans] if isinstance(plans, PathPlan) else list(plans)
        latents, logvars = self.encode_moments(video)
        return ModelOutput(latents, logvars, [self._decode_path(latents, logvars, plan, posterior_noise) for plan in plans])

    def _decode_path(self, latents: Latents, logvars: Latents, plan: PathPlan, noise: torch.Generator | None) -> PathOutput:
        tokens = None
        if plan.path == "continuous":
            decoder_input = latents if noise is None else _sample_posterior(latents, logvars, noise)
        else:
            quantised, tokens = self.quantize(latents)
            decoder_input = quantised
            if plan.alpha < 1.0:
                mix = zip(latents.to_list(), quantised.to_list())
                decoder_input = Latents.from_list([(1 - plan.alpha) * m + plan.alpha * q for m, q in mix], latents.first is not None)
        return PathOutput(plan, self.model.decode(decoder_input), decoder_input, tokens)

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor, discrete: bool = True, mode: str = "full") -> torch.Tensor:
        """Encode and decode any clip (padded to a valid size, cropped back), output clamped to [-1, 1]."""
        padded, padding = self.pad_video(video)
        latents = self.encode_latents(padded, mode)
        if discrete:
            latents = self.tokens_to_latents(self.latents_to_tokens(latents))
        return padding.crop(self.decode_latents(latents, mode)).clamp(-1, 1)

    # -------------------------------------------------------------------------------- pretrained format
    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
        subfolder: str | None = None,
    ) -> OneVAE:
        """Load a model directory (``config.json`` + ``model.safetensors``), a Hugging Face cache folder or
        ``org/name`` already in the local cache (nothing is downloaded), or the shipped default (``None`` or
        "onevae-small"); the weights must fit the config exactly."""
        config, state, directory = read_model_dir(path, subfolder)
        model = cls(config)
        report = copy_matching(model, state, LoadReport(source=str(directory / WEIGHTS_NAME)))
        unset = unset_keys_note(read_config_json(directory / CONFIG_NAME))
        require_complete(report, f"the config in {directory / CONFIG_NAME} ({config.name}{unset})")
        model.source_dir = directory
        model.stored_fingerprint = weights_fingerprint(config, state)
        model.to(device=device).eval()
        if dtype is not None:
            model.set_precision(encode=dtype, decode=dtype)
        return model

    def save_pretrained(
        self, path: str | Path, metadata: dict[str, str] | None = None, dtype: torch.dtype | None = None
    ) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``path`` (atomically); ``dtype`` (e.g.
        ``torch.float16``) stores the weights in that precision."""
        write_model_dir(path, self.config, self.state_dict(), metadata=metadata, dtype=dtype)


def _sample_posterior(mean: Latents, logvar: Latents, generator: torch.Generator) -> Latents:
    """mean + exp(logvar / 2) * eps, eps ~ N(0, 1) drawn on the CPU from ``generator`` (same on every device)."""
    def sample(m: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(m.shape, generator=generator).to(m)
        return m + torch.exp(0.5 * lv.clamp(*LOGVAR_RANGE)) * eps

    pairs = zip(mean.to_list(), logvar.to_list())
    return Latents.from_list([sample(m, lv) for m, lv in pairs], mean.first is not None)


def _layout_hint(video: torch.Tensor) -> str:
    """What a tensor of the wrong rank probably is, and how to make it a (B, 3, T, H, W) video."""
    shape = tuple(video.shape)
    if video.dim() == 4 and shape[1] == 3 and shape[0] != 3:  # (B, 3, H, W): a batch of images
        return " (a batch of images? an image is a one-frame video: video.unsqueeze(2) gives (B, 3, 1, H, W))"
    if video.dim() == 4 and shape[0] == 3 and shape[1] != 3:  # (3, T, H, W): one clip
        return " (one clip? add the batch dimension with video.unsqueeze(0))"
    if video.dim() == 4 and shape[:2] == (3, 3):
        return " (one clip (3, T, H, W) of 3 frames: video.unsqueeze(0); a batch of 3 images (B, 3, H, W): video.unsqueeze(2))"
    if video.dim() == 3 and shape[0] == 3:  # (3, H, W): one image
        return " (one image? video[None, :, None] gives (1, 3, 1, H, W))"
    if video.dim() == 4 and shape[-1] == 3:  # (T, H, W, 3) channels-last frames
        return " (channels-last frames (T, H, W, 3)? video.permute(3, 0, 1, 2).unsqueeze(0))"
    return ""
