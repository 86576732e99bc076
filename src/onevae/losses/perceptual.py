"""An LPIPS-style perceptual distance (the LPIPS "vgg" variant), weights from local files only.

The VGG16 trunk is written here in plain ``torch.nn`` (torchvision is not a dependency) with the layer indices
of ``torchvision.models.vgg16().features``, so a torchvision VGG16 state dict (``features.N.weight``) loads as
it is; a state dict of the ``lpips`` package's ``LPIPS`` module (``net.sliceK.N.weight``, ``linK.model.1.weight``)
loads too, and so does the ``lpips`` ``weights/v0.1/vgg.pth`` file of linear layers (``linK.model.1.weight``).

Distance, as in LPIPS: inputs in [-1, 1] go through ``(x - shift) / scale``; features at relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3 are unit-normalised over channels; their squared difference goes through a 1x1
"lin" layer, is averaged over space, and the five layers are summed. Without a file of linear layers every lin
weight is 1, i.e. the plain sum over channels of the ``lpips`` package's ``lpips=False`` baseline.
With no weights file at all the term is off (there is no download).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from ..checkpoints.files import read_weights_file
from ..errors import CheckpointError, InputError
from ..io.paths import PathLike

# torchvision vgg16 "features": conv channel plan; "M" is a max-pool
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# features index of the ReLUs that LPIPS taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_TAPS = (3, 8, 15, 22, 29)
_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS' input scaling for inputs in [-1, 1] (lpips.ScalingLayer)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features[:30]`` (up to relu5_3), same indices, no weights."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU()]
            in_ch = item
    return nn.Sequential(*layers)


class LinLayer(nn.Module):
    """LPIPS' 1x1 linear layer over squared feature differences; ``model.1.weight`` as in ``lpips``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(0.0), nn.Conv2d(channels, 1, 1, bias=False))
        nn.init.ones_(self.model[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PerceptualLoss(nn.Module):
    """LPIPS-vgg distance, mean over images (and frames); always frozen and in eval mode.

    ``forward(rec, ref)`` takes videos (B, 3, T, H, W) (T folded into the batch; at most ``max_frames``
    evenly spaced frames per clip when set) or images (B, 3, H, W), values in [-1, 1]; returns a scalar.
    Gradients reach the inputs, never the (frozen) weights.
    """

    def __init__(self, max_frames: int | None = None) -> None:
        super().__init__()
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames must be at least 1 (or None for all frames), got {max_frames}")
        self.features = vgg16_features()
        self.lins = nn.ModuleList(LinLayer(c) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.max_frames = max_frames
        self.lins_loaded = False
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Stays in eval mode whatever the caller asks (frozen loss network)."""
        return super().train(False)

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_files(cls, trunk_path: PathLike, lin_path: PathLike | None = None, max_frames: int | None = None) -> PerceptualLoss:
        """Trunk from a torchvision VGG16 or a full ``lpips`` state dict (.pth/.pt via ``weights_only=True``,
        or .safetensors); linear layers from ``lin_path``, else from the trunk file when it has them."""
        loss = cls(max_frames)
        trunk = _unwrap(read_weights_file(trunk_path))
        loss.load_trunk(trunk, str(trunk_path))
        if lin_path is not None:
            loss.load_lins(_unwrap(read_weights_file(lin_path)), str(lin_path))
        elif any(key.startswith("lin0.") for key in trunk):
            loss.load_lins(trunk, str(trunk_path))
        return loss

    def load_trunk(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Load VGG16 conv weights named ``features.N.*`` (torchvision) or ``net.sliceK.N.*`` (lpips)."""
        mapped = _trunk_keys(state)
        own = self.features.state_dict()
        if not mapped:
            hint = "; it holds LPIPS linear layers only, pass it as lin_path" if any(k.startswith("lin0.") for k in state) else ""
            raise CheckpointError(f"{source} holds no VGG16 trunk weights (expected features.N.weight or net.sliceK.N.weight keys){hint}")
        missing = [k for k in own if k not in mapped]
        if missing:
            raise CheckpointError(f"{source} is not a complete VGG16 trunk: {len(missing)} tensor(s) missing, e.g. features.{missing[0]}")
        for key, value in own.items():
            if tuple(mapped[key].shape) != tuple(value.shape):
                raise CheckpointError(f"{source}: features.{key} has shape {tuple(mapped[key].shape)}, a VGG16 trunk needs {tuple(value.shape)}")
        self.features.load_state_dict({k: mapped[k].float() for k in own})

    def load_lins(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Load the five LPIPS linear layers ``linK.model.1.weight`` (K = 0..4)."""
        for k, lin in enumerate(self.lins):
            key, target = f"lin{k}.model.1.weight", lin.model[1].weight
            if key not in state:
                raise CheckpointError(f"{source} has no LPIPS linear layer {key}")
            if tuple(state[key].shape) != tuple(target.shape):
                raise CheckpointError(f"{source}: {key} has shape {tuple(state[key].shape)}, expected {tuple(target.shape)}")
            with torch.no_grad():
                target.copy_(state[key].float())
        self.lins_loaded = True

    # ------------------------------------------------------------------------------------------ distance
    def distances(self, rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS distance, (N,); videos give N = B * frames used."""
        rec, ref = self._images(rec), self._images(ref)  # (N, 3, H, W)
        feats_rec, feats_ref = self._taps(self._scaled(rec)), self._taps(self._scaled(ref))
        total = rec.new_zeros(rec.shape[0], dtype=torch.float32)
        for fa, fb, lin in zip(feats_rec, feats_ref, self.lins):
            diff = (_unit(fa) - _unit(fb)).square()  # (N, C, h, w)
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total

    def forward(self, rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if rec.shape != ref.shape:
            raise InputError(f"perceptual loss needs inputs of the same shape, got {tuple(rec.shape)} and {tuple(ref.shape)}")
        return self.distances(rec, ref).mean()

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # (B, 3, T, H, W) -> (B * T', 3, H, W)
            x = x.index_select(2, self._frames(x.shape[2], x.device))
            x = x.transpose(1, 2).flatten(0, 1)
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputError(f"perceptual loss expects (B, 3, T, H, W) videos or (B, 3, H, W) images, got {tuple(x.shape)}")
        return x.float()

    def _frames(self, t: int, device: torch.device) -> torch.Tensor:
        if self.max_frames is None or t <= self.max_frames:
            return torch.arange(t, device=device)
        return torch.linspace(0, t - 1, self.max_frames, device=device).round().long()

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out


def _unwrap(state: Mapping) -> Mapping[str, torch.Tensor]:
    """A state dict saved inside ``{"state_dict": ...}`` or ``{"model": ...}``."""
    for key in ("state_dict", "model"):
        if key in state and isinstance(state[key], Mapping):
            return state[key]
    return state


def _trunk_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``features.N.weight`` and ``net.sliceK.N.weight`` -> ``N.weight``; other keys (classifier.*) dropped."""
    mapped = {}
    for key, value in state.items():
        if key.startswith("features."):
            mapped[key[len("features."):]] = value
        elif key.startswith("net.slice"):  # lpips: net.slice{k}.{torchvision index}.{weight|bias}
            mapped[key.split(".", 2)[2]] = value
    return mapped


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit length over channels, as ``lpips.normalize_tensor``."""
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


def build_perceptual_loss(
    weights_path: PathLike | None, lin_path: PathLike | None = None, max_frames: int | None = 4
) -> tuple[PerceptualLoss | None, str]:
    """``(module or None, message)``: with no weights file the perceptual term is off and the message says so."""
    if not weights_path:
        return None, "perceptual loss off: no backbone weights file given (perceptual.weights_path)"
    module = PerceptualLoss.from_files(weights_path, lin_path, max_frames)
    if module.lins_loaded:
        lins = f"LPIPS linear layers from {lin_path or weights_path}"
    else:
        lins = "no LPIPS linear layers (unit weights: the lpips=False baseline)"
    frames = "all frames" if max_frames is None else f"at most {max_frames} frames per clip"
    return module, f"perceptual loss on: VGG16 trunk {weights_path}, {lins}, {frames}"
