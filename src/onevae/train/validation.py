"""Validation on a fixed held-out set: PSNR and SSIM per clip for the continuous and the discrete path,
codebook usage per token position, and reconstructions saved as images and short videos."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..eval.metrics import codebook_usage, psnr_per_frame, ssim_per_frame
from ..io.atomic import atomic_path
from ..io.image_writer import write_image
from ..io.video import tensor_to_frames
from ..io.writer import write_video
from ..model import CONTINUOUS, DISCRETE


@torch.no_grad()
def validate_batch(module, video: torch.Tensor, batch_idx: int) -> dict[str, Any]:
    """PSNR/SSIM of each clip of ``video`` (B, 3, T, H, W) through both paths (the model's forward pass)."""
    vae = module.vae
    plans = [CONTINUOUS, DISCRETE] if vae.config.discrete else [CONTINUOUS]
    result = vae(video, plans)
    out: dict[str, Any] = {"batch_idx": batch_idx, "recon": {}, "metrics": {}}
    for path in result.paths:
        name = path.plan.path
        recon = path.recon.clamp(-1, 1)
        for i in range(video.shape[0]):
            psnr = psnr_per_frame(video[i].float(), recon[i].float())
            ssim = ssim_per_frame(video[i].float(), recon[i].float())
            out["metrics"].setdefault(name, []).append({"psnr": float(psnr.mean()), "ssim": float(ssim.mean())})
        out["recon"][name] = recon[:1].cpu()
        if path.tokens is not None:
            out["tokens"] = path.tokens.map(lambda grid: grid.cpu())
    out["video"] = video[:1].cpu()
    return out


def summarise_validation(module, outputs: list[dict[str, Any]]) -> dict[str, float]:
    """Log the means, write metrics.csv/jsonl rows and media; returns the logged values."""
    summary: dict[str, float] = {}
    for path in ("continuous", "discrete"):
        rows = [m for out in outputs for m in out["metrics"].get(path, [])]
        if rows:
            summary[f"val/{path}/psnr"] = sum(r["psnr"] for r in rows) / len(rows)
            summary[f"val/{path}/ssim"] = sum(r["ssim"] for r in rows) / len(rows)
    summary.update(per_clip_psnr(module, outputs))
    if outputs and "tokens" in outputs[0]:
        tokens = [out["tokens"] for out in outputs]
        for k, usage in enumerate(codebook_usage(tokens, module.vae.config.vocab_size)):
            summary[f"val/codebook_usage/token{k}"] = float(usage)
    for key, value in summary.items():
        module.log(key, value, prog_bar=key.endswith("psnr"), sync_dist=True)
    if module.trainer.is_global_zero and not module.trainer.sanity_checking:
        _write_records(module, summary, outputs)
    return summary


def per_clip_psnr(module, outputs: list[dict[str, Any]]) -> dict[str, float]:
    """``val/PATH/psnr/CLIP`` for validation sets whose clips have names (``val.sources: [heldout]``), on one
    process (under DDP each rank sees only some clips)."""
    loaders = module.trainer.val_dataloaders
    names = getattr(getattr(loaders, "dataset", None), "names", None)
    if not names or module.trainer.world_size != 1:
        return {}
    return {f"val/{path}/psnr/{names[out['batch_idx']]}": rows[0]["psnr"]
            for out in outputs for path, rows in out["metrics"].items()}


VALIDATION_LOG = "validation.jsonl"


def keep_validation_rows_up_to(output_dir: Path, step: int) -> None:
    """On resume from the checkpoint of ``step``: drop the rows of ``validation.jsonl`` logged after it (those
    steps are trained again, and validated again), as ``logs/metrics.csv`` does."""
    path = Path(output_dir) / VALIDATION_LOG
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if _row_step(line) is not None and _row_step(line) <= step]
    if len(kept) != len(lines):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))


def validated_steps(output_dir: Path) -> set[int]:
    """The steps that ``validation.jsonl`` holds a row of."""
    path = Path(output_dir) / VALIDATION_LOG
    lines = path.read_text().splitlines() if path.is_file() else []
    return {step for step in map(_row_step, lines) if step is not None}


class MissedValidation(Callback):
    """On resume from step N where a validation was due (N a multiple of ``val.every_n_steps``) but
    ``validation.jsonl`` has no row of N, validate once before training goes on. Lightning, resuming from a
    checkpoint taken at a step's end, counts that step's validation as done; it was not when the run stopped in
    between: a signal at that step (the stop comes before the validation), a kill during the validation."""

    def __init__(self, output_dir: Path, every_n_steps: int) -> None:
        self.output_dir, self.every_n_steps = Path(output_dir), every_n_steps

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps:
            return
        missed = trainer.is_global_zero and step not in validated_steps(self.output_dir)
        if not trainer.strategy.broadcast(missed, src=0):  # the first process's file decides for all of them
            return
        loop = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "val_loop", None)  # Lightning's own loop
        if not callable(getattr(loop, "run", None)):
            if trainer.is_global_zero:
                print(f"[onevae] the validation of step {step} was not logged and cannot be redone with this Lightning "
                      f"version; the next one is at step {step + self.every_n_steps}", file=sys.stderr)
            return
        trainer.validating = True  # as Lightning's training loop runs it
        try:
            loop.run()
        finally:
            trainer.training = True


def _row_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _write_records(module, summary: dict[str, float], outputs: list[dict[str, Any]]) -> None:
    step = module.global_step
    root = Path(module.cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    with (root / VALIDATION_LOG).open("a") as f:
        f.write(json.dumps({"step": step, **summary}) + "\n")
    if not module.cfg.val.save_media or not outputs:
        return
    media = root / "media" / f"step{step:07d}"
    media.mkdir(parents=True, exist_ok=True)
    for out in outputs[:2]:
        _save_media(media / f"clip{out['batch_idx']}", out["video"][0], out["recon"])


def _save_media(stem: Path, video: torch.Tensor, recons: dict[str, torch.Tensor]) -> None:
    """A PNG of first/middle/last frames (input | each path) and an mp4 of the same, side by side."""
    panels = [video] + [recon[0] for recon in recons.values()]
    side = torch.cat(panels, dim=-1)  # (3, T, H, W * n)
    t = side.shape[1]
    frames = tensor_to_frames(side)  # (T, H, W*n, 3) uint8
    picks = sorted({0, t // 2, t - 1})
    grid = torch.cat([torch.from_numpy(frames[i]) for i in picks], dim=0).numpy()
    write_image(str(stem) + ".png", grid)
    if t > 1:
        write_video(str(stem) + ".mp4", frames, fps=8)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
