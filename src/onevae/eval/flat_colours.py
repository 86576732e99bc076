"""Flat colours through a tokenizer: does a flat primary, secondary, skin tone or grey come back as itself?

A flat ``frames x size x size`` clip of each colour goes through the tokens and the latents path; per colour and
path we report the per-channel error (/255) of the clip's mean colour (issue 9's target: within
:data:`TOLERANCE`), of frame 0 alone (a causal video VAE codes frame 0 on its own, and that is where a shift
shows first), and the largest of the later frames'. Telling the paths apart separates the two causes: an
error on both paths is the network's, one on the tokens path only is the quantizer's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..io.atomic import atomic_path
from ..io.video import frames_to_tensor
from .evaluate import frame_mean_colours, model_reconstructions

FLAT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "grass green": (30, 180, 40), "teal": (20, 160, 150), "orange": (240, 130, 20),
    "light skin": (224, 172, 140), "medium skin": (198, 134, 66), "dark skin": (141, 85, 36),
    "black": (0, 0, 0), "dark grey": (40, 40, 40), "grey": (128, 128, 128), "light grey": (220, 220, 220),
    "white": (255, 255, 255),
}
TOLERANCE = 6.0  # /255 per channel, on the clip's mean colour
PATHS = ("tokens", "latents")  # the order of the rows and of the table's columns


@dataclass
class FlatColourResult:
    """One colour through one path; errors are absolute, per channel (R, G, B), in /255."""

    name: str
    rgb: tuple[int, int, int]
    path: str  # "tokens" or "latents"
    clip_error: list[float]  # of the whole clip's mean colour
    frame0_error: list[float]  # of frame 0's mean colour
    later_error: list[float]  # the largest over frames 1.. of each frame's mean colour

    @property
    def worst(self) -> float:
        return max(self.clip_error)

    @property
    def ok(self) -> bool:
        return self.worst <= TOLERANCE


def flat_clip(rgb: tuple[int, int, int], frames: int = 9, size: int = 64) -> torch.Tensor:
    """A flat (3, frames, size, size) clip in [-1, 1]."""
    return frames_to_tensor(np.full((frames, size, size, 3), rgb, np.uint8))


def frame_mean_errors(rgb: tuple[int, int, int], recon: torch.Tensor) -> np.ndarray:
    """(T, 3) signed error (/255) of each frame's mean colour of a (3, T, H, W) reconstruction in [-1, 1]."""
    return frame_mean_colours(recon).T.double().numpy() - np.asarray(rgb, dtype=np.float64)


def flat_colour_round_trip(model, colours: dict[str, tuple[int, int, int]] | None = None, frames: int = 9,
                           size: int = 64) -> list[FlatColourResult]:
    """Every colour (default :data:`FLAT_COLOURS`) through every path of ``model``."""
    results = []
    for name, rgb in (colours or FLAT_COLOURS).items():
        recons = model_reconstructions(model, flat_clip(rgb, frames, size))  # one encoding, both paths
        for path in [p for p in PATHS if p in recons]:
            err = frame_mean_errors(rgb, recons[path])  # (T, 3)
            later = np.abs(err[1:]).max(axis=0) if len(err) > 1 else np.zeros(3)
            results.append(FlatColourResult(name, tuple(rgb), path, _rounded(np.abs(err.mean(axis=0))),
                                            _rounded(np.abs(err[0])), _rounded(later)))
    return results


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in values]


def flat_colours_summary(results: list[FlatColourResult]) -> dict[str, dict]:
    """Per path: how many colours are off by more than :data:`TOLERANCE`, which, and the worst error."""
    summary = {}
    for path in dict.fromkeys(r.path for r in results):
        rows = [r for r in results if r.path == path]
        summary[path] = {"off": [r.name for r in rows if not r.ok], "colours": len(rows),
                         "worst": max(r.worst for r in rows), "tolerance": TOLERANCE}
    return summary


def flat_colours_table(results: list[FlatColourResult]) -> str:
    """Markdown: one row per colour; per path the worst channel's error (/255) of the clip's mean colour, of
    frame 0's and of the worst later frame's; then a line per path: how many colours are off."""
    paths = list(dict.fromkeys(r.path for r in results))
    by = {(r.name, r.path): r for r in results}
    head = "| colour | RGB | " + " | ".join(f"{p}: clip / frame 0 / frames 1+" for p in paths) + " |"
    lines = [head, "|" + "---|" * (len(paths) + 2)]
    for name in dict.fromkeys(r.name for r in results):
        cells = []
        for p in paths:
            r = by[(name, p)]
            mark = "" if r.ok else " **off**"
            cells.append(f"{r.worst:.1f} / {max(r.frame0_error):.1f} / {max(r.later_error):.1f}{mark}")
        lines.append(f"| {name} | {by[(name, paths[0])].rgb} | " + " | ".join(cells) + " |")
    summary = flat_colours_summary(results)
    lines.append("")
    lines.append("; ".join(f"{p}: {len(s['off'])} of {s['colours']} off by more than {TOLERANCE:g}/255 (worst {s['worst']:.1f})"
                           for p, s in summary.items()))
    return "\n".join(lines)


def flat_colours_record(results: list[FlatColourResult]) -> dict:
    """``{"summary": ..., "colours": [every row]}``, as flat_colours.json and the model card's metrics.json hold it."""
    return {"summary": flat_colours_summary(results), "colours": [asdict(r) for r in results]}


def write_flat_colours(out: Path, results: list[FlatColourResult], model_name: str = "") -> None:
    """``flat_colours.json`` (summary and every row) and ``flat_colours.md`` (the table) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"model": model_name, **flat_colours_record(results)}
    with atomic_path(out / "flat_colours.json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    with atomic_path(out / "flat_colours.md") as tmp:
        tmp.write_text(flat_colours_table(results) + "\n")
