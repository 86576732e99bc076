"""``onevae decode`` of a flattened token sequence (what an autoregressive model generates)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import OneVAEError
from ..io.atomic import output_directory
from ..io.outputs import checked_output, written_names
from ..io.paths import directory_output

SEQUENCE_SUFFIXES = (".npy", ".pt", ".pth")
SEQUENCE_FPS = 24.0  # the frame rate of a decoded sequence without --fps (a bare sequence records none)


def add_sequence_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("flattened token sequences (docs/tokens.md order; one clip (N,) or a batch (B, N))")
    g.add_argument("--frames", type=int, default=None, help="frames of the clip the sequence encodes (with --size)")
    g.add_argument("--size", default=None, help="HxW image size of the clip, e.g. 256x256 (with --frames)")
    g.add_argument("--grid", default=None, help="t,h,w: latent frames and positions (the low-resolution grid for fe models)")


def is_sequence_request(args: argparse.Namespace) -> bool:
    return any(v is not None for v in (args.frames, args.size, args.grid)) or Path(args.tokens).suffix.lower() in SEQUENCE_SUFFIXES


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise OneVAEError(f"--size must be HxW, e.g. 256x256, got {text!r}") from None
    return height, width


def _parse_grid(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        t, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise OneVAEError(f"--grid must be t,h,w (three integers), got {text!r}") from None
    return t, h, w


def _outputs(output: str, directory: Path | None, batch: int, source: str, lossless: bool) -> list[Path]:
    """The files to write: ``-o`` itself for one clip, else clip-NNNNN.mp4 (.mkv when lossless) in ``directory``."""
    if directory is None:
        return [checked_output(output, source, lossless)]
    suffix = ".mkv" if lossless else ".mp4"
    return [checked_output(directory / f"clip-{i:05d}{suffix}", source, lossless) for i in range(batch)]


def run_decode_sequence(args: argparse.Namespace, load_model: Callable[[argparse.Namespace], Any]) -> int:
    """``load_model`` comes from onevae.cli.commands (which calls this module)."""
    from ..sequences import load_token_sequence

    sequence = load_token_sequence(args.tokens)
    batch = sequence.shape[0]
    directory = directory_output(args.output, batch, f"a batch of {batch} sequences needs")
    with output_directory(directory):  # created if needed; removed again if nothing was written into it
        return _decode_sequence(args, sequence, directory, load_model)


def _decode_sequence(args: argparse.Namespace, sequence, directory: Path | None,
                     load_model: Callable[[argparse.Namespace], Any]) -> int:
    from ..model_dir import model_fingerprint
    from ..sequences import require_tokens, sequence_grid, sequence_to_grids, write_sequence_videos

    size, grid_arg = _parse_size(args.size), _parse_grid(args.grid)
    outputs = _outputs(args.output, directory, sequence.shape[0], args.tokens, args.lossless)
    model = load_model(args)
    require_tokens(model)
    grid = sequence_grid(model.config, args.frames, size, grid_arg)
    sequence_to_grids(sequence, grid, model.config.vocab_size, args.tokens)  # checked before anything is written
    fps = SEQUENCE_FPS if args.fps is None else args.fps
    frames = write_sequence_videos(model, sequence, grid, outputs, fps, model_fingerprint(model), args.tokens,
                                   progress=not args.quiet, lossless=args.lossless)
    target = written_names(outputs[0], frames) if len(outputs) == 1 else Path(args.output)
    print(f"[onevae] {args.tokens} -> {target}: {len(outputs)} clip(s) of {frames} frames of {grid.height}x{grid.width} (HxW) at {fps:g} fps", file=sys.stderr)
    return 0
