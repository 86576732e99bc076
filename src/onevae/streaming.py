"""Streaming and tiling: the one owner of chunked execution, so that memory is bounded by a chunk of frames
and, with tiling, by a spatial tile, whatever the clip's length and frame size.

* :class:`StreamingEncoder` / :class:`StreamingDecoder`: a clip pushed piece by piece through the causal network,
  which keeps only its causal caches between pieces (frame 0 alone, then chunks, as the official code does);
* :class:`TiledEncoder` / :class:`TiledDecoder`: the same for a frame covered by overlapping tiles. Pushed frame
  by frame, every tile keeps its own caches (memory grows with the frame's area); a whole clip, or a source that
  can be read again (a file), goes tile by tile instead, one tile's caches alive at a time, so that memory is
  bounded by the tile whatever the frame size. Encoding blends the tiles' latents in latent space (tokens are the FSQ of the
  blended latents); decoding blends the tiles' frames in pixel space. Blending weights ramp smoothly across
  each overlap (smoothstep), so that tile edges (where the zero padding of a tile differs from the untiled network) fade out.

:func:`encoder_for` / :func:`decoder_for` pick the plain or the tiled version for a frame size (used by
:class:`~onevae.model.OneVAE` and :mod:`onevae.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .errors import InputError
from .latents import Grids, Latents, Tokens
from .nn.layers import StreamCache
from .padding import repeat_last_frame

if TYPE_CHECKING:  # the model imports this module
    from .model import OneVAE

# A tile must hold at least this many latent positions per side: smaller tiles are mostly border.
MIN_TILE_POSITIONS = 4
# The default tile of ``OneVAE.enable_tiling``: 384 px overlapping by 96 (``default_overlap``, a quarter) keeps a tiled
# 720p reconstruction within 0.05 dB of the untiled one (docs/benchmarks.md); diffusers' 256 / 64 was 0.07 dB off.
DEFAULT_TILE = 384


def check_frames(model: OneVAE, frames: torch.Tensor) -> None:
    """A piece of a stream (B, 3, t, H, W): any number of frames, a valid frame size, values in [-1, 1]."""
    model.check_video(frames, require_valid_size=False)
    model.check_size(1, *frames.shape[3:])


def same_stream(expected: tuple[int, int, int] | None, piece: tuple[int, int, int], unit: str) -> tuple[int, int, int]:
    """``piece``'s (B, H, W), refused unless it is ``expected`` (the stream's first piece's; None: this is the
    first): the causal caches, and a tiled stream's tiles, hold that batch and frame size."""
    if expected is not None and piece != expected:
        raise InputError(
            f"every piece of a stream must have the batch size and frame size of the stream's first piece: "
            f"(B, H, W) = {expected} ({unit}), got {piece}; start a new stream for another clip or size"
        )
    return piece


def _frame_shape(frames: torch.Tensor) -> tuple[int, int, int]:
    return frames.shape[0], frames.shape[3], frames.shape[4]  # (B, 3, t, H, W) -> (B, H, W)


class StreamingEncoder:
    """Encode a clip pushed piece by piece (any piece sizes), holding only causal caches between pieces.

    The first push must start with frame 0. Frames are processed as frame 0 alone, then chunks of
    ``chunk_frames`` (a multiple of the temporal factor), as the official code does. ``finish`` pads the last
    incomplete chunk by repeating the last frame and returns the number of frames added. With ``tokens=True``
    the pieces are :class:`Tokens`, otherwise :class:`Latents`. ``check_input=False`` skips the input checks
    for a caller that has made them already (the tiled encoder checks each whole frame once, not every tile).
    """

    def __init__(self, model: OneVAE, chunk_frames: int | None = None, tokens: bool = False, check_input: bool = True) -> None:
        tf = model.config.temporal_factor
        self.chunk = chunk_frames or tf
        if self.chunk % tf or self.chunk < 0:
            raise InputError(f"chunk_frames must be a positive multiple of the temporal factor {tf}, got {self.chunk}")
        if tokens:
            model.require_discrete()
        self.model = model
        self.tokens = tokens
        self.check_input = check_input
        self.cache = StreamCache()
        self.pending: torch.Tensor | None = None  # (B, 3, t, H, W) frames not yet encoded
        self.shape: tuple[int, int, int] | None = None  # (B, H, W) of the first piece
        self.started = False

    def push(self, frames: torch.Tensor) -> Grids | None:
        """Frames (B, 3, t, H, W) -> the latent frames completed so far, or None if none was."""
        if self.check_input:
            check_frames(self.model, frames)
            self.shape = same_stream(self.shape, _frame_shape(frames), "pixels")
        self.pending = frames if self.pending is None else torch.cat([self.pending, frames], dim=2)
        parts = []
        if not self.started:
            parts.append(self._encode(self.pending[:, :, :1]))
            self.pending = self.pending[:, :, 1:]
            self.started = True
        while self.pending.shape[2] >= self.chunk:
            parts.append(self._encode(self.pending[:, :, : self.chunk]))
            self.pending = self.pending[:, :, self.chunk :]
        return type(parts[0]).cat(parts) if parts else None

    def finish(self) -> tuple[Grids | None, int]:
        """Encode what is left, padded with copies of the last frame to a whole number of latent frames."""
        if self.pending is None or self.pending.shape[2] == 0:
            return None, 0
        added = (-self.pending.shape[2]) % self.model.config.temporal_factor
        grids = self._encode(repeat_last_frame(self.pending, added))
        self.pending = self.pending[:, :, :0]
        return grids, added

    def encode(self, video: torch.Tensor) -> Grids:
        """A whole valid clip (B, 3, T, H, W), streamed chunk by chunk."""
        return _encode_whole(self, video, self.chunk)

    @torch.no_grad()
    def _encode(self, frames: torch.Tensor) -> Grids:
        latents = self.model.model.encode_moments(frames, self.cache)[0]
        return self.model.latents_to_tokens(latents) if self.tokens else latents


class StreamingDecoder:
    """Decode latents piece by piece with causal caches (memory bounded by the piece). ``check_input=False``
    skips the latents' checks for a caller that has made them already (the tiled decoder checks the whole frame
    once, not every tile)."""

    def __init__(self, model: OneVAE, check_input: bool = True) -> None:
        self.model = model
        self.check_input = check_input
        self.cache = StreamCache()
        self.shape: tuple[int, int, int] | None = None  # (B, h, w) of the first piece

    @torch.no_grad()
    def push(self, latents: Grids) -> torch.Tensor:
        """The next latent frames of the clip (the first piece holds frame 0) -> their frames (B, 3, t, H, W).
        Tokens are turned into the decoder's latents first; both are checked as ``decode_latents`` checks them."""
        if isinstance(latents, Tokens):
            latents = self.model.tokens_to_latents(latents)
        elif self.check_input:
            latents = self.model.as_latents(latents)
        if self.check_input:
            self.shape = same_stream(self.shape, (latents.batch_size, *latents.spatial_size), "latent positions")
        return self.model.model.decode(latents.to(self.model.device), self.cache)

    def iter_decode(self, latents: Grids, chunk_latents: int = 1) -> Iterator[torch.Tensor]:
        """Yield decoded frames piece by piece: frame 0 first, then ``chunk_latents`` latent frames at a time."""
        for piece in latents.chunks(chunk_latents):
            yield self.push(piece)

    def decode(self, latents: Grids, chunk_latents: int = 1) -> torch.Tensor:
        """The whole clip (B, 3, T, H, W), decoded ``chunk_latents`` latent frames at a time."""
        return torch.cat(list(self.iter_decode(latents, chunk_latents)), dim=2)


def _clip_pieces(video: torch.Tensor, chunk: int) -> Iterator[torch.Tensor]:
    """A whole clip (B, 3, T, H, W) as the encoder takes it: frame 0, then chunks of ``chunk`` frames."""
    yield video[:, :, :1]
    for i in range(1, video.shape[2], chunk):
        yield video[:, :, i : i + chunk]


def _encode_whole(encoder: StreamingEncoder | TiledEncoder, video: torch.Tensor, chunk: int) -> Grids:
    parts = [encoder.push(piece) for piece in _clip_pieces(video, chunk)]
    parts.append(encoder.finish()[0])  # a last chunk shorter than the chunk (no padding: T is valid)
    present = [p for p in parts if p is not None]
    return type(present[0]).cat(present)


# ------------------------------------------------------------------------------------------------ tiling
@dataclass(frozen=True)
class Tiling:
    """Square tiles of ``tile`` pixels, neighbours sharing ``overlap`` pixels (both multiples of the model's
    spatial factor)."""

    tile: int = 256
    overlap: int = 64

    def check(self, spatial_factor: int) -> None:
        """Refuse, with one clear message, tiles the model cannot take or that cannot blend."""
        sf = spatial_factor
        if self.tile % sf or self.overlap % sf:
            raise InputError(f"tile ({self.tile}) and tile overlap ({self.overlap}) must be multiples of the spatial factor {sf}")
        if self.tile < MIN_TILE_POSITIONS * sf:
            raise InputError(f"tile {self.tile} is too small: at least {MIN_TILE_POSITIONS * sf} pixels ({MIN_TILE_POSITIONS} latent positions) for this model")
        if not 0 <= self.overlap < self.tile:
            raise InputError(f"tile overlap must lie in [0, tile), got {self.overlap} for tile {self.tile}")

    def applies(self, height: int, width: int) -> bool:
        """True when a frame of this size needs more than one tile."""
        return height > self.tile or width > self.tile

    def covered_area(self, height: int, width: int) -> int:
        """Pixels that the tiles of a (height, width) frame hold together, overlaps counted once per tile (up to
        about 2x the frame's area): what the causal caches of every tile, kept frame by frame, scale with."""
        rows = len(tile_starts(height, self.tile, self.overlap)) * min(self.tile, height)
        return rows * len(tile_starts(width, self.tile, self.overlap)) * min(self.tile, width)


def default_overlap(tile: int, spatial_factor: int) -> int:
    """The overlap used when none is given: a quarter of the tile, rounded down to the spatial factor."""
    return tile // 4 // spatial_factor * spatial_factor


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``size`` (all in the same unit); the last tile ends at ``size``."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def blend_ramp(length: int, start: int, size: int, overlap: int) -> torch.Tensor:
    """Weights (length,) of a tile at ``start`` in a span of ``size``: smooth ramps (smoothstep of a linear
    ramp) across the ``overlap`` at its inner edges, never 0 (a position covered by one tile only keeps its
    value), 1 elsewhere. Smoothstep rather than linear: the weights have no kink where a tile starts or ends,
    which is where a linear blend left a visible line (seam figure on a smooth gradient at 720p: 1.49x the
    untiled reconstruction's with linear ramps; docs/benchmarks.md)."""
    weights = torch.ones(length)
    ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    n = min(overlap, length)
    if start > 0 and n:
        weights[:n] = torch.minimum(weights[:n], ramp[:n])
    if start + length < size and n:
        weights[-n:] = torch.minimum(weights[-n:], ramp[:n].flip(0))
    return weights


@dataclass(frozen=True)
class _Box:
    top: int
    left: int
    height: int
    width: int


def _boxes(height: int, width: int, tile: int, overlap: int) -> list[_Box]:
    tops, lefts = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    return [_Box(t, left, min(tile, height), min(tile, width)) for t in tops for left in lefts]


class _Blender:
    """Accumulates weighted tiles of a (…, H, W) canvas and returns the normalised blend. ``canvas``: a
    preallocated float32 tensor to accumulate in (e.g. memory-mapped from a file), normalised in place."""

    def __init__(self, height: int, width: int, overlap: int, canvas: torch.Tensor | None = None) -> None:
        self.height, self.width, self.overlap = height, width, overlap
        self.canvas = canvas
        self.weight = torch.zeros(height, width)

    def add(self, piece: torch.Tensor, top: int, left: int, start_frame: int | None = None) -> None:
        """Add a tile's piece at (top, left). ``start_frame``: the piece (B, C, t, h, w) holds the tile's frames
        from there on (the canvas is then preallocated with every frame); the tile's weight counts once, with
        its first frames."""
        h, w = piece.shape[-2:]
        ramp = blend_ramp(h, top, self.height, self.overlap)[:, None] * blend_ramp(w, left, self.width, self.overlap)[None, :]
        if self.canvas is None:
            self.canvas = piece.new_zeros(*piece.shape[:-2], self.height, self.width, dtype=torch.float32)
        target = self.canvas[..., top : top + h, left : left + w]
        if start_frame is not None:
            target = target[:, :, start_frame : start_frame + piece.shape[2]]
        target += (piece.float() * ramp.to(piece.device)).to(self.canvas.device)
        if not start_frame:
            self.weight[top : top + h, left : left + w] += ramp

    def result(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.canvas / self.weight.to(self.canvas.device)).to(dtype)

    def normalise_in_place(self) -> torch.Tensor:
        """The blend, computed in the canvas itself one frame at a time (no full-size temporary)."""
        weight = self.weight.to(self.canvas.device)
        for t in range(self.canvas.shape[2]):  # canvas: (B, C, T, H, W)
            self.canvas[:, :, t] /= weight
        return self.canvas


class _NothingRead(Exception):
    """A re-readable source yielded no frame (:meth:`TiledEncoder.encode_rereading`)."""


class TiledEncoder:
    """:class:`StreamingEncoder` over overlapping tiles of (height, width) frames; latents blended."""

    def __init__(self, model: OneVAE, tiling: Tiling, height: int, width: int, chunk_frames: int | None = None, tokens: bool = False) -> None:
        tiling.check(model.config.spatial_factor)
        if tokens:
            model.require_discrete()
        self.model, self.tiling, self.tokens = model, tiling, tokens
        self.height, self.width = height, width
        self.boxes = _boxes(height, width, tiling.tile, tiling.overlap)
        self.encoders = [StreamingEncoder(model, chunk_frames, check_input=False) for _ in self.boxes]
        self.chunk = self.encoders[0].chunk
        self.shape: tuple[int, int, int] | None = None  # (B, H, W) of the pushed pieces

    def _check(self, frames: torch.Tensor, shape: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """Whole frames (B, 3, t, H, W) of this encoder's (height, width) (once per frame, not once per tile)."""
        check_frames(self.model, frames)
        return same_stream(shape or (frames.shape[0], self.height, self.width), _frame_shape(frames), "pixels")

    def push(self, frames: torch.Tensor) -> Grids | None:
        """Frames (B, 3, t, H, W) -> the blended latent frames completed so far, or None. Frame by frame, every
        tile keeps its causal caches (memory grows with the frame's area); :meth:`encode` does not."""
        self.shape = self._check(frames, self.shape)
        pieces = [enc.push(frames[..., b.top : b.top + b.height, b.left : b.left + b.width]) for enc, b in zip(self.encoders, self.boxes)]
        return None if pieces[0] is None else self._blended(pieces)

    def finish(self) -> tuple[Grids | None, int]:
        results = [enc.finish() for enc in self.encoders]
        pieces, added = [r[0] for r in results], results[0][1]
        return (None if pieces[0] is None else self._blended(pieces)), added

    def encode(self, video: torch.Tensor) -> Grids:
        """A whole clip (B, 3, T, H, W), tile by tile: each tile streams the whole clip through its own encoder,
        whose caches are dropped before the next tile starts, so memory holds one tile's caches and the
        (small) blended latents, whatever the frame size."""
        return self.encode_rereading(lambda: _clip_pieces(video, self.chunk))[0]

    def encode_rereading(self, read: Callable[[], Iterable[torch.Tensor]]) -> tuple[Grids | None, int, int]:
        """Tile by tile over a source that can be read again (a video file): ``read()`` yields the clip's frames
        (B, 3, t, H, W) from the start each time it is called, once per tile. Memory holds one tile's caches,
        one piece of frames and the latents, whatever the frame size; the price is reading the source once per
        tile. Returns (grids, frames read, frames added to complete the last chunk); (None, 0, 0) when the
        source yields no frame."""
        counts = {"frames": 0, "added": 0}
        shape = None

        def tile_latents() -> Iterator[Latents]:
            nonlocal shape
            for index, b in enumerate(self.boxes):
                encoder = StreamingEncoder(self.model, self.chunk, check_input=False)
                pieces, frames = [], 0
                for window in read():
                    if index == 0:  # every frame once, not once per tile
                        shape = self._check(window, shape)
                    frames += window.shape[2]
                    pieces.append(encoder.push(window[..., b.top : b.top + b.height, b.left : b.left + b.width]))
                tail, added = encoder.finish()
                present = [p for p in (*pieces, tail) if p is not None]
                if not present:
                    raise _NothingRead
                counts.update(frames=frames, added=added)
                yield type(present[0]).cat(present)

        try:
            grids = self._blended(tile_latents())
        except _NothingRead:
            return None, 0, 0
        return grids, counts["frames"], counts["added"]

    def _blended(self, pieces: Iterable[Latents]) -> Grids:
        """Tiles' latents (in the order of ``self.boxes``), blended one by one into the frame's latents."""
        sf = self.model.config.spatial_factor
        rest = first = None  # (blender, pixels per latent position); the first frame's grid is twice as fine
        for piece, box in zip(pieces, self.boxes):
            if rest is None:
                rest, dtype = self._blender(sf), piece.rest.dtype
                first = None if piece.first is None else self._blender(sf // 2)
            for target, grid in ((rest, piece.rest), (first, piece.first)):
                if target is not None:
                    blender, p = target
                    blender.add(grid, box.top // p, box.left // p)
        latents = Latents(rest=rest[0].result(dtype), first=None if first is None else first[0].result(dtype))
        return self.model.latents_to_tokens(latents) if self.tokens else latents

    def _blender(self, pixels_per_position: int) -> tuple[_Blender, int]:
        p = pixels_per_position
        return _Blender(self.height // p, self.width // p, self.tiling.overlap // p), p


class TiledDecoder:
    """:class:`StreamingDecoder` over overlapping latent tiles; frames blended in pixel space."""

    def __init__(self, model: OneVAE, tiling: Tiling, latent_height: int, latent_width: int) -> None:
        sf = model.config.spatial_factor
        tiling.check(sf)
        self.model, self.tiling, self.sf = model, tiling, sf
        self.latent_height, self.latent_width = latent_height, latent_width
        self.boxes = _boxes(latent_height, latent_width, tiling.tile // sf, tiling.overlap // sf)
        self.decoders = [StreamingDecoder(model, check_input=False) for _ in self.boxes]
        self.shape: tuple[int, int, int] | None = None  # (B, h, w) of the pushed pieces

    def _check(self, latents: Grids, shape: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """Latents (or tokens) of this decoder's latent (height, width), checked once for the whole frame."""
        if not isinstance(latents, Tokens):  # tokens are checked as each tile's are turned into latents
            self.model.as_latents(latents)
        expected = shape or (latents.batch_size, self.latent_height, self.latent_width)
        return same_stream(expected, (latents.batch_size, *latents.spatial_size), "latent positions")

    @torch.no_grad()
    def push(self, latents: Grids) -> torch.Tensor:
        """The next latent frames (or tokens) of the clip -> their frames (B, 3, t, H, W), blended."""
        self.shape = self._check(latents, self.shape)
        sf = self.sf
        blender = _Blender(self.latent_height * sf, self.latent_width * sf, self.tiling.overlap)
        out_dtype = None
        for decoder, b in zip(self.decoders, self.boxes):
            frames = decoder.push(latents.crop(b.top, b.left, b.height, b.width))  # (B, 3, t, h*sf, w*sf)
            out_dtype = frames.dtype
            blender.add(frames, b.top * sf, b.left * sf)
        return blender.result(out_dtype)

    def iter_decode(self, latents: Grids, chunk_latents: int = 1) -> Iterator[torch.Tensor]:
        """Frames piece by piece, every tile keeping its causal caches (memory grows with the frame's area)."""
        for piece in latents.chunks(chunk_latents):
            yield self.push(piece)

    def output_shape(self, latents: Grids) -> tuple[int, int, int, int, int]:
        """(B, 3, T, H, W) of the frames ``latents`` decode to (causal: latent frame 0 gives one frame)."""
        frames = 1 + (latents.num_frames - 1) * self.model.config.temporal_factor
        return (latents.rest.shape[0], 3, frames, self.latent_height * self.sf, self.latent_width * self.sf)

    @torch.no_grad()
    def decode(self, latents: Grids, chunk_latents: int = 1, canvas: torch.Tensor | None = None,
               on_piece: Callable[[int, int, int], None] | None = None) -> torch.Tensor:
        """The whole clip (B, 3, T, H, W), tile by tile: each tile decodes every latent frame with its own
        decoder, whose caches are dropped before the next tile, and is blended into the output; memory holds
        the output, one tile's frames and one tile's caches, whatever the frame size. ``canvas``: a float32
        (B, 3, T, H, W) tensor to blend into instead (memory-mapped from a file for clips too long to hold),
        returned normalised. ``on_piece(tile, first frame, frames)`` is told of each piece blended (progress)."""
        self._check(latents, None)
        sf = self.sf
        given = canvas is not None
        if not given:
            canvas = torch.zeros(self.output_shape(latents), device=self.model.device)
        blender = _Blender(self.latent_height * sf, self.latent_width * sf, self.tiling.overlap, canvas)
        for index, b in enumerate(self.boxes):
            start = 0
            for piece in StreamingDecoder(self.model, check_input=False).iter_decode(latents.crop(b.top, b.left, b.height, b.width), chunk_latents):
                blender.add(piece, b.top * sf, b.left * sf, start_frame=start)  # piece: (B, 3, t, h*sf, w*sf)
                if on_piece is not None:
                    on_piece(index, start, piece.shape[2])
                start += piece.shape[2]
        blended = blender.normalise_in_place()
        return blended if given else blended.to(self.model.decode_dtype)


# ------------------------------------------------------------------------------------------------ choice
def encoder_for(
    model: OneVAE, height: int, width: int, chunk_frames: int | None = None, tokens: bool = False, tiling: Tiling | None = None,
) -> StreamingEncoder | TiledEncoder:
    """The streaming encoder for frames of (height, width): tiled when ``tiling`` (default: the model's, see
    ``OneVAE.enable_tiling``) is set and the frame is larger than a tile."""
    tiling = tiling or model.tiling
    if tiling is not None and tiling.applies(height, width):
        return TiledEncoder(model, tiling, height, width, chunk_frames, tokens)
    return StreamingEncoder(model, chunk_frames, tokens)


def decoder_for(model: OneVAE, height: int, width: int, tiling: Tiling | None = None) -> StreamingDecoder | TiledDecoder:
    """The streaming decoder for frames of (height, width) pixels: tiled as :func:`encoder_for` is."""
    tiling = tiling or model.tiling
    if tiling is not None and tiling.applies(height, width):
        sf = model.config.spatial_factor
        return TiledDecoder(model, tiling, height // sf, width // sf)
    return StreamingDecoder(model)


def tile_borders(size: int, tiling: Tiling) -> list[int]:
    """Pixel lines where a tile of ``tiling`` starts or ends inside a span of ``size`` (for seam checks)."""
    starts = tile_starts(size, tiling.tile, tiling.overlap)
    return sorted({s for s in starts if s > 0} | {s + tiling.tile for s in starts if s + tiling.tile < size})
