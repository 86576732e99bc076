"""Writing shards: results arrive in any order; a shard is written, under a temporary name then renamed, as soon
as every clip planned for it has a sample or a failure. Members are sorted by clip id, with fixed tar headers
(mtime 0, user/group ``onevae``, mode 0444), so the bytes depend only on the clips."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import OneVAEError
from ..extras import require
from ..io.atomic import atomic_path
from .encoding import EncodedSample, Result
from .reading import ClipFailure
from .samples import clip_key

SHARD_PATTERN = "shard-{:06d}.tar"


def shard_name(number: int) -> str:
    return SHARD_PATTERN.format(number)


@contextmanager
def output_file(path: Path) -> Iterator[Path]:
    """:class:`atomic_path` for the files of a tokenize output, its I/O failures as one line (OneVAEError) that
    names the file; a full disk says that nothing half-written is left and that a rerun resumes."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as error:
        if error.errno == errno.ENOSPC or "No space left" in str(error):
            raise OneVAEError(f"disk full while writing {path} (nothing half-written was left; free space and rerun "
                              "to resume)") from None
        raise OneVAEError(f"cannot write {path}: {error.strerror or error}") from None


def require_webdataset():
    """The webdataset module that writes the shards, or a one-line error naming the extra to install."""
    return require("webdataset", "corpus", "onevae tokenize (writing webdataset shards)")


def write_shard(path: Path, samples: list[tuple[int, dict[str, bytes]]]) -> None:
    """A webdataset tar of ``samples`` (clip id, members), atomically."""
    wds = require_webdataset()

    with output_file(path) as tmp, open(tmp, "wb") as stream:
        with wds.TarWriter(stream, user="onevae", group="onevae", mode=0o444, encoder=False, mtime=0.0) as writer:
            for clip_id, members in sorted(samples, key=lambda s: s[0]):
                writer.write({"__key__": clip_key(clip_id), **members})


def write_json_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    with output_file(path) as tmp:
        tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


class ShardAssembler:
    """Collects results per shard and writes each shard once it is complete."""

    def __init__(self, out_dir: Path, errors_dir: Path, expected: dict[int, list[int]], clips_per_shard: int,
                 error_row: Callable[[int, str], dict[str, Any]], on_result: Callable[[Result], None] | None = None) -> None:
        self.out_dir, self.errors_dir, self.clips_per_shard = out_dir, errors_dir, clips_per_shard
        self.missing = {shard: set(ids) for shard, ids in expected.items()}
        self.samples: dict[int, list[tuple[int, dict[str, bytes]]]] = {shard: [] for shard in expected}
        self.errors: dict[int, list[dict[str, Any]]] = {shard: [] for shard in expected}
        self.error_row, self.on_result = error_row, on_result
        self.written: list[int] = []

    def add(self, result: Result) -> None:
        shard = result.clip_id // self.clips_per_shard
        if shard not in self.missing or result.clip_id not in self.missing[shard]:
            return  # a clip of a shard already complete (or delivered twice)
        self.missing[shard].discard(result.clip_id)
        if isinstance(result, EncodedSample):
            self.samples[shard].append((result.clip_id, result.members))
        else:
            self.errors[shard].append(self.error_row(result.clip_id, result.reason))
        if self.on_result is not None:
            self.on_result(result)
        if not self.missing[shard]:
            self._write(shard)

    def _write(self, shard: int) -> None:
        rows = sorted(self.errors.pop(shard), key=lambda r: r["clip_id"])
        write_json_lines(self.errors_dir / f"{shard_name(shard)}.errors.jsonl", rows)  # before the shard: its commit
        write_shard(self.out_dir / shard_name(shard), self.samples.pop(shard))
        del self.missing[shard]
        self.written.append(shard)

    @property
    def pending(self) -> dict[int, set[int]]:
        return self.missing

    def fail_all_pending(self, reason: str) -> None:
        for shard in list(self.missing):
            for clip_id in sorted(self.missing.get(shard, ())):
                self.add(ClipFailure(clip_id, reason))
