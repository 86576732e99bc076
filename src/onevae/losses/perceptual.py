"""An LPIPS-style perceptual distance (the LPIPS "vgg" variant), weights from local files only.

The VGG16 trunk is written here in plain ``torch.nn`` (torchvision is not a dependency) with the layer indices
of ``torchvision.models.vgg16().features``, so a torchvision VGG16 state dict (``features.N.weight``) loads
as it is; an ``lpips``-package state dict (``net.sliceK.N.weight``, ``lin0.model.1.weight``) loads too.
With no weights file the term is off (there is no download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.files import read_weights_file
from ..errors import CheckpointError

# torchvision vgg16 "features": conv channel plan; "M" is a max-pool
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# features index after which LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_TAPS = (3, 8, 15, 22, 29)
_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS slices: features[0:4], [4:9], [9:16], [16:23], [23:30]
_SLICE_STARTS = (0, 4, 9, 16, 23)


def _vgg_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = item
    return nn.Sequential(*layers)


class _Lin(nn.Module):
    """LPIPS' 1x1 linear layer over channel-normalised feature differences (``lin0.model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(0.0), nn.Conv2d(channels, 1, 1, bias=False))
        nn.init.constant_(self.model[1].weight, 1.0 / channels)


class PerceptualLoss(nn.Module):
    """Mean over frames of the LPIPS-vgg distance; videos (B, 3, T, H, W) or images (B, 3, H, W) in [-1, 1]."""

    def __init__(self, max_frames: Optional[int] = None) -> None:
        super().__init__()
        self.features = _vgg_features()[: _TAPS[-1] + 1]
        self.lins = nn.ModuleList(_Lin(c) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.max_frames = max_frames
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":  # always frozen, always eval
        return super().train(False)

    @classmethod
    def from_files(cls, trunk_path: Union[str, Path], lin_path: Union[str, Path, None] = None, max_frames: Optional[int] = None) -> "PerceptualLoss":
        loss = cls(max_frames)
        loss._load_trunk(read_weights_file(trunk_path), str(trunk_path))
        if lin_path is not None:
            loss._load_lins(read_weights_file(lin_path), str(lin_path))
        return loss

    def _load_trunk(self, state: dict, source: str) -> None:
        state = state.get("state_dict", state)
        mapped = {}
        for key, value in state.items():
            if key.startswith("features."):
                mapped[key[len("features."):]] = value
            elif key.startswith("net.slice"):  # lpips naming: net.slice{k}.{global index}.weight
                _, _, rest = key.partition(".")
                mapped[rest.split(".", 1)[1]] = value
        own = self.features.state_dict()
        missing = [k for k in own if k not in mapped]
        bad = [k for k in own if k in mapped and mapped[k].shape != own[k].shape]
        if missing or bad:
            raise CheckpointError(f"{source}: not a VGG16 trunk (missing {missing[:3]}, shape mismatch {bad[:3]})")
        self.features.load_state_dict({k: mapped[k] for k in own})
        lins = {k: v for k, v in state.items() if k.startswith("lin")}
        if lins:
            self._load_lins(lins, source)

    def _load_lins(self, state: dict, source: str) -> None:
        for i, lin in enumerate(self.lins):
            key = f"lin{i}.model.1.weight"
            if key not in state or state[key].shape != lin.model[1].weight.shape:
                raise CheckpointError(f"{source}: no LPIPS linear layer {key} of shape {tuple(lin.model[1].weight.shape)}")
            lin.model[1].weight.data.copy_(state[key])

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out

    def forward(self, rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if rec.dim() == 5:  # fold time into the batch, optionally on a subset of frames
            t = rec.shape[2]
            frames = torch.arange(t, device=rec.device)
            if self.max_frames is not None and t > self.max_frames:
                frames = torch.linspace(0, t - 1, self.max_frames, device=rec.device).round().long()
            rec = rec.index_select(2, frames).transpose(1, 2).flatten(0, 1)
            ref = ref.index_select(2, frames).transpose(1, 2).flatten(0, 1)
        a = self._taps((rec.float() - self.shift) / self.scale)
        b = self._taps((ref.float() - self.shift) / self.scale)
        total = rec.new_zeros(())
        for fa, fb, lin in zip(a, b, self.lins):
            diff = (_unit(fa) - _unit(fb)).square()
            total = total + lin.model(diff).mean()
        return total


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


def build_perceptual_loss(weights_path: Optional[str], lin_path: Optional[str] = None, max_frames: Optional[int] = 4):
    """``(module or None, message)``: with no file the perceptual term is off and the message says so."""
    if not weights_path:
        return None, "perceptual loss off: no backbone weights file given (loss.perceptual.weights_path)"
    module = PerceptualLoss.from_files(weights_path, lin_path, max_frames)
    lin = f" + LPIPS linear layers {lin_path}" if lin_path else ""
    return module, f"perceptual loss on: VGG16 trunk {weights_path}{lin}"
