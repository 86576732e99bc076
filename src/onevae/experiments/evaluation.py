"""Held-out evaluation during a run: PSNR/SSIM of both paths on real clips at native scale, every N steps.

The rows go to the run's ``eval.csv`` (one per step, path and window). The weights evaluated are the raw
training weights (the experiments train without EMA, so that a curve shows the model at that step).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ..eval.metrics import codebook_usage, psnr_per_frame, ssim_per_frame
from .data import EvalConfig, load_window

EVAL_FIELDS = ["step", "seconds", "path", "window", "psnr", "psnr_first", "psnr_rest", "ssim", "usage"]


@torch.no_grad()
def evaluate_model(vae, windows: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Rows of metrics for each window and path (continuous; discrete when the model has tokens)."""
    rows = []
    for name, clip in windows.items():
        video = clip.unsqueeze(0).to(vae.device, vae.dtype)  # (1, 3, T, H, W)
        latents = vae.encode_latents(video)
        recons = {"continuous": (vae.decode_latents(latents), None)}
        if vae.config.discrete:
            tokens = vae.latents_to_tokens(latents)
            recons["discrete"] = (vae.decode_tokens(tokens), tokens)
        for path, (recon, tokens) in recons.items():
            recon = recon.clamp(-1, 1).float()
            psnr = psnr_per_frame(video.float(), recon)  # (T,)
            usage = None
            if tokens is not None:
                shares = codebook_usage(tokens, vae.config.vocab_size)  # per token position
                usage = sum(shares) / len(shares)
            rows.append({
                "path": path, "window": name, "psnr": float(psnr.mean()), "psnr_first": float(psnr[0]),
                "psnr_rest": float(psnr[1:].mean()) if psnr.numel() > 1 else float("nan"),
                "ssim": float(ssim_per_frame(video.float(), recon).mean()), "usage": usage,
            })
    return rows


def read_eval_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [_parse(row) for row in csv.DictReader(f)]


def _parse(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    out["step"] = int(row["step"])
    for key in ("seconds", "psnr", "psnr_first", "psnr_rest", "ssim", "usage"):
        out[key] = float(row[key]) if row.get(key) not in (None, "") else None
    return out


def write_eval_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
            writer.writeheader()
            writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in EVAL_FIELDS} for r in rows)


class HeldOutEvaluator(L.Callback):
    """Evaluates at step 0 (before any update), every ``every_n_steps`` and at the last step; on resume, rows
    newer than the checkpoint (written before an interruption) are dropped and measured again."""

    def __init__(self, config: EvalConfig, out_csv: Path, opencv_dir: Path | None = None, every_n_steps: int | None = None) -> None:
        self.config = config
        self.out_csv = Path(out_csv)
        self.opencv_dir = opencv_dir
        self.every = every_n_steps or config.every_n_steps
        self.windows: dict[str, torch.Tensor] = {}
        self.rows: list[dict[str, Any]] = []
        self.clock_offset = 0.0  # training seconds before this (resumed) session
        self.clock_start = 0.0
        self.eval_seconds = 0.0  # time spent evaluating, not counted as training time

    def training_seconds(self) -> float:
        return self.clock_offset + time.time() - self.clock_start - self.eval_seconds

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        self.windows = {w.label: load_window(w, self.opencv_dir) for w in self.config.windows}
        step = trainer.global_step
        self.rows = [r for r in read_eval_rows(self.out_csv) if r["step"] <= step]
        write_eval_rows(self.out_csv, self.rows)
        self.clock_offset = max([r["seconds"] or 0.0 for r in self.rows], default=0.0)
        self.clock_start, self.eval_seconds = time.time(), 0.0
        self._maybe_evaluate(trainer, pl_module, force=step == 0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        self._maybe_evaluate(trainer, pl_module, force=step >= trainer.max_steps)

    def _maybe_evaluate(self, trainer: L.Trainer, pl_module, force: bool = False) -> None:
        step = trainer.global_step
        if not (force or step % self.every == 0) or any(r["step"] == step for r in self.rows):
            return
        seconds = self.training_seconds()
        started = time.time()
        vae = pl_module.vae
        was_training = vae.training
        vae.eval()
        try:
            new = [{"step": step, "seconds": round(seconds, 2), **row} for row in evaluate_model(vae, self.windows)]
        finally:
            vae.train(was_training)
            self.eval_seconds += time.time() - started
        self.rows += new
        write_eval_rows(self.out_csv, self.rows)
