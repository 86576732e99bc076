"""``onevae decode`` of clips of a tokenized corpus (``onevae tokenize`` output: its folder, or one shard)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OneVAEError
from ..io.atomic import output_directory
from ..io.outputs import checked_output, video_suffix, written_names
from ..io.paths import directory_output

if TYPE_CHECKING:  # torch is imported when a command runs, not when the parser is built
    import torch

    from ..io.tokens import TokenFileMeta


def add_shard_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("clips of a tokenized corpus (an onevae tokenize folder, or one of its shards)")
    g.add_argument("--key", dest="keys", action="append", default=None, metavar="KEY",
                   help="the clip to decode (its id: 000000012 or 12; index.parquet lists them); repeat for several. "
                   "Without --key, every clip of the shard given")
    g.add_argument("--latents", action="store_true", help="decode the shards' latents instead of their tokens")


def is_shard_request(args: argparse.Namespace) -> bool:
    """A corpus folder (its dataset.json) or a shard (.tar)."""
    source = Path(args.tokens)
    return (source.is_dir() and (source / "dataset.json").is_file()) or source.suffix.lower() == ".tar"


def check_shard_options(args: argparse.Namespace) -> None:
    """--key and --latents only mean something for a corpus."""
    if not is_shard_request(args) and (args.keys or args.latents):
        raise OneVAEError(f"--key and --latents pick clips of a tokenized corpus (a folder written by onevae tokenize, or a "
                          f"shard .tar); {args.tokens} is not one")


def run_decode_shards(args: argparse.Namespace, load_model: Callable[[argparse.Namespace], Any]) -> int:
    """``load_model`` comes from onevae.cli.commands (which calls this module)."""
    from ..data.token_shards import corpus_keys, normal_key

    source = Path(args.tokens)
    if source.is_dir() and not args.keys:
        raise OneVAEError(f"{source} is a whole corpus: name the clips with --key (index.parquet lists them), or decode one "
                          "of its shards (every clip of it)")
    keys = [normal_key(key) for key in args.keys] if args.keys else sorted(corpus_keys(source))
    if not keys:
        raise OneVAEError(f"{source} holds no clip")
    directory = directory_output(args.output, len(keys), f"{len(keys)} clips need")
    with output_directory(directory):  # created if needed; removed again if nothing was written into it
        return _decode_clips(args, source, keys if args.keys else None, len(keys), directory, load_model)


def _decode_clips(args: argparse.Namespace, source: Path, keys: list[str] | None, count: int, directory: Path | None,
                  load_model: Callable[[argparse.Namespace], Any]) -> int:
    from ..data.token_shards import read_clips
    from ..model_dir import model_fingerprint
    from ..pipeline import decode_to_video

    suffix = video_suffix(args.lossless)
    first_out = checked_output(args.output, source, args.lossless) if directory is None else None
    clips = read_clips(source, keys, latents=True)  # unknown keys are refused here, before the model loads
    first = next(clips)
    model = load_model(args)
    fingerprint = model_fingerprint(model)
    frames = 0
    for sample in itertools.chain([first], clips):
        out = first_out or checked_output(directory / f"{sample['key']}{suffix}", source, args.lossless)
        grids, meta = _clip_grids(sample, args.latents, source)
        if args.fps is not None:  # the same frames, played at another rate
            meta = dataclasses.replace(meta, fps=args.fps)
        written = decode_to_video(model, grids, meta, out, progress=not args.quiet, chunk_latents=args.chunk,
                                  fingerprint=fingerprint, lossless=args.lossless)
        frames += written
        if directory is None:
            print(f"[onevae] {source} clip {sample['key']} -> {written_names(out, written)}: {written} frame"
                  f"{'s' * (written != 1)} at {meta.fps:g} fps", file=sys.stderr)
    if directory is not None:
        print(f"[onevae] {source} -> {directory}: {count} clips (KEY{suffix}), {frames} frames", file=sys.stderr)
    return 0


def _clip_grids(sample: dict[str, Any], latents: bool, source: Path) -> tuple[list[torch.Tensor], TokenFileMeta]:
    """The grids and metadata decode_to_video takes, from the tokens (default) or the latents of a clip."""
    from ..data.token_shards import sample_latent_grids, sample_token_grids

    kind = "latents" if latents else "tokens"
    stored = sample.get("latents") if latents else sample.get("tokens")
    if stored is None:
        other = "tokens" if latents else "latents (add --latents)"
        raise OneVAEError(f"{source}: clip {sample['key']} has no {kind} (onevae tokenize wrote its {other} only)")
    return sample_latent_grids(stored, sample["meta"]) if latents else sample_token_grids(stored, sample["meta"])
