"""The progress bar of the file commands (``encode``, ``decode``, ``reconstruct``, ``stats``): one unit on every
path, frames of the video.

Work that goes tile by tile (every tile passes over every frame) advances the bar by a tile's share of a frame
for each frame a tile passes, so the count, the rate and the time left are in frames of the video whether the
clip is tiled or not (a 120-frame clip shows ``/120 frame``, never frames x tiles); the bar names the tile it is
on and, when a command makes several passes over the frames, the pass (``[encode]``, ``[decode tokens]``,
``[compare]``...), each pass counting the frames again. tqdm draws it on stderr; ``enabled=False`` (``--quiet``)
draws nothing and still counts."""

from __future__ import annotations

from typing import Any


class FrameProgress:
    """A tqdm bar in frames of the video (see the module). Use as a context manager, or :meth:`close` it."""

    def __init__(self, total: int | None, desc: str, enabled: bool) -> None:
        from tqdm.auto import tqdm  # tqdm.auto probes for notebooks: only when a bar is made

        self.desc, self.total = desc, total
        self.bar = tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False, dynamic_ncols=True)
        self.tiles, self.tile = 1, None
        self.passed = 0  # frames passed in this pass, times the tiles they were passed by

    @property
    def frames(self) -> int:
        """Frames of the video done in this pass (whole frames: a tile-by-tile pass counts ``passed / tiles``)."""
        return self.passed // self.tiles

    def start_pass(self, name: str | None = None, tiles: int = 1) -> None:
        """Count a new pass over the frames from 0: ``name`` shown after the description, ``tiles`` run one after
        the other (each passing every frame)."""
        self.tiles, self.tile, self.passed = max(tiles, 1), None, 0
        self.bar.set_description(f"{self.desc} [{name}]" if name else self.desc, refresh=False)
        self.bar.set_postfix_str("", refresh=False)
        self.bar.reset()  # the same total; rate and time left start again (and it is drawn)

    def advance(self, frames: int, tile: int | None = None) -> None:
        """``frames`` more frames passed (by ``tile``, counted from 0, in a tile-by-tile pass)."""
        self.passed += frames
        if tile is not None and tile != self.tile and self.tiles > 1:  # shown at once: a tile can take minutes
            self.tile = tile
            self.bar.set_postfix_str(f"tile {tile + 1}/{self.tiles}")
        self.bar.update(self.frames - self.bar.n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> FrameProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
