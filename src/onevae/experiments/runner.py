"""Running an experiment: every (seed, arm) as a resumable training run, results appended as runs finish.

Layout under the runs root (``--runs``, default ``runs/science``)::

    runs/<arm>-s<seed>-<hash>/     one training run (checkpoints while running, export/, eval.csv, summary.json)
    <experiment>/results.csv       one row per finished (arm, seed)
    <experiment>/curves.csv        the held-out curves of the finished runs (step, path, window, PSNR ...)

A run's directory name ends in a hash of everything that defines it (resolved training config, evaluation,
the run it starts from), so identical runs are shared between experiments and a changed config never
resumes a stale run. ``summary.json`` marks a finished run; an unfinished one resumes from its last
checkpoint. Several processes may work on the same root: each run is locked while one trains it.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OneVAEError
from ..io.atomic import atomic_path
from .data import EvalConfig, EvalWindow, prepare_training_clips
from .evaluation import read_eval_rows
from .spec import ArmSpec, ExperimentSpec, deep_merge

PATHS = ("continuous", "discrete")
METRICS = ("psnr", "psnr_first", "psnr_rest", "ssim", "usage")
RESULT_FIELDS = (
    ["experiment", "arm", "label", "seed", "status", "run", "steps", "total_steps", "seconds", "params", "tokens_per_clip"]
    + [f"{m}_{p}" for p in PATHS for m in METRICS if not (m == "usage" and p == "continuous")]
    + [f"psnr_{p}_step0" for p in PATHS]
)
CURVE_FIELDS = ["experiment", "arm", "seed", "step", "seconds", "path", "window", "psnr", "psnr_first", "psnr_rest", "ssim", "usage"]
QUICK_TRAIN_SAMPLE = "bikes"


@dataclass
class RunOptions:
    root: Path
    data_dir: Path  # prepared training clips go to data_dir/train<short side>
    opencv_dir: Path | None
    quick: bool = False
    short_side: int = 144
    threads: int | None = None
    keep_checkpoints: bool = False
    seeds: tuple[int, ...] | None = None  # run only these of each experiment's seeds (None: all)
    log: Any = field(default=None, repr=False)  # a text stream; None: sys.stderr at the time of writing


@dataclass
class RunPlan:
    """One training run: its resolved config, evaluation and the run it starts from."""

    experiment: str
    name: str
    seed: int
    config: dict[str, Any]
    eval: EvalConfig
    init: RunPlan | None = None

    @property
    def key(self) -> str:
        identity = {"config": self.config, "eval": asdict(self.eval), "init": self.init.key if self.init else None}
        return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]

    def directory(self, root: Path) -> Path:
        """``runs/<name>-s<seed>-<key>``; an identical run made under another name (another experiment's
        arm) is the same run, found by its key."""
        key = self.key
        existing = sorted((root / "runs").glob(f"*-s{self.seed}-{key}"))
        return existing[0] if existing else root / "runs" / f"{self.name}-s{self.seed}-{key}"

    @property
    def steps(self) -> int:
        return int(self.config["trainer"]["max_steps"])

    @property
    def total_steps(self) -> int:
        """Training steps including those of the runs it starts from (its total compute)."""
        return self.steps + (self.init.total_steps if self.init else 0)


# ------------------------------------------------------------------------------------------------ planning
def training_sources(options: RunOptions) -> list[str]:
    if options.quick:
        from ..io.samples import sample_video_path

        return [str(sample_video_path(QUICK_TRAIN_SAMPLE))]
    if options.opencv_dir is None or not options.opencv_dir.is_dir():
        raise OneVAEError(f"the OpenCV clips are missing ({options.opencv_dir}): run `make data` (scripts/fetch_opencv_clips.sh)")
    folder = options.data_dir / f"train{options.short_side}"
    prepare_training_clips(folder, options.opencv_dir, options.short_side)
    return [str(folder)]


def plan_run(spec: ExperimentSpec, name: str, seed: int, options: RunOptions, sources: list[str]) -> RunPlan:
    arm: ArmSpec = spec.arms.get(name) or spec.stages[name]
    config = deep_merge(spec.base_config(), arm.train)
    config["seed"] = seed
    config.setdefault("data", {})["sources"] = sources
    evaluation = spec.eval
    if options.quick:
        config, evaluation = quick_version(spec, config)
    init = plan_run(spec, arm.init, seed, options, sources) if arm.init else None
    if init is not None:
        config.setdefault("model", {})["init_from"] = str(init.directory(options.root) / "train" / "export")
    config.pop("output_dir", None)
    return RunPlan(spec.name, name, seed, config, evaluation, init)


def quick_version(spec: ExperimentSpec, config: dict[str, Any]) -> tuple[dict[str, Any], EvalConfig]:
    """The smoke-test version of a run: steps scaled down (schedules with them), tiny clips, sample windows."""
    quick = spec.quick
    base_steps = int(spec.base_config().get("trainer", {}).get("max_steps", 1000))
    factor = quick.max_steps / base_steps
    scaled = lambda value: max(0, round(int(value) * factor))  # noqa: E731
    config = deep_merge(config, quick.train)
    trainer = config.setdefault("trainer", {})
    trainer["max_steps"] = max(1, scaled(trainer.get("max_steps", base_steps)))
    trainer["checkpoint_every_n_steps"] = max(1, quick.max_steps // 2)
    schedule = config.setdefault("schedule", {})
    for key in ("start_step", "ramp_steps"):
        if key in schedule:
            schedule[key] = scaled(schedule[key])
    optim = config.setdefault("optim", {})
    if "warmup_steps" in optim:
        optim["warmup_steps"] = scaled(optim["warmup_steps"])
    windows = [
        EvalWindow(w.source, frames=quick.eval_frames, height=quick.eval_size, width=quick.eval_size, name=w.name)
        for w in spec.eval.windows if w.source.startswith("sample:")
    ]
    return config, EvalConfig(every_n_steps=quick.eval_every, windows=windows)


def jobs(spec: ExperimentSpec, options: RunOptions) -> list[RunPlan]:
    """The experiment's runs, seed by seed (all arms of a seed before the next seed)."""
    sources = training_sources(options)
    seeds = spec.seeds[:1] if options.quick else spec.seeds
    seeds = [s for s in seeds if options.seeds is None or s in options.seeds]
    return [plan_run(spec, arm, seed, options, sources) for seed in seeds for arm in spec.arms]


# ------------------------------------------------------------------------------------------------ running
@contextmanager
def locked(path: Path, blocking: bool) -> Iterator[bool]:
    """An exclusive lock on ``path`` (created if needed); yields False when not blocking and taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_summary(directory: Path) -> dict[str, Any] | None:
    path = directory / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_run(plan: RunPlan, options: RunOptions, blocking: bool = True) -> dict[str, Any] | None:
    """Train the run (resuming it if it was interrupted) unless it is finished; returns its summary, or None
    when another process holds it and ``blocking`` is False."""
    directory = plan.directory(options.root)
    summary = read_summary(directory)
    if summary is not None:
        return summary
    stage = ensure_run(plan.init, options, blocking) if plan.init is not None else None
    if plan.init is not None and stage is None:  # the stage it starts from is being trained elsewhere
        return None
    with locked(directory / ".lock", blocking) as got:
        if not got:
            return None
        summary = read_summary(directory)  # finished by another process while we waited
        if summary is None and stage is not None and stage.get("failed"):
            summary = _record_failure(plan, directory, f"the run it starts from failed: {stage['failed']}", options)
        if summary is None:
            summary = _train(plan, directory, options)
    return summary


def _train(plan: RunPlan, directory: Path, options: RunOptions) -> dict[str, Any]:
    import torch

    from ..configtools import build_dataclass
    from ..train.config import TrainConfig, validate
    from ..train.runner import train
    from .evaluation import HeldOutEvaluator

    if options.threads:
        torch.set_num_threads(options.threads)
    out = directory / "train"
    config: TrainConfig = build_dataclass(TrainConfig, {**plan.config, "output_dir": str(out)})
    validate(config)
    resuming = any((out / "checkpoints").glob("*.ckpt"))
    print(f"[experiment {plan.experiment}] {plan.name} seed {plan.seed}: {'resuming' if resuming else 'training'} {plan.steps} steps in {directory}", file=options.log or sys.stderr, flush=True)
    (directory / "plan.json").write_text(json.dumps({"experiment": plan.experiment, "name": plan.name, "seed": plan.seed, "key": plan.key, "init": plan.init.key if plan.init else None, "config": plan.config, "eval": asdict(plan.eval)}, indent=1, default=str))
    evaluator = HeldOutEvaluator(plan.eval, directory / "eval.csv", options.opencv_dir)
    start = time.time()
    try:
        train(config, resume="auto", extra_callbacks=[evaluator])  # "auto": the newest valid checkpoint, if any
    except OneVAEError as exc:  # a run that stops itself (non-finite losses, collapse) is a result too
        return _record_failure(plan, directory, str(exc), options)
    rows = read_eval_rows(directory / "eval.csv")
    summary = summarise(plan, rows, directory, time.time() - start)
    with atomic_path(directory / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    if not options.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the export stays (runs starting from it need it)
    print(f"[experiment {plan.experiment}] {plan.name} seed {plan.seed}: done, held-out PSNR "
          f"continuous {summary['final'].get('continuous', {}).get('psnr', float('nan')):.2f} dB, "
          f"discrete {summary['final'].get('discrete', {}).get('psnr', float('nan')):.2f} dB", file=options.log or sys.stderr, flush=True)
    return summary


def _record_failure(plan: RunPlan, directory: Path, message: str, options: RunOptions) -> dict[str, Any]:
    summary = {"key": plan.key, "experiment": plan.experiment, "name": plan.name, "seed": plan.seed, "steps": plan.steps,
               "total_steps": plan.total_steps, "seconds": None, "params": None, "tokens_per_clip": None,
               "final": {}, "step0": {}, "failed": message.splitlines()[0][:300]}
    with atomic_path(directory / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    print(f"[experiment {plan.experiment}] {plan.name} seed {plan.seed}: FAILED: {summary['failed']}", file=options.log or sys.stderr, flush=True)
    return summary


def summarise(plan: RunPlan, rows: list[dict[str, Any]], directory: Path, seconds: float) -> dict[str, Any]:
    """Final and step-0 metrics (means over the windows) of a finished run."""
    from ..configtools import build_dataclass
    from ..model import OneVAE
    from ..train.config import TrainConfig

    model_config = build_dataclass(TrainConfig, plan.config).model_config()
    last = max(r["step"] for r in rows)
    window = plan.eval.windows[0]
    return {
        "key": plan.key, "experiment": plan.experiment, "name": plan.name, "seed": plan.seed,
        "steps": plan.steps, "total_steps": plan.total_steps, "last_eval_step": last,
        "seconds": round(max(r.get("seconds") or 0.0 for r in rows) or seconds, 1),
        "params": OneVAE(model_config).num_parameters(),
        "tokens_per_clip": model_config.tokens_per_clip(window.frames, window.height, window.width) if model_config.discrete else 0,
        "final": mean_by_path([r for r in rows if r["step"] == last]),
        "step0": mean_by_path([r for r in rows if r["step"] == 0]),
    }


def mean_by_path(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for path in PATHS:
        chosen = [r for r in rows if r["path"] == path]
        if chosen:
            out[path] = {m: _mean([r[m] for r in chosen]) for m in METRICS}
    return out


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None and v == v]
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------------------------------------ results
def result_row(spec: ExperimentSpec, plan: RunPlan, summary: dict[str, Any], directory: Path) -> dict[str, Any]:
    row: dict[str, Any] = {
        "experiment": spec.name, "arm": plan.name, "label": spec.label(plan.name), "seed": plan.seed,
        "status": f"failed: {summary['failed']}" if summary.get("failed") else "ok",
        "run": directory.name, "steps": summary["steps"], "total_steps": summary["total_steps"],
        "seconds": summary["seconds"], "params": summary["params"], "tokens_per_clip": summary["tokens_per_clip"],
    }
    for path in PATHS:
        for metric in METRICS:
            key = f"{metric}_{path}"
            if key in RESULT_FIELDS:
                row[key] = summary["final"].get(path, {}).get(metric)
        row[f"psnr_{path}_step0"] = summary["step0"].get(path, {}).get("psnr")
    return row


def curve_rows(spec: ExperimentSpec, plan: RunPlan, directory: Path) -> list[dict[str, Any]]:
    return [{"experiment": spec.name, "arm": plan.name, "seed": plan.seed, **{k: r.get(k) for k in CURVE_FIELDS[3:]}}
            for r in read_eval_rows(directory / "eval.csv")]


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Write a CSV whole (temporary name, then rename) so that it is never half-written."""
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in fields} for r in rows)


def append_rows(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Add rows to a CSV (rewritten whole)."""
    write_rows(path, fields, read_csv(path) + rows)


def drop_rows(path: Path, fields: list[str], arm: str, seed: int) -> None:
    """Remove an (arm, seed)'s rows from a CSV (rewritten whole)."""
    write_rows(path, fields, [r for r in read_csv(path) if not (r["arm"] == arm and r["seed"] == str(seed))])


def experiment_dir(root: Path, spec: ExperimentSpec) -> Path:
    return root / spec.name


def record(spec: ExperimentSpec, plan: RunPlan, summary: dict[str, Any], options: RunOptions) -> bool:
    """Append the run's row and curves to the experiment's CSVs (once); True if it was new."""
    folder = experiment_dir(options.root, spec)
    directory = plan.directory(options.root)
    with locked(folder / ".csv.lock", blocking=True):
        rows = read_csv(folder / "results.csv")
        if any(r["arm"] == plan.name and r["seed"] == str(plan.seed) and r["run"] == directory.name for r in rows):
            return False
        if any(r["arm"] == plan.name and r["seed"] == str(plan.seed) for r in rows):  # a run of an older config: replaced
            drop_rows(folder / "results.csv", RESULT_FIELDS, plan.name, plan.seed)
            drop_rows(folder / "curves.csv", CURVE_FIELDS, plan.name, plan.seed)
        append_rows(folder / "curves.csv", CURVE_FIELDS, curve_rows(spec, plan, directory))
        append_rows(folder / "results.csv", RESULT_FIELDS, [result_row(spec, plan, summary, directory)])
    return True


def run_experiment(spec: ExperimentSpec, options: RunOptions, wait: bool = True) -> int:
    """Run (or continue) every (seed, arm) of the experiment; returns the number of finished rows. Runs that
    another process is training are skipped, then waited for (``wait``) or left to a later call."""
    deferred = []
    for plan in jobs(spec, options):
        summary = ensure_run(plan, options, blocking=False)
        if summary is None:  # another process is training it: come back to it at the end
            deferred.append(plan)
            continue
        record(spec, plan, summary, options)
    for plan in deferred if wait else []:
        record(spec, plan, ensure_run(plan, options, blocking=True), options)
    return len(read_csv(experiment_dir(options.root, spec) / "results.csv"))


def run_status(spec: ExperimentSpec, options: RunOptions) -> list[dict[str, Any]]:
    """Where each (arm, seed) stands: finished (with its discrete PSNR), failed, running/interrupted at a step,
    or not started; without training anything."""
    out = []
    for plan in jobs(spec, options):
        directory = plan.directory(options.root)
        summary = read_summary(directory)
        rows = read_eval_rows(directory / "eval.csv")
        if summary is not None:
            state = f"failed: {summary['failed']}" if summary.get("failed") else "finished"
        elif rows:
            state = f"at step {max(r['step'] for r in rows)} of {plan.steps}"
            with locked(directory / ".lock", blocking=False) as free:
                state += "" if free else " (running)"
        else:
            state = "not started"
        final = (summary or {}).get("final", {}).get("discrete", {}).get("psnr")
        out.append({"arm": plan.name, "seed": plan.seed, "state": state, "psnr_discrete": final, "run": directory.name})
    return out
