"""``--engine local``: readers in worker processes, the model in this process, overlapped.

``workers`` processes (spawned, one torch thread each) probe the segments, then read and fit the planned clips and
send them as parts through a bounded queue; this process encodes them one by one on its device and hands the
results to the shard writer. With ``workers=0`` everything runs in this process (no overlap; for debugging). A
reader process that dies (a crashing decoder) fails the clips it was reading and is replaced.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from .encoding import EncodeStage, Result
from .plan import ClipSettings, SegmentPlan
from .reading import ClipFailure, ClipPart, plan_segment, read_clips
from .sources import Segment

_QUEUE_PARTS = 8  # parts waiting for the model, per worker
_POLL_S = 1.0
_IDLE_POLLS_LOST = 10  # polls with every reader idle, no task queued and segments unfinished: those were lost


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _plan_one(args: tuple[Segment, ClipSettings]) -> SegmentPlan:
    return plan_segment(*args)


def plan_segments(segments: list[Segment], settings: ClipSettings, workers: int) -> list[SegmentPlan]:
    if workers <= 0 or len(segments) < 2:
        return [plan_segment(s, settings) for s in segments]
    with mp.get_context("spawn").Pool(min(workers, len(segments)), initializer=_init_worker) as pool:
        return list(pool.imap(_plan_one, [(s, settings) for s in segments], chunksize=4))


def _reader_main(worker: int, settings: ClipSettings, tasks, results) -> None:
    _init_worker()
    scratch = Path(tempfile.mkdtemp(prefix="onevae-reader-"))
    try:
        while True:
            task = tasks.get()
            if task is None:
                break
            plan, wanted = SegmentPlan.from_dict(task[0]), set(task[1])
            results.put(("start", worker, plan.segment.index))
            for message in read_clips(plan, settings, wanted, scratch):
                results.put(("message", worker, message))
            results.put(("done", worker, plan.segment.index))
    finally:
        for path in scratch.glob("*"):
            path.unlink(missing_ok=True)
        scratch.rmdir()


def run_local(plans: list[SegmentPlan], wanted: set[int], settings: ClipSettings, stage: EncodeStage,
              deliver: Callable[[Result], None], workers: int) -> None:
    """Read, encode and deliver every wanted clip of ``plans``."""
    tasks = [(p, sorted(c for c in p.clip_ids() if c in wanted)) for p in plans]
    tasks = [t for t in tasks if t[1]]
    if workers <= 0:
        for plan, ids in tasks:
            for message in read_clips(plan, settings, set(ids)):
                _handle(stage, message, deliver)
        return
    _run_with_workers(tasks, settings, stage, deliver, min(workers, max(1, len(tasks))))


def _handle(stage: EncodeStage, message, deliver: Callable[[Result], None]) -> None:
    result = stage.handle(message)
    if result is not None:
        deliver(result)


def _run_with_workers(tasks: list[tuple[SegmentPlan, list[int]]], settings: ClipSettings, stage: EncodeStage,
                      deliver: Callable[[Result], None], workers: int) -> None:
    ctx = mp.get_context("spawn")
    task_queue, results = ctx.Queue(), ctx.Queue(maxsize=_QUEUE_PARTS * workers)
    by_segment = {plan.segment.index: (plan, ids) for plan, ids in tasks}
    for plan, ids in tasks:
        task_queue.put((plan.to_dict(), ids))
    processes: dict[int, mp.Process] = {}
    current: dict[int, Optional[int]] = {}  # worker -> segment it is reading
    finished: dict[int, set[int]] = {}  # segment -> clips delivered

    def start(worker: int) -> None:
        process = ctx.Process(target=_reader_main, args=(worker, settings, task_queue, results), daemon=True)
        process.start()
        processes[worker], current[worker] = process, None

    for worker in range(workers):
        start(worker)
    remaining = set(by_segment)
    next_worker, idle_polls = workers, 0
    try:
        while remaining:
            try:
                kind, worker, payload = results.get(timeout=_POLL_S)
                idle_polls = 0
            except queue.Empty:
                next_worker = _replace_dead(processes, current, by_segment, finished, remaining, stage, deliver,
                                            start, next_worker)
                idle_polls = idle_polls + 1 if all(s is None for s in current.values()) and task_queue.empty() else 0
                if idle_polls >= _IDLE_POLLS_LOST:  # a reader died between taking a task and announcing it
                    _fail_segments(remaining, by_segment, finished, stage, deliver, "its reader process was lost")
                    remaining.clear()
                continue
            if kind == "start":
                current[worker] = payload
            elif kind == "done":
                current[worker] = None
                remaining.discard(payload)
            else:
                if isinstance(payload, (ClipPart, ClipFailure)) and (not isinstance(payload, ClipPart) or payload.final):
                    segment = current.get(worker)
                    if segment is not None:
                        finished.setdefault(segment, set()).add(payload.clip_id)
                _handle(stage, payload, deliver)
    finally:
        for _ in processes:
            task_queue.put(None)
        for process in processes.values():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        task_queue.close()
        results.close()


def _replace_dead(processes, current, by_segment, finished, remaining, stage, deliver, start, next_worker) -> int:
    """Fail the unfinished clips of a reader that died, and start another reader in its place."""
    for worker, process in list(processes.items()):
        if process.is_alive():
            continue
        segment = current.pop(worker, None)
        del processes[worker]
        if segment is not None and segment in remaining:
            _fail_segments({segment}, by_segment, finished, stage, deliver,
                           f"the reader process died (exit code {process.exitcode}) while decoding it")
            remaining.discard(segment)
        if remaining:
            start(next_worker)
            next_worker += 1
    return next_worker


def _fail_segments(segments, by_segment, finished, stage: EncodeStage, deliver, why: str) -> None:
    for segment in sorted(segments):
        plan, ids = by_segment[segment]
        for clip_id in ids:
            if clip_id not in finished.get(segment, set()):
                stage.open.pop(clip_id, None)
                deliver(ClipFailure(clip_id, f"{plan.segment.label}: {why}"))
