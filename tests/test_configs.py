"""Every training config shipped in configs/ builds and runs a training step, so that none can rot.

Each file keeps its stage, architecture, schedule, loss terms, optimiser and precision; only what depends on
files a fresh clone does not have (data, initial weights, perceptual weights) and the run's length and size
are replaced: procedural clips of the smallest valid size, one step.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from onevae.train.config import load_train_config
from onevae.train.runner import train

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def one_step_overrides(path: Path, out: Path) -> list[str]:
    model = load_train_config(path).model_config()
    frames, size = 1 + model.temporal_factor, 2 * model.spatial_factor
    clip = [f"num_frames={frames}", f"height={size}", f"width={size}"]
    return [
        f"output_dir={out}", "model.init_from=null", "loss.perceptual.weights_path=null",
        "data.kind=procedural", "data.sources=[]", "data.batch_size=1", "data.num_workers=0", "data.num_samples=1",
        *(f"data.{c}" for c in clip), "val.sources=[]", "val.num_clips=1", "val.every_n_steps=1000", *(f"val.{c}" for c in clip),
        "trainer.max_steps=1", "trainer.checkpoint_every_n_steps=1", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
        "trainer.devices=1", "trainer.num_nodes=1",
    ]


def test_configs_exist():
    assert len(CONFIGS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_and_trains_one_step(path, tmp_path):
    out = tmp_path / "run"
    config = load_train_config(path, one_step_overrides(path, out))
    train(config)
    with (out / "logs" / "metrics.csv").open() as f:
        totals = [float(row["train/loss/total"]) for row in csv.DictReader(f) if row.get("train/loss/total")]
    assert len(totals) == 1 and math.isfinite(totals[0])
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "export" / "model.safetensors").is_file()
