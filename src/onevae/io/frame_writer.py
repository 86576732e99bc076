"""What every writer of decoded frames shares: a context manager that takes frames in any accepted layout, checks
that they keep one size, and appears whole on ``close`` or not at all on ``abort`` (or an exception)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, OneVAEError
from .video import as_uint8_frames


class FrameWriter:
    """Base of :class:`~onevae.io.writer.VideoWriter` and :class:`~onevae.io.image_writer.ImageWriter`: subclasses
    set ``path``, call ``super().__init__()`` and implement ``_start`` (the first frames' size is known),
    ``_write`` (uint8 (T, H, W, 3)), ``close`` and ``abort``."""

    path: Path

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None  # (H, W) of the frames given
        self.closed = False

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frames: np.ndarray | torch.Tensor) -> None:
        """Append frames: uint8 (T, H, W, 3) / (H, W, 3), or a float tensor (3, T, H, W) / (1, 3, T, H, W) in [-1, 1]."""
        if self.closed:
            raise OneVAEError(f"{self.path}: the writer is already closed")
        rgb = as_uint8_frames(frames)  # (T, H, W, 3) uint8
        if self.size is None:
            self.size = rgb.shape[1:3]
            self._start(*self.size)
        elif rgb.shape[1:3] != self.size:
            raise InputError(f"{self.path}: frames of size {rgb.shape[1:3]} after frames of size {self.size}")
        self._write(rgb)

    def _start(self, height: int, width: int) -> None:
        raise NotImplementedError

    def _write(self, rgb: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError
