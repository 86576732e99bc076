"""The output folder: what a run records to resume safely, and the refusals that keep other outputs intact.

``OUT/.onevae-tokenize/`` holds ``run.json`` (model fingerprint, options and sources of the run), ``plan.jsonl``
(the probed segments and their clip ids, reused on resume) and ``errors/`` (one file per complete shard), plus
a lock so that two runs cannot write the same folder. A shard file exists only once complete, so a rerun skips
the shards present and redoes the others.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError, OneVAEError
from .plan import SegmentPlan
from .shards import output_file, shard_name

STATE_DIR = ".onevae-tokenize"
RUN_FORMAT = "onevae-corpus"
RUN_VERSION = 1
OUTPUT_FILES = ("dataset.json", "errors.jsonl", "index.parquet", "index.jsonl", "token_counts.npy")


class OutputDir:
    """Prepared, locked output folder (use as a context manager)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / STATE_DIR
        self.errors_dir = self.state / "errors"
        self._lock_file = None

    # ---------------------------------------------------------------------------------------- preparing
    @classmethod
    def prepare(cls, root: Path, run: dict[str, Any], overwrite: bool) -> OutputDir:
        out = cls(Path(root))
        out._create()
        out._lock()
        try:
            previous = out._read_run()
            if overwrite:
                out._clear()
            elif previous is None and out._has_outputs():
                raise InputError(f"{root} already holds shards or a dataset not written by a resumable onevae tokenize "
                                 "run; use another folder or --overwrite")
            elif previous is not None:
                _check_same_run(root, previous, run)
            out.errors_dir.mkdir(parents=True, exist_ok=True)
            out._remove_stale_temporaries()
            _write_json(out.state / "run.json", run)
        except BaseException:
            out.close()
            raise
        return out

    def _create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.state.mkdir(exist_ok=True)
        except OSError as error:
            raise OneVAEError(f"cannot create the output folder {self.root}: {error.strerror or error}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OneVAEError(f"cannot write to the output folder {self.root} (permission denied)")

    def _lock(self) -> None:
        try:
            self._lock_file = open(self.state / "lock", "w")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OneVAEError(f"another onevae tokenize is writing to {self.root}") from None
            raise OneVAEError(f"cannot write to the output folder {self.root}: {error.strerror or error}") from None

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def _read_run(self) -> dict[str, Any] | None:
        path = self.state / "run.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise InputError(f"{path} is unreadable; use --overwrite to start again") from None

    def _has_outputs(self) -> bool:
        return any(self.root.glob("shard-*.tar")) or any((self.root / name).exists() for name in OUTPUT_FILES)

    def _clear(self) -> None:
        """--overwrite: remove what a tokenize run writes, and nothing else."""
        for path in list(self.root.glob("shard-*.tar")) + [self.root / name for name in OUTPUT_FILES]:
            path.unlink(missing_ok=True)
        for path in self.state.iterdir():
            if path.name != "lock":
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a run that was killed (atomic_path names them ``.NAME.XXXX.tmp``)."""
        for folder in (self.root, self.errors_dir, self.state):
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)

    # ---------------------------------------------------------------------------------------- plan
    def load_plan(self) -> list[SegmentPlan] | None:
        path = self.state / "plan.jsonl"
        if not path.is_file():
            return None
        with open(path) as f:
            return [SegmentPlan.from_dict(json.loads(line)) for line in f if line.strip()]

    def save_plan(self, plans: list[SegmentPlan]) -> None:
        with output_file(self.state / "plan.jsonl") as tmp:
            with open(tmp, "w") as f:
                for plan in plans:
                    f.write(json.dumps(plan.to_dict(), sort_keys=True) + "\n")

    def complete_shards(self, count: int) -> set[int]:
        return {n for n in range(count) if (self.root / shard_name(n)).is_file()
                and (self.errors_dir / f"{shard_name(n)}.errors.jsonl").is_file()}

    def shard_path(self, number: int) -> Path:
        return self.root / shard_name(number)


def _check_same_run(root: Path, previous: dict[str, Any], run: dict[str, Any]) -> None:
    if previous.get("format") != RUN_FORMAT:
        raise InputError(f"{root} holds a run of another tool or version; use another folder or --overwrite")
    old, new = previous.get("model", {}), run["model"]
    if old.get("fingerprint") != new["fingerprint"]:
        raise InputError(
            f"{root} holds shards of another model ({old.get('name')!r}, fingerprint {old.get('fingerprint')}), "
            f"not of {new['name']!r} (fingerprint {new['fingerprint']}); use another folder or --overwrite")
    changed = sorted(k for k in set(previous.get("options", {})) | set(run["options"])
                     if previous.get("options", {}).get(k) != run["options"].get(k))
    if previous.get("dtype") != run.get("dtype"):
        changed.append("dtype")
    changed += _changed_sources(previous, run)
    if changed:
        raise InputError(f"{root} holds a run with other {', '.join(changed)}; resume with the same command, "
                         "or use another folder or --overwrite")


def _changed_sources(previous: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """What differs in where the clips come from: the SOURCEs as paths ('videos/' is 'videos'), and for relative
    ones the working directory that the recorded plan's paths are relative to. A resumed run keeps the recorded
    spelling (``run["sources"]`` is set to it), so that dataset.json is byte for byte an uninterrupted run's."""
    old, new = previous.get("sources") or [], run["sources"]
    if [os.path.normpath(s) for s in old] != [os.path.normpath(s) for s in new]:
        return ["sources"]
    relative = any(not os.path.isabs(s) for s in new)
    if relative and previous.get("cwd") not in (None, run.get("cwd")):
        return [f"working directory ({previous['cwd']}; its SOURCEs are relative paths)"]
    run["sources"] = old
    return []


def _write_json(path: Path, data: Any) -> None:
    with output_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


write_json = _write_json
