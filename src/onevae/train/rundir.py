"""The run directory (``output_dir``) of ``onevae train``: created, locked against a second run, and never
overwritten by a new run unless asked (``--overwrite``); ``--resume`` continues the run that is there."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from ..errors import OneVAEError

LOCK_NAME = ".onevae-train.lock"
RUN_PARTS = ("checkpoints", "export", "logs", "tb", "media")  # the folders a run writes
RUN_FILES = ("validation.jsonl", "init_report.json")  # its files, besides config.yaml (always rewritten)


def is_launcher_process() -> bool:
    """False in the processes Lightning starts for the other devices of a DDP run (they re-run the command);
    only the first process checks, locks and clears the directory."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def has_previous_run(out: Path) -> bool:
    return any((out / "checkpoints").glob("*.ckpt")) or (out / "export" / "model.safetensors").is_file()


class RunDirectory:
    """Context manager: ``output_dir`` created and exclusively locked for the duration of the run.

    Refuses (before anything is built) a directory that is a file or not writable, one that another
    ``onevae train`` holds, and a previous run's directory unless ``resume`` or ``overwrite`` is given;
    ``overwrite`` removes that run's checkpoints, export and logs first. A directory this run created is removed
    again when the run fails before it logged a step or saved a checkpoint (a missing data source, say), so that
    a failed start leaves nothing behind."""

    def __init__(self, out: Path, resume: str | None, overwrite: bool) -> None:
        self.out, self.resume, self.overwrite = Path(out), resume, overwrite
        self._lock_fd: int | None = None
        self._created = False

    def __enter__(self) -> RunDirectory:
        if not is_launcher_process():
            return self
        if self.resume is not None and self.overwrite:
            raise OneVAEError("give either --resume or --overwrite, not both")
        self._created = not self.out.exists()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OneVAEError(f"cannot use output_dir {self.out}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._release()
            raise OneVAEError(f"output_dir {self.out} is in use by another onevae train; wait for it or choose another output_dir") from None
        try:
            self._check_previous_run()
        except BaseException:
            self._release()
            raise
        return self

    def _check_previous_run(self) -> None:
        if self.resume is not None or not has_previous_run(self.out):
            return
        if not self.overwrite:
            raise OneVAEError(
                f"output_dir {self.out} holds a previous run; continue it with --resume auto, start over with "
                "--overwrite (its checkpoints and export are deleted), or choose another output_dir"
            )
        for part in RUN_PARTS:
            if (self.out / part).is_dir():
                shutil.rmtree(self.out / part)
        for name in RUN_FILES:
            (self.out / name).unlink(missing_ok=True)

    def __exit__(self, exc_type, *exc) -> bool:
        self._release()
        if exc_type is not None and self._created and not has_previous_run(self.out) and not (self.out / "logs" / "metrics.csv").exists():
            shutil.rmtree(self.out, ignore_errors=True)
        return False

    def _release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
