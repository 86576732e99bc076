"""``onevae tokenize``: a video corpus -> webdataset shards of tokens and/or latents (docs/corpus.md)."""

from __future__ import annotations

import argparse

from ..errors import OneVAEError
from .commands import add_fit_arguments, add_model_options, checked_fps, load_model_from_args, print_err


def add_tokenize(sub) -> None:
    from ..corpus.run import default_workers

    p = sub.add_parser(
        "tokenize", help="a video corpus -> webdataset shards of tokens/latents (resumable; local or Ray)",
        description="Tokenize every video (or every fixed-length clip) of the SOURCEs into OUT_DIR/shard-NNNNNN.tar, "
        "with an index, errors.jsonl and dataset.json. Rerunning the same command resumes. See docs/corpus.md.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder (recursive), glob, text list, CSV/Parquet manifest, webdataset .tar shard, video, or "
                   "numbered frames ('DIR/*/%%05d.jpg': each folder of frames a video)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    g = p.add_argument_group("clips")
    g.add_argument("--clip-frames", type=int, default=None, help="fixed clips of this many frames (1 + k*tf); default: whole videos")
    g.add_argument("--stride", type=int, default=None, help="frames between clip starts (default: --clip-frames)")
    add_fit_arguments(g)
    g.add_argument("--path-column", default="path", help="manifest column with the video paths (default: path)")
    g.add_argument("--start-column", default="start", help="manifest column with clip start times in seconds (default: start)")
    g.add_argument("--end-column", default="end", help="manifest column with clip end times in seconds (default: end)")
    g = p.add_argument_group("output")
    g.add_argument("--tokens", action="store_true", help="write tokens (the default when --latents is not given)")
    g.add_argument("--latents", action="store_true", help="write continuous latents (with --tokens: both)")
    g.add_argument("--latent-dtype", default="float16", choices=["float16", "bfloat16"], help="dtype of stored latents")
    g.add_argument("--clips-per-shard", type=int, default=1000, help="clips per shard (default 1000)")
    g.add_argument("--overwrite", action="store_true", help="delete the shards of a previous, different run in OUT_DIR")
    g = p.add_argument_group("execution")
    g.add_argument("--engine", default="local", choices=["local", "ray"], help="local processes (default) or Ray Data")
    g.add_argument("--workers", type=int, default=default_workers(),
                   help=f"decoding processes (local) or CPUs for readers (local Ray); default {default_workers()}")
    g.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local Ray)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(p)
    p.set_defaults(func=run_tokenize, size_mode="crop")


def run_tokenize(args: argparse.Namespace) -> int:
    from ..corpus import ManifestColumns, TokenizeOptions, tokenize_corpus
    if args.fps is not None:
        checked_fps(args.fps)
    if args.chunk < 1:
        raise OneVAEError("--chunk must be >= 1")
    options = TokenizeOptions(
        clip_frames=args.clip_frames, stride=args.stride, fps=args.fps, size_mode=args.size_mode,
        short_side=args.short_side, max_side=args.max_side, max_frames=args.max_frames, chunk_latents=args.chunk,
        tokens=args.tokens or not args.latents, latents=args.latents, latent_dtype=args.latent_dtype,
        clips_per_shard=args.clips_per_shard, columns=ManifestColumns(args.path_column, args.start_column, args.end_column),
        engine=args.engine, workers=args.workers, ray_address=args.ray_address, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    options.validate()
    model = load_model_from_args(args)
    result = tokenize_corpus(model, args.sources, args.output, options)
    counts = result.summary["counts"]
    print_err(f"[onevae] {args.output}: {counts['clips']} clips in {len(result.summary['shards'])} shard(s) "
              f"({result.shards_written} written now), {counts['frames']} frames, {counts['tokens']:,} tokens, "
              f"{counts['errors']} error(s) (errors.jsonl)")
    return 0
