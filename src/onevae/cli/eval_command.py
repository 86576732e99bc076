"""``onevae eval MODEL [CLIPS...]``: the evaluation of :mod:`onevae.eval.evaluate` on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM, colour fidelity, flat colours and baselines on the held-out clips (or files)",
                       description="Evaluate a tokenizer at native resolution on the held-out clips (default: all of "
                       "them; see onevae.eval.heldout) or on video files, against bicubic x4/x8 and x264 veryslow at the "
                       "token bit budget, and the round trip of 17 flat colours. Writes results.json, results.md, side_by_side/CLIP.png "
                       "and flat_colours.{json,md} to --out.")
    p.add_argument("model", help="model directory, or 'default' / 'onevae-small' for the shipped tokenizer")
    p.add_argument("clips", nargs="*", help="held-out clip names, video files or numbered frames (frames/%%05d.png) "
                   "(default: the whole held-out set)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: eval/MODEL_NAME; for a training run's export/, eval/RUN_NAME)")
    p.add_argument("--opencv", type=Path, default=Path("data/opencv"), help="folder with OpenCV's sample videos (vtest.avi, cup.mp4.gz, tree.avi, Megamind.avi; `make data` in a source checkout "
                   "puts them in data/opencv, the default)")
    p.add_argument("--max-frames", type=int, default=None, help="cut every clip to this many frames")
    p.add_argument("--no-x264", action="store_true", help="skip the x264 baseline")
    p.add_argument("--no-png", action="store_true", help="write no side-by-side PNG")
    p.add_argument("--no-flat-colours", action="store_true", help="skip the flat-colour round trip (17 flat 9x64x64 clips)")
    p.add_argument("--baselines", type=Path, default=None, help="baseline cache (JSON) shared between runs (default: OUT/baselines.json)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from ..errors import OneVAEError
    from ..eval.evaluate import EvalOptions, evaluate, resolve_clips, results_table
    from ..eval.flat_colours import flat_colour_round_trip, flat_colours_table, write_flat_colours
    from ..hardware import checked_device
    from ..model import OneVAE
    from ..model_dir import names_default_model

    if args.max_frames is not None and args.max_frames < 1:
        raise OneVAEError(f"--max-frames must be at least 1, got {args.max_frames}")
    shipped = names_default_model(args.model)
    model = OneVAE.from_pretrained(args.model, device=checked_device(args.device)).eval()
    clips = resolve_clips(args.clips, args.opencv, args.max_frames)
    out = args.out or default_out(args.model, shipped)
    results = evaluate(model, clips, out, EvalOptions(x264=not args.no_x264, png=not args.no_png), args.baselines)
    print(results_table(results))
    written = [out / "results.json", out / "results.md"] + ([] if args.no_png else [f"{out / 'side_by_side'}/"])
    if not args.no_flat_colours:
        flat = flat_colour_round_trip(model)
        write_flat_colours(out, flat, model.config.name)
        print("\nFlat colours (worst channel's error of the mean colour, /255):\n" + flat_colours_table(flat))
        written += [out / "flat_colours.json", out / "flat_colours.md"]
    print("wrote " + ", ".join(map(str, written)))
    return 0


def default_out(model: str, shipped: bool) -> Path:
    """``eval/NAME``: the model folder's name, or the run's for a training run's ``export/`` (so that two runs'
    exports are not both written to ``eval/export``)."""
    if shipped:
        return Path("eval") / "onevae-small"
    path = Path(model).expanduser().resolve()
    return Path("eval") / (path.parent.name if path.name == "export" and path.parent.name else path.name)
