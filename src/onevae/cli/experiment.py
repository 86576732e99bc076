"""``onevae experiment run|report``: the paper's claims measured with our training code (docs/results.md)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OneVAEError

if TYPE_CHECKING:
    from ..experiments import ExperimentSpec, RunOptions


def add_experiment(sub) -> None:
    p = sub.add_parser("experiment", help="run the experiments of configs/experiments/ and write docs/results.md",
                       description="Arms x seeds of training runs, resumable; results appended to CSVs as runs finish.")
    commands = p.add_subparsers(dest="experiment_command", metavar="{run,status,report}", required=True)
    run = commands.add_parser("run", help="run or continue experiments (a finished run is never redone)")
    run.add_argument("experiments", nargs="+", help="experiment YAML files (configs/experiments/*.yaml)")
    run.add_argument("--quick", action="store_true", help="smoke test: one seed, a few steps, tiny clips")
    run.add_argument("--runs", default=None, help="runs root (default runs/science, runs/science-quick with --quick)")
    run.add_argument("--data", default=None, help="where the prepared training clips go (default RUNS/data)")
    run.add_argument("--opencv", default="data/opencv", help="folder with OpenCV's vtest.avi, box.mp4.gz, cup.mp4.gz (make data)")
    run.add_argument("--threads", type=int, default=None, help="torch threads (1 for a background job on a shared machine)")
    run.add_argument("--keep-checkpoints", action="store_true", help="keep the training checkpoints of finished runs")
    run.add_argument("--seeds", default=None, help="comma-separated seeds to run (default: every seed of each experiment)")
    run.add_argument("--jobs", type=int, default=1, help="runs trained at once, one process each (several runs can share a GPU); "
                     "the extra workers log to RUNS/logs/worker-K.log")
    run.set_defaults(func=run_experiments)
    status = commands.add_parser("status", help="where each (arm, seed) of the experiments stands (trains nothing)")
    status.add_argument("experiments", nargs="+", help="experiment YAML files")
    status.add_argument("--quick", action="store_true", help="the --quick runs")
    status.add_argument("--runs", default=None, help="runs root (as for run)")
    status.add_argument("--data", default=None)
    status.add_argument("--opencv", default="data/opencv")
    status.set_defaults(func=show_status)
    report = commands.add_parser("report", help="write docs/results.md and docs/results/ from the results CSVs")
    report.add_argument("--runs", default="runs/science", help="runs root the experiments wrote to")
    report.add_argument("--experiments", default="configs/experiments", help="folder of experiment YAML files")
    report.add_argument("--out", default="docs/results.md", help="the report (its CSVs and plots go to a folder beside it)")
    report.set_defaults(func=write_report)


def _options(args: argparse.Namespace):
    from ..experiments import RunOptions

    root = Path(args.runs or ("runs/science-quick" if args.quick else "runs/science"))
    return RunOptions(root=root, data_dir=Path(args.data) if args.data else root / "data",
                      opencv_dir=Path(args.opencv) if args.opencv else None, quick=args.quick,
                      threads=getattr(args, "threads", None), keep_checkpoints=getattr(args, "keep_checkpoints", False),
                      seeds=_seeds(getattr(args, "seeds", None)))


def _seeds(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise OneVAEError(f"--seeds must be comma-separated integers, got {text!r}") from None


def run_experiments(args: argparse.Namespace) -> int:
    from ..experiments import load_experiment
    from ..experiments.runner import training_sources

    specs = [load_experiment(Path(p)) for p in args.experiments]  # all checked before anything runs
    options = _options(args)
    if args.jobs < 1:
        raise OneVAEError(f"--jobs must be 1 or more, got {args.jobs}")
    workers = []
    if args.jobs > 1:
        training_sources(options)  # prepared once, before the workers read it
        workers = _start_workers(args, options.root, args.jobs - 1)
    try:
        _run_all(specs, options)
    except BaseException:  # an error or Ctrl-C here stops the workers too (each saves its run's checkpoint)
        for worker, _ in workers:
            worker.terminate()
        raise
    failed = [log for worker, log in workers if worker.wait() != 0]
    if failed:
        raise OneVAEError(f"{len(failed)} of the extra workers failed; see {', '.join(map(str, failed))}")
    return 0


def _run_all(specs: list[ExperimentSpec], options: RunOptions) -> None:
    from ..experiments import run_experiment

    # Breadth first: one seed of every experiment before the next seed, so that a run stopped early has a first
    # answer to every question; runs another process is training are left to the final pass, which waits.
    seeds = sorted({s for spec in specs for s in spec.seeds})
    for seed in seeds if options.seeds is None else [s for s in seeds if s in options.seeds]:
        for spec in specs:
            run_experiment(spec, replace(options, seeds=(seed,)), wait=False)
    for spec in specs:
        rows = run_experiment(spec, options)
        print(f"[experiment {spec.name}] {rows} finished run(s) in {options.root / spec.name / 'results.csv'}")


def _start_workers(args: argparse.Namespace, root: Path, count: int) -> list[tuple[subprocess.Popen, Path]]:
    """``count`` more processes of the same command, without ``--jobs``: each takes the runs no other process
    holds (every run is locked while trained), so they share the work; a worker's output goes to its log."""
    argv = [sys.executable, "-m", "onevae.cli.main", "experiment", "run", *args.experiments, "--runs", str(root),
            "--opencv", str(args.opencv or "")]
    for flag, value in (("--data", args.data), ("--threads", args.threads), ("--seeds", args.seeds)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--quick"] * args.quick + ["--keep-checkpoints"] * args.keep_checkpoints
    (root / "logs").mkdir(parents=True, exist_ok=True)
    workers = []
    for k in range(1, count + 1):
        log = root / "logs" / f"worker-{k}.log"
        with log.open("a") as out:
            workers.append((subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), log))
        print(f"[experiment] worker {k} started (pid {workers[-1][0].pid}), log {log}", flush=True)
        time.sleep(1)  # staggered: each takes a different first run
    return workers


def show_status(args: argparse.Namespace) -> int:
    from ..experiments import load_experiment
    from ..experiments.runner import run_status

    options = _options(args)
    for path in args.experiments:
        spec = load_experiment(Path(path))
        for row in run_status(spec, options):
            psnr = f"  tokens {row['psnr_discrete']:.2f} dB" if row["psnr_discrete"] is not None else ""
            print(f"{spec.name}  {row['arm']:<24} seed {row['seed']}  {row['state']}{psnr}  ({row['run']})")
    return 0


def write_report(args: argparse.Namespace) -> int:
    from ..experiments import find_experiments, write_results

    folder = Path(args.experiments)
    note = folder / "scale.md"  # where, on what and when the folder's runs were made
    out = write_results(find_experiments(folder), Path(args.runs), Path(args.out), note.read_text().strip() if note.is_file() else None)
    print(f"[experiment] wrote {out}")
    return 0
