"""Sub-commands of the ``onevae`` command line. Each ``add_*`` registers one parser."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OneVAEError, SlowDtypeWarning
from ..hardware import checked_device
from ..io.atomic import output_directory
from ..io.frame_files import is_frame_sequence, sequence_name
from ..io.outputs import checked_output, written_names
from ..io.paths import directory_output, existing_file, existing_input, new_output_dir, writable_output

if TYPE_CHECKING:  # the commands import torch and the model lazily, so that `onevae --help` starts fast
    from ..model import OneVAE
    from ..pipeline import FitOptions

ENCODED_OUTPUT = ".safetensors"
MAX_FPS = 1000.0  # resampling a video to more than this is a typo, not a request


def checked_fps(value: float, option: str = "--fps") -> float:
    """A frame rate the user gave: finite, positive and at most MAX_FPS."""
    if not (math.isfinite(value) and 0 < value <= MAX_FPS):
        raise OneVAEError(f"{option} must be a number of frames per second in (0, {MAX_FPS:g}], got {value:g}")
    return value


# ------------------------------------------------------------------------------------------------ shared
def add_lossless_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lossless", action="store_true", help="keep every decoded pixel: FFV1 in .mkv instead of H.264 "
                        "(or PNG/WebP/TIFF frames); what to measure a reconstruction on")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model directory, Hugging Face id in the local cache, or 'default' (the shipped tokenizer)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="compute dtype of the whole network (default: float32)")
    parser.add_argument("--encode-dtype", default=None, choices=list(DTYPES), help="compute dtype of the encoder (default: --dtype)")
    parser.add_argument("--decode-dtype", default=None, choices=list(DTYPES), help="compute dtype of the decoder (default: --dtype; bfloat16 decoding costs little quality)")
    parser.add_argument("--channels-last", action="store_true", help="run the 3-D convolutions channels-last (channels_last_3d; faster with cuDNN in bfloat16, not on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder and decoder (the first clip of each size compiles, slowly)")
    parser.add_argument("--tile", type=int, default=None, help="encode/decode frames larger than this many pixels as overlapping tiles "
                        "(encode: memory bounded by the tile; decode/reconstruct: every tile keeps its caches, about 2x an "
                        "untiled frame's, unless they would not fit; default: only when a whole frame would not fit in memory)")
    parser.add_argument("--tile-overlap", type=int, default=None, help="pixels shared by neighbouring tiles (default: a quarter of --tile)")


DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def load_model_from_args(args: argparse.Namespace) -> OneVAE:
    import torch

    from ..model import OneVAE

    model = OneVAE.from_pretrained(args.model, device=checked_device(args.device))
    encode, decode = (getattr(torch, DTYPES[d or args.dtype]) for d in (args.encode_dtype, args.decode_dtype))
    with warnings.catch_warnings():  # the CLI's own line below names --dtype float32
        warnings.simplefilter("ignore", SlowDtypeWarning)
        model.set_precision(encode=encode, decode=decode)
    if model.device.type == "cpu":
        from ..hardware import warn_if_slow_on_cpu

        for dtype in dict.fromkeys((encode, decode)):  # once per distinct dtype
            warn_if_slow_on_cpu(dtype, f"computing in {str(dtype).replace('torch.', '')}", "--dtype float32")
    if args.channels_last:
        model.set_memory_format(torch.channels_last_3d)
    if args.compile:
        model.compile()
    if args.tile is not None:
        from ..streaming import default_overlap

        overlap = args.tile_overlap if args.tile_overlap is not None else default_overlap(args.tile, model.config.spatial_factor)
        model.enable_tiling(args.tile, overlap)
    elif args.tile_overlap is not None:
        raise OneVAEError("--tile-overlap needs --tile")
    return model


def print_err(message: str) -> None:
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------------------------ train
def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a stage (continuous, discrete, joint) from a YAML config",
                       description="Train with PyTorch Lightning. Overrides: key.path=value (YAML values), e.g. trainer.max_steps=100.")
    p.add_argument("--config", default=None, help="YAML config (a source checkout's configs/ holds the recipes; "
                   "--print-config gives a starter for your own videos)")
    p.add_argument("--print-config", action="store_true", help="print a starter config for fine-tuning the shipped model on "
                   "your own videos, and exit (onevae train --print-config > my.yaml)")
    p.add_argument("--resume", default=None, help="'auto' (the run's newest valid checkpoint, if any) or a checkpoint path")
    p.add_argument("--overwrite", action="store_true", help="start over in an output_dir that holds a previous run (its checkpoints, export, logs, validation records and media are deleted)")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..train.config import load_train_config, starter_config_text

    if args.print_config:
        if args.config is not None or args.resume is not None or args.overwrite or args.overrides:
            raise OneVAEError("--print-config takes no other option or override: it prints the starter config and exits "
                              "(onevae train --print-config > my.yaml; then onevae train --config my.yaml)")
        print(starter_config_text(), end="")
        return 0
    if args.config is not None and not Path(args.config).is_file():  # e.g. the README's configs/... without a checkout
        raise OneVAEError(f"{args.config}: no such config file (the recipes of configs/ are in the source repository, not in "
                          "the package; `onevae train --print-config > my.yaml` writes a starter config for your own videos)")
    from ..train.runner import train

    try:
        config = load_train_config(args.config, args.overrides)
        export = train(config, resume=args.resume, overwrite=args.overwrite)
    except OneVAEError as exc:
        if args.config is not None:
            raise
        raise OneVAEError(f"{exc} (no --config given: pass --config FILE; `onevae train --print-config > my.yaml` writes "
                          "a starter config for your own videos)") from exc
    if export is not None:  # None in the other processes of a DDP run
        print_err(f"[onevae] exported the trained model to {export}")
    return 0


# ------------------------------------------------------------------------------------------------ export
def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to a model directory (from_pretrained)")
    p.add_argument("checkpoint", help="a .ckpt written by onevae train")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--save-dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="precision of the stored weights (float16 halves the file; loading casts back; default float32)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a model directory that already exists")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    import torch

    from ..train.checkpointing import export_checkpoint

    output = model_output_dir(args)
    out = export_checkpoint(args.checkpoint, output, use_ema=not args.no_ema, dtype=getattr(torch, args.save_dtype))
    print_err(f"[onevae] wrote {out}/config.json and {out}/model.safetensors")
    return 0


def model_output_dir(args: argparse.Namespace):
    """``-o DIR`` of export and convert, checked before any work: never the shipped model, and an existing model
    directory only with ``--overwrite``."""
    from ..model_dir import default_model_dir

    return new_output_dir(args.output, overwrite=args.overwrite, protected=[default_model_dir()])


# ------------------------------------------------------------------------------------------------ video I/O options
def add_fit_arguments(g) -> None:
    """The reading and fitting options every command that reads videos shares (encode, reconstruct, stats, tokenize)."""
    g.add_argument("--fps", type=float, default=None, help="resample to this frame rate (default: the source rate); for numbered "
                   "frames (frames/%%05d.png), the rate they were shot at (default 25): none dropped or repeated")
    g.add_argument("--max-frames", type=int, default=None, help="read at most this many frames (of each video)")
    modes = g.add_mutually_exclusive_group()  # one size policy: given together, argparse refuses them
    modes.add_argument("--crop", dest="size_mode", action="store_const", const="crop", help="centre-crop H, W down to the model's multiple (default)")
    modes.add_argument("--pad", dest="size_mode", action="store_const", const="pad", help="pad H, W up to the model's multiple (cropped back on output)")
    modes.add_argument("--resize", dest="size_mode", action="store_const", const="resize", help="resize H, W to the nearest multiple")
    g.add_argument("--max-side", type=int, default=None, help="first downscale so the long side is at most this many pixels")
    g.add_argument("--short-side", type=int, default=None, help="first downscale so the short side is at most this many pixels")
    g.add_argument("--chunk", type=int, default=2, help="latent frames per streamed chunk (memory vs speed; default 2)")
    g.set_defaults(size_mode="crop")


def add_fit_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("reading and fitting the video")
    add_fit_arguments(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def fit_options(args: argparse.Namespace) -> FitOptions:
    from ..pipeline import FitOptions

    if args.chunk < 1:
        raise OneVAEError("--chunk must be >= 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise OneVAEError("--max-frames must be >= 1")
    if args.fps is not None:
        checked_fps(args.fps)
    return FitOptions(size_mode=args.size_mode, max_side=args.max_side, short_side=args.short_side, fps=args.fps, max_frames=args.max_frames, chunk_latents=args.chunk)


# ------------------------------------------------------------------------------------------------ encode
def add_encode(sub) -> None:
    p = sub.add_parser("encode", help="video(s) -> token files (or latent files with --continuous)",
                       description="Encode videos to discrete tokens (default) or continuous latents, streamed chunk by chunk.")
    p.add_argument("videos", nargs="+", help="video files (anything FFmpeg reads), images, or numbered frames (frames/%%05d.png)")
    p.add_argument("-o", "--output", required=True, help="output file for one video, or a directory for several (NAME.tokens.safetensors)")
    p.add_argument("--continuous", action="store_true", help="write continuous latents instead of tokens")
    p.add_argument("--latent-dtype", default=None, choices=["float16", "float32"], help="with --continuous: dtype of stored latents (default float16)")
    p.add_argument("--normalize-latents", action="store_true",
                   help="with --continuous: store (z - latents_mean) / latents_std per channel, what a diffusion model is trained on "
                   "(the model's statistics, recorded in the file; decode undoes it)")
    add_model_options(p)
    add_fit_options(p)
    p.set_defaults(func=run_encode)


def _encode_targets(args: argparse.Namespace, directory: Path | None) -> list[tuple[Path, Path]]:
    """(video, output file) pairs: ``-o`` itself for one video, else NAME.tokens/latents.safetensors in ``directory``."""
    videos = [existing_input(v) for v in args.videos]
    suffix = ".latents.safetensors" if args.continuous else ".tokens.safetensors"
    if directory is None:
        return [(videos[0], writable_output(args.output, (ENCODED_OUTPUT,), inputs=videos))]
    targets: dict[Path, Path] = {}
    for video in videos:
        target = writable_output(directory / (_clip_name(video) + suffix), inputs=videos)
        if target in targets:
            raise OneVAEError(f"{targets[target]} and {video} would both be written to {target}; encode them into separate directories")
        targets[target] = video
    return [(video, target) for target, video in targets.items()]


def _clip_name(video: Path) -> str:
    """'a.v1.mp4' -> 'a.v1', 'box.mp4.gz' -> 'box': the name without its media suffixes; a frame pattern's
    (onevae.io.frame_files.sequence_name): 'bear/%05d.jpg' -> 'bear'."""
    if is_frame_sequence(video):
        return sequence_name(video)
    name = video.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def run_encode(args: argparse.Namespace) -> int:
    if args.normalize_latents and not args.continuous:
        raise OneVAEError("--normalize-latents applies to continuous latents: add --continuous")
    if args.latent_dtype and not args.continuous:
        raise OneVAEError("--latent-dtype applies to continuous latents: add --continuous")
    directory = directory_output(args.output, len(args.videos), "several videos need")
    with output_directory(directory):  # created if needed; removed again if nothing was written into it
        return _encode(args, directory)


def _encode(args: argparse.Namespace, directory: Path | None) -> int:
    import torch

    from ..model_dir import model_fingerprint
    from ..pipeline import encode_file, write_encoded

    targets = _encode_targets(args, directory)
    model = load_model_from_args(args)
    kind = "latents" if args.continuous else "tokens"
    options = fit_options(args)
    fingerprint = model_fingerprint(model)
    for video, out in targets:
        grids, meta = encode_file(model, video, options, kind=kind, fingerprint=fingerprint, progress=not args.quiet,
                                  latent_dtype=getattr(torch, args.latent_dtype or "float16"), normalize=args.normalize_latents)
        write_encoded(out, grids, meta)
        shapes = ", ".join("x".join(str(s) for s in g.shape[1:]) for g in grids.to_list())
        print_err(f"[onevae] {video} -> {out}: {meta.frames} frame{'s' * (meta.frames != 1)}, {kind} grids {shapes}")
    return 0


# ------------------------------------------------------------------------------------------------ decode
def add_decode(sub) -> None:
    p = sub.add_parser("decode", help="token/latent file, generated tokens or latents, or corpus clips -> video (or images)")
    p.add_argument("tokens", help="a file written by onevae encode, a flattened token sequence or a latent tensor (.npy, "
                   ".safetensors, .pt), or an onevae tokenize folder or shard (.tar) with --key")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov or .mkv; H.264), an image (.png, .jpg, "
                   ".webp, ...) for a one-frame clip, or frames (out_%%05d.png); a directory for a batch of sequences")
    add_lossless_option(p)
    p.add_argument("--chunk", type=int, default=2, help="latent frames per streamed chunk (default 2)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the written video (default: the token file's "
                   "recorded rate; 24 for a flattened sequence)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(p)
    from .sequence_decode import add_sequence_options
    from .shard_decode import add_shard_options

    add_sequence_options(p)
    add_shard_options(p)
    p.set_defaults(func=run_decode)


def run_decode(args: argparse.Namespace) -> int:
    from .sequence_decode import is_sequence_request, run_decode_sequence
    from .shard_decode import check_shard_options, is_shard_request, run_decode_shards

    if args.fps is not None:
        checked_fps(args.fps)
    if args.chunk < 1:
        raise OneVAEError("--chunk must be >= 1")
    check_shard_options(args)
    if is_shard_request(args):
        return run_decode_shards(args, load_model_from_args)
    if is_sequence_request(args):
        return run_decode_sequence(args, load_model_from_args)
    from ..model_dir import model_fingerprint
    from ..pipeline import decode_to_video, load_encoded_for

    source = existing_file(args.tokens, "token file")
    if args.normalized_latents:
        raise OneVAEError(f"--normalized-latents is for generated latent tensors; {source}, written by onevae encode, records "
                          "whether its latents are normalised")
    out = checked_output(args.output, source, args.lossless)
    model = load_model_from_args(args)
    fingerprint = model_fingerprint(model)
    grids, meta = load_encoded_for(model, source, fingerprint)
    if args.fps is not None:  # the same frames, played at another rate
        meta = dataclasses.replace(meta, fps=args.fps)
    frames = decode_to_video(model, grids, meta, out, progress=not args.quiet, chunk_latents=args.chunk, fingerprint=fingerprint,
                             lossless=args.lossless)
    print_err(f"[onevae] {source} -> {written_names(out, frames)}: {frames} frame{'s' * (frames != 1)} at {meta.fps:g} fps")
    return 0


# ------------------------------------------------------------------------------------------------ reconstruct
def add_reconstruct(sub) -> None:
    p = sub.add_parser("reconstruct", help="encode + decode a video through tokens and latents; print PSNR/SSIM",
                       description="Encode and decode through both representations, print a PSNR/SSIM table, write the "
                       "reconstruction (tokens path by default) and optionally a report with per-frame metrics and a plot.")
    p.add_argument("video", nargs="?", default=None, help="video file, image or numbered frames (frames/%%05d.png) (default: the sample clip carphone_pristine)")
    p.add_argument("-o", "--output", default=None, help="output video (.mp4, .mov, .mkv), an image (.png, .jpg, ...) for "
                   "an image input, or frames (out_%%05d.png)")
    add_lossless_option(p)
    p.add_argument("--side-by-side", action="store_true", help="write input | tokens | latents side by side")
    p.add_argument("--path", dest="recon_path", default="tokens", choices=["tokens", "latents"], help="which reconstruction to write (default tokens)")
    p.add_argument("--report", default=None, help="directory for metrics.json, metrics.csv and psnr.png")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    add_model_options(p)
    add_fit_options(p)
    p.set_defaults(func=run_reconstruct)


def run_reconstruct(args: argparse.Namespace) -> int:
    from ..io.samples import sample_video_path

    video = existing_input(args.video) if args.video else sample_video_path("carphone_pristine")
    out = checked_output(args.output, video, args.lossless) if args.output else None
    report_dir = Path(args.report) if args.report else None
    with output_directory(report_dir):  # removed again if the command stops before writing the report
        return _reconstruct(args, video, out, report_dir)


def _reconstruct(args: argparse.Namespace, video: Path, out: Path | None, report_dir: Path | None) -> int:
    from ..pipeline import reconstruct_file
    from .report import print_table, write_report

    model = load_model_from_args(args)
    result = reconstruct_file(model, video, fit_options(args), out, side_by_side=args.side_by_side, output_path=args.recon_path,
                              progress=not args.quiet, lossless=args.lossless)
    summary = result.summary()
    if args.json:
        print(json.dumps({"video": str(video), "model": model.config.name, "frames": result.frames, "metrics": summary}, indent=1))
    else:
        print_table(video, model, result)
    if report_dir is not None:
        write_report(report_dir, video, model, result)
        print_err(f"[onevae] report: {report_dir}/metrics.json, metrics.csv, psnr.png")
    if out is not None:
        print_err(f"[onevae] wrote {written_names(out, result.frames)}")
    return 0


# ------------------------------------------------------------------------------------------------ convert
def add_convert(sub) -> None:
    p = sub.add_parser("convert", help="official .ckpt/.safetensors, Wan2.1 .pth or diffusers AutoencoderKLWan folder -> our model directory")
    p.add_argument("weights", help="official OneVAE checkpoint (.ckpt, .safetensors), Wan2.1 VAE (.pth), a diffusers AutoencoderKLWan "
                   "folder (or a pipeline repository with vae/, a HF cache folder or cached org/name), or with --to diffusers our model directory")
    p.add_argument("-o", "--output", required=True, help="model directory to write (config.json + model.safetensors)")
    p.add_argument("--variant", default=None, help="onevae-888, onevae-81616-fe, onevae-161616-fe or wan2.1 (default: recognised from the shapes or config.json)")
    p.add_argument("--config", default=None, help="a JSON file with the architecture (our config.json or an official-style config) instead of --variant")
    p.add_argument("--format", default="auto", choices=["auto", "official", "wan", "diffusers"], help="naming of the weights (default: from the keys or the folder)")
    p.add_argument("--to", default="onevae", choices=["onevae", "diffusers"],
                   help="what to write: our model directory (default) or a diffusers AutoencoderKLWan folder (continuous, non-fe, 4x-temporal models)")
    p.add_argument("--ema", action="store_true", help="take the EMA weights of an official Lightning checkpoint")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow full unpickling of a .ckpt that holds Python objects (runs code from the file!)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an output directory that already exists")
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from ..checkpoints import load_diffusers, load_official, load_wan, save_diffusers
    from ..checkpoints.detect import detect_format
    from ..checkpoints.diffusers import find_diffusers_folder
    from ..config import OneVAEConfig, preset
    from ..model import OneVAE

    output = model_output_dir(args)
    folder = find_diffusers_folder(args.weights) if args.format in ("auto", "diffusers") else None
    source = folder if folder is not None else _convert_source(args)
    if args.config and args.variant:
        raise OneVAEError("give either --variant or --config, not both")
    config = OneVAEConfig.load(args.config) if args.config else args.variant
    fmt = "diffusers" if folder is not None else args.format if args.format != "auto" else detect_format(source, args.trust_checkpoint)
    if fmt == "wan":
        model, report = load_wan(source, trust=args.trust_checkpoint, config=config)
    elif fmt == "official":
        model, report = load_official(source, config, use_ema=args.ema, trust=args.trust_checkpoint)
    elif fmt == "diffusers":
        model, report = load_diffusers(args.weights, preset(config) if isinstance(config, str) else config)
    elif fmt == "onevae" and args.to == "diffusers":
        model, report = OneVAE.from_pretrained(source), None
    else:
        raise OneVAEError(f"{source}: a {fmt} checkpoint; convert takes official OneVAE, Wan2.1 or diffusers AutoencoderKLWan weights (use onevae export for training checkpoints)")
    if report is not None:
        print_err(report.summary())
    if args.to == "diffusers":
        save_diffusers(model, output)
        if model.config.discrete:
            print_err("[onevae] note: AutoencoderKLWan has no FSQ bottleneck; only the continuous path was written")
    else:
        model.save_pretrained(output, metadata={"converted_from": str(source)})
    print_err(f"[onevae] wrote {args.output} ({model.config.name}, {model.num_parameters() / 1e6:.2f} M parameters{', diffusers layout' if args.to == 'diffusers' else ''})")
    return 0


def _convert_source(args: argparse.Namespace) -> Path:
    """A weights file, or (for --to diffusers) one of our model directories."""
    path = Path(args.weights)
    if args.format == "diffusers" and path.is_dir():
        raise OneVAEError(f"{path}: not a diffusers model folder (config.json with _class_name and diffusion_pytorch_model.safetensors)")
    if args.to == "diffusers" and path.is_dir():
        return path
    return existing_file(path, "weights file")


# ------------------------------------------------------------------------------------------------ info
def add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a model (directory, preset) or a token file")
    p.add_argument("target", nargs="?", default=None, help="model directory, preset name, token/latent file (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--size", default="17x256x256", help="clip size TxHxW for the token counts (default 17x256x256)")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate for tokens per second of video (default 24)")
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from .report import describe_target

    info = describe_target(args.target, args.size, checked_fps(args.fps))
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        print_info_table(info)
    return 0


def print_info_table(info: dict) -> None:
    """``key  value`` rows, values aligned after the longest key; a model's latent statistics, which have their own
    rows, are left out of its printed config (the JSON keeps the whole config)."""
    stats = ("latents_mean", "latents_std")
    if isinstance(info.get("config"), dict) and "latents mean (per channel)" in info:
        info = {**info, "config": {k: v for k, v in info["config"].items() if k not in stats}}
    width = max(map(len, info)) + 1
    for key, value in info.items():
        print(f"{key:{width}} {value}")


# ------------------------------------------------------------------------------------------------ stats
def add_stats(sub) -> None:
    p = sub.add_parser("stats", help="measure the per-channel mean/std of a model's latents on videos",
                       description="Encode videos to continuous latents and measure each channel's mean and standard deviation "
                       "over every latent position: the statistics that normalise latents for a diffusion model, (z - mean) / std. "
                       "--save writes them into the model directory's config.json (latents_mean, latents_std).")
    p.add_argument("videos", nargs="+", help="video files (anything FFmpeg reads), images, or numbered frames (frames/%%05d.png)")
    p.add_argument("--save", action="store_true", help="write the statistics into the --model directory's config.json")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_options(p)
    add_fit_options(p)
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    from ..model_dir import default_model_dir
    from ..pipeline import latent_stats_of_files

    videos = [existing_input(v) for v in args.videos]
    model = load_model_from_args(args)
    if args.save and (model.source_dir is None or model.source_dir.resolve() == default_model_dir().resolve()):
        raise OneVAEError("--save writes into a model directory of yours: give --model DIR (the shipped model is read-only; copy it first)")

    def counted(video, meta, latents) -> None:
        print_err(f"[onevae] {video}: {meta.frames} frame{'s' * (meta.frames != 1)}, {sum(g[0, 0].numel() for g in latents.to_list())} latent positions")

    accumulator = latent_stats_of_files(model, videos, fit_options(args), progress=not args.quiet, on_file=counted)
    mean, std = accumulator.result()
    if args.save:
        _save_stats(model, mean, std)
        print_err(f"[onevae] wrote latents_mean/latents_std into {model.source_dir}/config.json")
    summary = {"model": model.config.name, "videos": [str(v) for v in videos], "positions": accumulator.count, "latents_mean": mean, "latents_std": std}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{model.config.name}: {accumulator.count} latent positions from {len(videos)} video(s)")
        print(f"{'channel':>7} {'mean':>10} {'std':>10}")
        for channel, (m, s) in enumerate(zip(mean, std)):
            print(f"{channel:>7} {m:>10.4f} {s:>10.4f}")
    return 0


def _save_stats(model, mean: list[float], std: list[float]) -> None:
    """Rewrite the model directory's config.json with the statistics (atomically; the weights are untouched
    and the model's fingerprint, which leaves the statistics out, does not change)."""
    from ..config import OneVAEConfig
    from ..io.atomic import atomic_path
    from ..latent_stats import with_stats
    from ..model_dir import CONFIG_NAME

    path = model.source_dir / CONFIG_NAME
    config = with_stats(OneVAEConfig.load(path), mean, std)
    with atomic_path(path) as tmp:
        config.save(tmp)


from .eval_command import add_eval  # noqa: E402  (eval_command.py and experiment.py use this module's option helpers)
from .experiment import add_experiment  # noqa: E402

REGISTRY = [add_encode, add_decode, add_reconstruct, add_convert, add_info, add_stats, add_eval, add_train, add_export, add_experiment]
