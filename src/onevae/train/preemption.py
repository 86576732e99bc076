"""Stopping a training run on SIGTERM (a scheduler's preemption) or SIGINT (Ctrl-C) without losing it: the
current step finishes, ``last.ckpt`` is saved, and the run ends with :class:`~onevae.errors.Preempted`, which
the command line turns into its own exit code (75 for SIGTERM, 130 for SIGINT; docs/cli.md)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..errors import Preempted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionCallback(Callback):
    """Installed at the start of training (replacing Lightning's SIGTERM handler, which would stop the run with
    exit code 0 and no checkpoint): a signal only sets a flag; at the end of the step the run stops and
    ``on_exception`` saves the checkpoint. A second Ctrl-C stops at once."""

    def __init__(self, checkpoint_path: Path) -> None:
        self.checkpoint_path = Path(checkpoint_path)
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
        if self.signum is not None:
            log_this_step(trainer)
            name = signal.Signals(self.signum).name
            raise Preempted(
                self.signum,
                f"stopped by {name} after step {trainer.global_step}; checkpoint saved to {self.checkpoint_path}; "
                "continue with the same command and --resume auto",
                quiet=not trainer.is_global_zero,
            )

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, Preempted):
            trainer.save_checkpoint(self.checkpoint_path, weights_only=False)  # the whole state (resumable); atomic through SafeCheckpointIO

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def log_this_step(trainer: L.Trainer) -> None:
    """Send this step's logged values to the loggers (``logs/metrics.csv``) now, as Lightning would right after
    ``on_train_batch_end`` (on a logging step only), since stopping there skips it: the checkpoint holds this
    step, so a resumed run starts after it and would never log it (a gap in the CSV)."""
    connector = trainer._logger_connector  # no public hook runs between this one and Lightning's logging
    connector.on_batch_end()
    connector.update_train_step_metrics()
