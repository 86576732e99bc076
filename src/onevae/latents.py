"""The grids that represent a clip: continuous :class:`Latents` and discrete :class:`Tokens`.

A clip of ``T = 1 + k*tf`` frames becomes ``1 + k`` latent frames. Everything about the first-frame-high-res
("fe") option of OneVAE's high-compression models lives here and in two places of the network
(:class:`onevae.nn.vae.Encoder3d` takes frame 0's features before the last spatial down-sampling;
:class:`onevae.nn.vae.Decoder3d` decodes them back at that resolution):

* ordinary models: ``rest`` holds all latent frames, frame 0 included; ``first`` is ``None``;
* fe models: ``first`` holds latent frame 0 at twice the spatial resolution of ``rest``, which holds the
  later latent frames (none for an image).

A piece of a stream (a chunk after the first one) has ``first=None`` for both kinds of model. Files and the
official API store the grids as a list, ``[first, rest]`` (names "first_frame", "rest") or ``[rest]``
("all"): :meth:`Grids.to_list` / :meth:`Grids.from_list`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

import torch

from .errors import InputError

G = TypeVar("G", bound="Grids")


@dataclass(frozen=True, eq=False)
class Grids:
    """Grids of one clip (or of one piece of a stream). Subclasses fix the layout and so the time axis.

    ``a == b`` is True iff both are of the same class and each grid (``rest``, and ``first`` or its absence) has
    the same shape, dtype and values (:func:`torch.equal`, on any devices: int32 tokens never equal int64 ones).
    Grids are not hashable: their tensors can change in place, and a hash could not follow their values."""

    rest: torch.Tensor
    first: torch.Tensor | None = None

    TIME_DIM: ClassVar[int] = 2
    HEIGHT_DIM: ClassVar[int] = 3  # the width follows it
    LAYOUT: ClassVar[str] = ""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        pairs = ((self.rest, other.rest), (self.first, other.first))
        return all(a is b if a is None or b is None else a.dtype == b.dtype and torch.equal(a, b.to(a.device)) for a, b in pairs)

    __hash__ = None  # type: ignore[assignment]  # see the class docstring

    # ------------------------------------------------------------------------------------ list form
    @classmethod
    def from_list(cls: type[G], grids: Sequence[torch.Tensor], first_frame_highres: bool) -> G:
        """``[first, rest]`` (fe models) or ``[all]`` -> grids; refuses a list of the wrong length."""
        expected = 2 if first_frame_highres else 1
        if not isinstance(grids, (list, tuple)) or len(grids) != expected:
            names = "[first_frame, rest]" if first_frame_highres else "[all]"
            raise InputError(f"expected a list of {expected} grid(s) {names} of shape {cls.LAYOUT}")
        for grid in grids:
            if not isinstance(grid, torch.Tensor):
                raise InputError(f"grids must be tensors of shape {cls.LAYOUT}, got {type(grid).__name__}")
        return cls(rest=grids[-1], first=grids[0] if first_frame_highres else None)

    def to_list(self) -> list[torch.Tensor]:
        """The stored order: ``[first, rest]`` or ``[rest]``."""
        return [self.rest] if self.first is None else [self.first, self.rest]

    @staticmethod
    def names(first_frame_highres: bool) -> list[str]:
        """Names of the grids of :meth:`to_list` (as written in token files)."""
        return ["first_frame", "rest"] if first_frame_highres else ["all"]

    # ------------------------------------------------------------------------------------ shape
    @property
    def batch_size(self) -> int:
        return self.rest.shape[0]

    @property
    def spatial_size(self) -> tuple[int, int]:
        """(h, w) of ``rest``: latent positions per frame (the first-frame grid has twice as many per side)."""
        return self.rest.shape[self.HEIGHT_DIM], self.rest.shape[self.HEIGHT_DIM + 1]

    @property
    def num_frames(self) -> int:
        """Latent frames held (the high-res first frame counts as one)."""
        return self.rest.shape[self.TIME_DIM] + (self.first is not None)

    # ------------------------------------------------------------------------------------ transforms
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor], into: type[G] | None = None) -> G:
        """Apply ``fn`` to every grid; ``into`` gives the result's type (e.g. latents -> tokens)."""
        kind = into or type(self)
        return kind(rest=fn(self.rest), first=None if self.first is None else fn(self.first))

    def to(self: G, *args, **kwargs) -> G:
        return self.map(lambda g: g.to(*args, **kwargs))

    def crop(self: G, top: int, left: int, height: int, width: int) -> G:
        """A spatial window, in ``rest`` positions (the first-frame grid's window is twice as large)."""
        def window(grid: torch.Tensor, scale: int) -> torch.Tensor:
            index = [slice(None)] * grid.dim()
            index[self.HEIGHT_DIM] = slice(scale * top, scale * (top + height))
            index[self.HEIGHT_DIM + 1] = slice(scale * left, scale * (left + width))
            return grid[tuple(index)]

        return type(self)(rest=window(self.rest, 1), first=None if self.first is None else window(self.first, 2))

    def frames(self: G, start: int, stop: int) -> G:
        """Latent frames ``[start, stop)`` of ``rest`` (no first-frame grid)."""
        index = [slice(None)] * self.rest.dim()
        index[self.TIME_DIM] = slice(start, stop)
        return replace(self, rest=self.rest[tuple(index)], first=None)

    def chunks(self: G, chunk: int) -> Iterator[G]:
        """Pieces for causal decoding: the first holds latent frame 0 (the high-res grid for fe models), then
        ``chunk`` latent frames at a time."""
        if chunk < 1:
            raise InputError(f"chunks need at least one latent frame each, got {chunk}")
        if self.first is not None:
            yield replace(self, rest=self.frames(0, 0).rest)
            start = 0
        else:
            yield self.frames(0, 1)
            start = 1
        length = self.rest.shape[self.TIME_DIM]
        for i in range(start, length, chunk):
            yield self.frames(i, i + chunk)

    @classmethod
    def cat(cls: type[G], parts: Sequence[G]) -> G:
        """Join consecutive pieces of one clip along time; only the first piece may hold a first-frame grid."""
        if not parts:
            raise InputError("no grids to join")
        if any(p.first is not None for p in parts[1:]):
            raise InputError("only the first piece of a clip can hold the first-frame grid")
        rest = torch.cat([p.rest for p in parts], dim=cls.TIME_DIM)
        return cls(rest=rest, first=parts[0].first)


@dataclass(frozen=True, eq=False)  # eq=False: Grids.__eq__, not the dataclass's elementwise one
class Latents(Grids):
    """Continuous latent grids, ``(B, z_dim, t, h, w)``; ``first`` is ``(B, z_dim, 1, 2h, 2w)``."""

    TIME_DIM: ClassVar[int] = 2
    HEIGHT_DIM: ClassVar[int] = 3
    LAYOUT: ClassVar[str] = "(B, z_dim, t, h, w)"


@dataclass(frozen=True, eq=False)  # eq=False: Grids.__eq__, not the dataclass's elementwise one
class Tokens(Grids):
    """Token grids, integer ``(B, t, h, w, K)`` (K tokens per position); ``first`` is ``(B, 1, 2h, 2w, K)``."""

    TIME_DIM: ClassVar[int] = 1
    HEIGHT_DIM: ClassVar[int] = 2
    LAYOUT: ClassVar[str] = "(B, t, h, w, K)"
