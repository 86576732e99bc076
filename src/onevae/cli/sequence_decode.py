"""``onevae decode`` of what a generative model generates: a flattened token sequence (an autoregressive model) or
a latent tensor (a diffusion model)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import OneVAEError
from ..io.atomic import output_directory
from ..io.outputs import checked_output, video_suffix, written_names
from ..io.paths import directory_output

SEQUENCE_SUFFIXES = (".npy", ".pt", ".pth")
SEQUENCE_FPS = 24.0  # the frame rate of a decoded sequence without --fps (a bare sequence records none)


def add_sequence_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("generated tokens and latents: a flattened token sequence (docs/tokens.md order; one clip "
                                  "(N,) or a batch (B, N)), or a float latent tensor (z, t, h, w) / (B, z, t, h, w)")
    g.add_argument("--frames", type=int, default=None, help="frames of the clip the sequence encodes (with --size)")
    g.add_argument("--size", default=None, help="HxW image size of the clip, e.g. 256x256 (with --frames)")
    g.add_argument("--grid", default=None, help="t,h,w: latent frames and positions (the low-resolution grid for fe models)")
    g.add_argument("--normalized-latents", action="store_true", help="the latent tensor is (z - mean) / std with the "
                   "model's latent statistics (what a diffusion model trained on normalised latents generates)")


def is_sequence_request(args: argparse.Namespace) -> bool:
    """Anything but a token file written by onevae encode: a sequence suffix, grid options, or a readable
    .safetensors file without onevae's metadata (an unreadable one is refused as a token file)."""
    from ..io.tokens import has_onevae_metadata

    path = Path(args.tokens)
    if any(v is not None for v in (args.frames, args.size, args.grid)):
        return True
    suffix = path.suffix.lower()
    return suffix in SEQUENCE_SUFFIXES or (suffix == ".safetensors" and path.is_file() and has_onevae_metadata(path) is False)


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
    return [checked_output(directory / f"clip-{i:05d}{video_suffix(lossless)}", source, lossless) for i in range(batch)]


def run_decode_sequence(args: argparse.Namespace, load_model: Callable[[argparse.Namespace], Any]) -> int:
    """``load_model`` comes from onevae.cli.commands (which calls this module)."""
    from ..sequences import as_sequence_batch, load_generated

    generated = load_generated(args.tokens)
    if generated.is_floating_point():
        return _run_decode_latents(args, generated, load_model)
    if args.normalized_latents:
        raise OneVAEError(f"--normalized-latents is for latent tensors; {args.tokens} holds token ids ({generated.dtype})")
    sequence = as_sequence_batch(generated, args.tokens)
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


def _run_decode_latents(args: argparse.Namespace, latents, load_model: Callable[[argparse.Namespace], Any]) -> int:
    """A latent tensor: its shape is its grid, so --frames/--size/--grid are refused rather than checked."""
    if any(v is not None for v in (args.frames, args.size, args.grid)):
        raise OneVAEError(f"{args.tokens} holds latents ({latents.dtype}, shape {tuple(latents.shape)}): their shape is their "
                          "grid, so --frames, --size and --grid (for token sequences) do not apply")
    batch = latents.shape[0] if latents.dim() == 5 else 1
    directory = directory_output(args.output, batch, f"a batch of {batch} latent clips needs")
    with output_directory(directory):  # created if needed; removed again if nothing was written into it
        return _decode_latents(args, latents, directory, batch, load_model)


def _decode_latents(args: argparse.Namespace, latents, directory: Path | None, batch: int,
                    load_model: Callable[[argparse.Namespace], Any]) -> int:
    from ..model_dir import model_fingerprint
    from ..sequences import as_latent_batch, write_latent_videos

    outputs = _outputs(args.output, directory, batch, args.tokens, args.lossless)
    model = load_model(args)
    latents = as_latent_batch(latents, model.config, args.tokens)  # checked before anything is written
    fps = SEQUENCE_FPS if args.fps is None else args.fps
    frames = write_latent_videos(model, latents, outputs, fps, model_fingerprint(model), normalized=args.normalized_latents,
                                 progress=not args.quiet, lossless=args.lossless)
    target = written_names(outputs[0], frames) if len(outputs) == 1 else Path(args.output)
    sf = model.config.spatial_factor
    print(f"[onevae] {args.tokens} -> {target}: {len(outputs)} clip(s) of {frames} frames of {latents.shape[3] * sf}x"
          f"{latents.shape[4] * sf} (HxW) at {fps:g} fps, from {'normalised' if args.normalized_latents else 'raw'} latents",
          file=sys.stderr)
    return 0
