"""``--engine local``: readers in worker processes, the model in this process, overlapped.

``workers`` processes (spawned once, one torch thread each) first probe the segments, then read and fit the
planned clips and send them as parts through a bounded queue; this process encodes them on its device as they
arrive and hands the results to the shard writer. With ``workers=0`` everything runs in this process (no
overlap; for debugging). A reader process that dies (a crashing decoder) fails what it was working on and is
replaced; a reader whose parent is killed (SIGKILL) ends by itself.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import OneVAEError
from .encoding import EncodeStage, Result
from .plan import ClipSettings, SegmentPlan
from .reading import ClipFailure, ClipPart, plan_segment, read_clips
from .sources import Segment

_QUEUE_PARTS = 8  # parts waiting for the model, per worker
_POLL_S = 1.0
_IDLE_POLLS_LOST = 10  # polls with every reader idle, no task queued and work unfinished: that work was lost


class _Orphaned(Exception):
    """The process that started this reader is gone (killed): nobody will read what the reader sends."""


def _parent_alive() -> bool:
    parent = mp.parent_process()
    return parent is None or parent.is_alive()


def _get(tasks):
    """The next task (None: stop); _Orphaned once the parent process is gone."""
    while True:
        try:
            return tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if not _parent_alive():
                raise _Orphaned from None


def _put(results, message) -> None:
    """Send a message, waiting while the queue is full, unless the parent process is gone."""
    while True:
        try:
            results.put(message, timeout=_POLL_S)
            return
        except queue.Full:
            if not _parent_alive():
                raise _Orphaned from None


def _reader_main(worker: int, settings: ClipSettings, tasks, results) -> None:
    """A reader process's loop; it ends on the None task, or by itself once the parent is killed (SIGKILL
    leaves no chance to send the None)."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    scratch = Path(tempfile.mkdtemp(prefix="onevae-reader-"))
    try:
        _serve(worker, settings, tasks, results, scratch)
    except _Orphaned:
        results.cancel_join_thread()  # what is still buffered has no reader: do not wait to flush it at exit
    finally:
        for path in scratch.glob("*"):
            path.unlink(missing_ok=True)
        scratch.rmdir()


def _serve(worker: int, settings: ClipSettings, tasks, results, scratch: Path) -> None:
    while (task := _get(tasks)) is not None:
        kind, payload = task
        if kind == "plan":
            segment = Segment.from_dict(payload)
            _put(results, ("start", worker, segment.index))
            _put(results, ("planned", worker, plan_segment(segment, settings).to_dict()))
            continue
        plan, wanted = SegmentPlan.from_dict(payload[0]), set(payload[1])
        _put(results, ("start", worker, plan.segment.index))
        for message in read_clips(plan, settings, wanted, scratch):
            _put(results, ("message", worker, message))
        _put(results, ("done", worker, plan.segment.index))


class ReaderPool:
    """``workers`` reader processes, used for planning and then for reading (``workers=0``: this process)."""

    def __init__(self, settings: ClipSettings, workers: int) -> None:
        self.settings, self.workers = settings, workers
        self.processes: dict[int, mp.Process] = {}
        self.current: dict[int, int | None] = {}  # worker -> segment it works on
        self._next = 0
        if workers > 0:
            self.ctx = mp.get_context("spawn")
            self.tasks, self.results = self.ctx.Queue(), self.ctx.Queue(maxsize=_QUEUE_PARTS * workers)
            for _ in range(workers):
                self._start()

    def _start(self) -> None:
        worker, self._next = self._next, self._next + 1
        process = self.ctx.Process(target=_reader_main, args=(worker, self.settings, self.tasks, self.results), daemon=True)
        process.start()
        self.processes[worker], self.current[worker] = process, None

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        if self.workers <= 0:
            return
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes.values():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self.processes.clear()
        self.tasks.close()
        self.results.close()
        self.tasks.cancel_join_thread()
        self.results.cancel_join_thread()

    # ------------------------------------------------------------------------------------------ planning
    def plan(self, segments: list[Segment]) -> list[SegmentPlan]:
        if self.workers <= 0:
            return [plan_segment(s, self.settings) for s in segments]
        for segment in segments:
            self.tasks.put(("plan", segment.to_dict()))
        by_index = {s.index: s for s in segments}
        plans: dict[int, SegmentPlan] = {}

        def lost(index: int, why: str) -> None:
            plans[index] = SegmentPlan(by_index[index], error=f"{by_index[index].label}: {why}")

        for kind, worker, payload in self._events(lambda: len(plans) < len(segments), lost):
            if kind == "planned":
                plan = SegmentPlan.from_dict(payload)
                plans[plan.segment.index] = plan
                self.current[worker] = None
        return [plans[s.index] for s in segments]

    # ------------------------------------------------------------------------------------------ reading
    def read(self, plans: list[SegmentPlan], wanted: set[int], stage: EncodeStage,
             deliver: Callable[[Result], None]) -> None:
        """Read, encode and deliver every wanted clip of ``plans``."""
        tasks = [(p, sorted(c for c in p.clip_ids() if c in wanted)) for p in plans]
        tasks = [t for t in tasks if t[1]]
        if self.workers <= 0:
            for plan, ids in tasks:
                for message in read_clips(plan, self.settings, set(ids)):
                    _handle(stage, message, deliver)
            return
        by_segment = {plan.segment.index: (plan, ids) for plan, ids in tasks}
        remaining = set(by_segment)
        finished: dict[int, set[int]] = {}  # segment -> clips delivered
        for plan, ids in tasks:
            self.tasks.put(("read", (plan.to_dict(), ids)))

        def lost(segment: int, why: str) -> None:
            plan, ids = by_segment[segment]
            for clip_id in ids:
                if clip_id not in finished.get(segment, set()):
                    stage.open.pop(clip_id, None)
                    deliver(ClipFailure(clip_id, f"{plan.segment.label}: {why}"))
            remaining.discard(segment)

        for kind, worker, payload in self._events(lambda: bool(remaining), lost):
            if kind == "done":
                self.current[worker] = None
                remaining.discard(payload)
            elif kind == "message":
                final = isinstance(payload, ClipFailure) or (isinstance(payload, ClipPart) and payload.final)
                segment = self.current.get(worker)
                if final and segment is not None:
                    finished.setdefault(segment, set()).add(payload.clip_id)
                _handle(stage, payload, deliver)

    def _events(self, unfinished: Callable[[], bool], lost: Callable[[int, str], None]):
        """Messages from the readers while ``unfinished()``; the work of a dead reader goes to ``lost``."""
        idle_polls = 0
        while unfinished():
            try:
                kind, worker, payload = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                self._replace_dead(lost)
                idle = all(s is None for s in self.current.values()) and self.tasks.empty()
                idle_polls = idle_polls + 1 if idle else 0
                if idle_polls >= _IDLE_POLLS_LOST:  # a reader died between taking a task and announcing it
                    raise OneVAEError("a reader process was lost with its task; rerun the same command to resume") from None
                continue
            idle_polls = 0
            if kind == "start":
                self.current[worker] = payload
            else:
                yield kind, worker, payload

    def _replace_dead(self, lost: Callable[[int, str], None]) -> None:
        for worker, process in list(self.processes.items()):
            if process.is_alive():
                continue
            segment = self.current.pop(worker, None)
            del self.processes[worker]
            if segment is not None:
                lost(segment, f"the reader process died (exit code {process.exitcode}) while reading it")
            self._start()


def _handle(stage: EncodeStage, message, deliver: Callable[[Result], None]) -> None:
    result = stage.handle(message)
    if result is not None:
        deliver(result)
