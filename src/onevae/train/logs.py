"""The CSV metrics log of a run (``logs/metrics.csv``), kept across ``--resume``.

Lightning's CSVLogger deletes an existing ``metrics.csv`` when it starts; a resumed run would lose every row
before the resume point. :class:`ResumableCSVLogger` keeps the rows of the steps the checkpoint contains
(those logged after it were undone by resuming, and are logged again) and appends from there."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ..io.atomic import atomic_path


class _ResumedExperimentWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_step: int | None) -> None:
        path = Path(log_dir) / self.NAME_METRICS_FILE
        header, rows = read_rows_before(path, resume_step) if resume_step is not None else ([], [])
        super().__init__(log_dir)  # removes the old file
        if header:
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(rows)
            self.metrics_keys = list(header)


def read_rows_before(path: Path, step: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows whose ``step`` is below ``step``."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if _step(row) is not None and _step(row) < step]
        return list(reader.fieldnames or []), rows


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(float(row.get("step") or ""))
    except ValueError:
        return None


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger that, given the step a run resumes from, keeps the rows logged before it."""

    def __init__(self, *args, resume_step: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumedExperimentWriter(log_dir=self.log_dir, resume_step=self.resume_step)
        return self._experiment
