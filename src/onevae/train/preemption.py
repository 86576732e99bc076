"""Stopping a training run on SIGTERM (a scheduler's preemption) or SIGINT (Ctrl-C) without losing it: the
current step finishes, its checkpoints are saved (``last.ckpt``, and ``step=N.ckpt`` on a checkpoint step), and
the run ends with :class:`~onevae.errors.Preempted`, which the command line turns into its own exit code (75 for
SIGTERM, 130 for SIGINT; docs/cli.md).

Under DDP the stop is collective: a signal may reach one process only (``kill PID`` of the first one), so every
step the processes agree on the pending signal (an all-reduce) and all stop after the same step; the first one
then waits for the processes Lightning started for the other devices, so that the command ends after all of them
and with their code."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from ..errors import Preempted
from .checkpointing import AtomicModelCheckpoint

SIGNALS = (signal.SIGTERM, signal.SIGINT)
WAIT_FOR_PROCESSES_S = 120.0  # how long the first process waits for the others to save and exit


class PreemptionCallback(Callback):
    """Installed at the start of training (replacing Lightning's SIGTERM handler, which would stop the run with
    exit code 0 and no checkpoint): a signal only sets a flag; at the end of the step every process learns of it
    (:func:`agreed_signal`), the run stops and ``on_exception`` saves the checkpoints. A second Ctrl-C stops at once."""

    def __init__(self, checkpoint_path: Path, wait_s: float = WAIT_FOR_PROCESSES_S) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.wait_s = wait_s
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, without a checkpoint
        self.signum = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        signum = agreed_signal(trainer, self.signum)
        if signum:
            log_this_step(trainer)
            name = signal.Signals(signum).name
            raise Preempted(
                signum,
                f"stopped by {name} after step {trainer.global_step}; checkpoint saved to {self.checkpoint_path}; "
                "continue with the same command and --resume auto",
                quiet=not trainer.is_global_zero,
            )

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, Preempted):
            others = take_over_other_processes(trainer)  # before any of them can exit
            save_stop_checkpoint(trainer, self.checkpoint_path)
            wait_for_processes(others, self.wait_s)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def agreed_signal(trainer: L.Trainer, signum: int | None) -> int:
    """The stop signal any process of the run has received (0: none), the same on all of them: the maximum
    over the processes (SIGTERM wins over SIGINT). One process alone (or no process group): its own."""
    if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return signum or 0
    flag = torch.tensor([signum or 0], dtype=torch.int32, device=trainer.strategy.root_device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def save_stop_checkpoint(trainer: L.Trainer, last_path: Path) -> None:
    """The checkpoints of the step the run stopped after, named as the scheduled ones (``step=N.ckpt`` on a
    checkpoint step, ``last.ckpt``), whole and resumable; collective under DDP (the first process writes)."""
    saver = next((c for c in trainer.checkpoint_callbacks if isinstance(c, AtomicModelCheckpoint)), None)
    if saver is not None:
        saver.save_this_step(trainer)
    else:  # a trainer built without onevae's checkpoint callback
        trainer.save_checkpoint(last_path, weights_only=False)  # atomic through SafeCheckpointIO


def take_over_other_processes(trainer: L.Trainer) -> list[subprocess.Popen]:
    """The processes Lightning's launcher started for the other devices (in the first process of a run that
    Lightning launched itself; none elsewhere), taken from its watcher thread, which SIGKILLs every process as
    soon as one of them exits with a code other than 0, as a stopped one does (75). The watcher shares the
    launcher's ``procs`` list: emptied, it ends quietly. A launcher without that list (another Lightning)
    leaves the watcher as it is."""
    procs = getattr(getattr(trainer.strategy, "launcher", None), "procs", None)
    if not isinstance(procs, list):
        return []
    others = list(procs)
    procs.clear()
    return others


def wait_for_processes(processes: list[subprocess.Popen], timeout_s: float) -> None:
    """Wait until ``processes`` have exited, at most ``timeout_s`` in all; kill the ones still running then
    (the checkpoint is saved by then: the processes pass the same barrier)."""
    deadline = time.monotonic() + timeout_s
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[onevae] process {proc.pid} of the run did not stop within {timeout_s:.0f} s; killed", file=sys.stderr)
            proc.kill()
            proc.wait()


def log_this_step(trainer: L.Trainer) -> None:
    """Send this step's logged values to the loggers (``logs/metrics.csv``) now, as Lightning would right after
    ``on_train_batch_end`` (on a logging step only), since stopping there skips it: the checkpoint holds this
    step, so a resumed run starts after it and would never log it (a gap in the CSV)."""
    connector = trainer._logger_connector  # no public hook runs between this one and Lightning's logging
    connector.on_batch_end()
    connector.update_train_step_metrics()
