"""What ``onevae tokenize SOURCE...`` reads: SOURCE arguments -> an ordered list of :class:`Segment` (one video,
or one manifest row's time range of a video), without opening any video.

A SOURCE is a folder (its media files, recursively, sorted), a glob (``**`` recursive), a text list (``.txt``,
``.lst``, ``.list``: one path per line), a CSV/TSV or Parquet manifest (a path column, optional start/end times
in seconds, any other columns carried into each clip's metadata), a webdataset ``.tar`` shard of videos (each
sample's video member; the sample's ``.json`` object and ``.txt`` members are carried as columns), a video, or
numbered frames (``frames/%05d.png``: one segment, as the other commands read it as one clip). A frame pattern whose
folder part is a glob (``DAVIS/JPEGImages/480p/*/%05d.jpg``) is one segment per matching folder holding frames for
it, sorted. Lists and manifests may name patterns too; their relative paths are relative to the list's folder.

A folder stays a folder of files, each a clip: one whose images look like numbered frames (more than
:data:`FRAME_HINT_COUNT`) is warned of once, with the pattern SOURCE that reads them as clips. The order of the
segments is the order of the SOURCE arguments, then of the rows (folders and globs sorted), so it does not depend
on the machine.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.video_dataset import LIST_EXTENSIONS, is_media_file
from ..errors import InputError
from ..io.frame_files import FIRST_NUMBERS, holds_frames, is_frame_sequence, looks_numbered, numbered
from ..io.video import IMAGE_EXTENSIONS

MANIFEST_EXTENSIONS = (".csv", ".tsv", ".parquet")
SHARD_EXTENSIONS = (".tar",)
FRAME_HINT_COUNT = 100  # a folder SOURCE with more images named as numbered frames than this gets the pattern hint
OUTPUT_MARKER = ".onevae-tokenize"  # the state folder of a tokenize output (onevae.corpus.state.STATE_DIR)


@dataclass(frozen=True)
class ManifestColumns:
    """Names of the manifest columns that locate a clip; every other column is carried as metadata."""

    path: str = "path"
    start: str = "start"
    end: str = "end"


@dataclass
class Segment:
    """One video (or a time range of it) to cut into clips."""

    index: int
    path: str  # the video file, or the tar shard holding it
    member: str = ""  # the member's name inside a tar shard ("" for a plain file)
    offset: int = 0  # byte offset of the member's data in the shard
    size: int = 0
    start_s: float | None = None
    end_s: float | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # where it was listed (manifest and row), for error messages

    @property
    def label(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(**data)


def expand_sources(sources: list[str], columns: ManifestColumns = ManifestColumns()) -> list[Segment]:
    """Every segment of the SOURCE arguments, numbered in order; InputError when a SOURCE gives nothing."""
    if not sources:
        raise InputError("give at least one SOURCE (a folder, glob, list, manifest, tar shard, video or frame pattern)")
    segments: list[Segment] = []
    for source in sources:
        found = list(_expand_one(source, columns))
        if not found:
            raise InputError(f"SOURCE {source} matches no video (no media files, rows or shard members)")
        segments.extend(found)
    for index, segment in enumerate(segments):
        segment.index = index
    _warn_of_repeats(segments)
    return segments


def _warn_of_repeats(segments: list[Segment]) -> None:
    """One warning when SOURCEs list the very same segment (same file, range and columns) more than once: each
    copy is tokenized again. The same range with other columns (several captions of a clip) is not a repeat."""
    seen: set[str] = set()
    repeats = []
    for segment in segments:
        key = json.dumps([segment.path, segment.member, segment.start_s, segment.end_s, segment.columns], sort_keys=True, default=str)
        if key in seen:
            repeats.append(segment)
        seen.add(key)
    if repeats:
        warnings.warn(f"{len(repeats)} segment(s) are listed more than once with the same columns (first: {repeats[0].label}"
                      f"{', ' + repeats[0].origin if repeats[0].origin else ''}); each copy is tokenized again", UserWarning, stacklevel=3)


def _expand_one(source: str, columns: ManifestColumns) -> Iterator[Segment]:
    path = Path(source)
    if is_frame_sequence(source):
        yield from _frame_patterns(path)
        return
    if glob.has_magic(source) and not path.exists():
        for match in sorted(glob.glob(source, recursive=True)):
            yield from _expand_path(Path(match), columns, from_glob=True)
        return
    if not path.exists():
        raise InputError(f"SOURCE {source}: no such file or folder")
    yield from _expand_path(path, columns, from_glob=False)


def _expand_path(path: Path, columns: ManifestColumns, from_glob: bool) -> Iterator[Segment]:
    suffix = path.suffix.lower()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        _hint_frame_folders(path, files)
        for file in files:
            if is_media_file(file):
                yield _segment(file)
            elif file.suffix.lower() in SHARD_EXTENSIONS and not (file.parent / OUTPUT_MARKER).exists():
                yield from _shard_members(file)  # (not the token shards of an earlier tokenize run)
    elif suffix in MANIFEST_EXTENSIONS:
        yield from _manifest_rows(path, columns)
    elif suffix in LIST_EXTENSIONS:
        yield from _list_entries(path)
    elif suffix in SHARD_EXTENSIONS:
        yield from _shard_members(path)
    elif is_media_file(path) or not from_glob:
        yield _segment(path)  # not a known media extension: FFmpeg decides, failures go to errors.jsonl


# ------------------------------------------------------------------------------------------ numbered frames
def _frame_patterns(pattern: Path) -> Iterator[Segment]:
    """A frame pattern: one segment; with glob magic in its folder part, one per matching folder that holds a file
    the pattern prints (sorted). InputError when no folder does."""
    folders = [Path(f) for f in sorted(glob.glob(str(pattern.parent), recursive=True))] \
        if glob.has_magic(str(pattern.parent)) else [pattern.parent]
    found = [folder / pattern.name for folder in folders if folder.is_dir() and holds_frames(folder / pattern.name)]
    if not found:
        raise InputError(f"SOURCE {pattern}: no file matches this frame pattern (e.g. {numbered(pattern, 1)})")
    yield from (_segment(p) for p in found)


def _hint_frame_folders(root: Path, files: list[Path]) -> None:
    """One warning when a folder SOURCE holds more than FRAME_HINT_COUNT images that read as numbered frames (in
    folders holding 2 or more files of one name pattern, one of them numbered 0..4, so the pattern reads them), each
    then a one-image clip: the hint names the pattern SOURCE (the most common folder depth and name)."""
    runs: dict[tuple[Path, str], list[int]] = {}
    for file in files:
        found = looks_numbered(file.name) if file.suffix.lower() in IMAGE_EXTENSIONS else None
        if found is not None:
            runs.setdefault((file.parent, found[0]), []).append(found[1])
    frames: dict[tuple[int, str], int] = {}
    for (folder, pattern), numbers in runs.items():
        if len(numbers) >= 2 and min(numbers) in FIRST_NUMBERS:
            key = (len(folder.relative_to(root).parts), pattern)
            frames[key] = frames.get(key, 0) + len(numbers)
    total = sum(frames.values())
    if total <= FRAME_HINT_COUNT:
        return
    depth, pattern = max(frames, key=lambda key: (frames[key], key[1]))
    hint = Path(root, *["*"] * depth, pattern)
    warnings.warn(f"{root}: {total} images named as numbered frames are each tokenized as a one-frame clip; to read "
                  f"each folder of frames as one clip, give a pattern: onevae tokenize \"{hint}\"", UserWarning, stacklevel=4)


def _segment(path: Path, origin: str = "", **fields: Any) -> Segment:
    return Segment(index=0, path=str(path), origin=origin, **fields)


def _resolve(entry: str, base: Path) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else base / path


# ------------------------------------------------------------------------------------------ text lists
def _list_entries(path: Path) -> Iterator[Segment]:
    """One path per line; blank lines and '#' comments skipped; a folder entry expands to its media files."""
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        target = _resolve(entry, path.parent)
        if target.is_dir():
            yield from (_segment(f) for f in sorted(target.rglob("*")) if f.is_file() and is_media_file(f))
        else:
            yield _segment(target, origin=f"{path} line {number}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the list ({getattr(exc, 'strerror', None) or exc})") from None


# ------------------------------------------------------------------------------------------ manifests
def _manifest_rows(path: Path, columns: ManifestColumns) -> Iterator[Segment]:
    rows = _read_parquet(path) if path.suffix.lower() == ".parquet" else _read_csv(path)
    if not rows:
        return
    if columns.path not in rows[0]:
        raise InputError(
            f"manifest {path} has no {columns.path!r} column (columns: {', '.join(map(str, rows[0]))}); "
            "name the path column with --path-column"
        )
    for number, row in enumerate(rows):
        origin = f"{path} row {number}"
        value = row.get(columns.path)
        if value is None or str(value).strip() == "":
            raise InputError(f"{origin}: empty {columns.path!r}")
        start = _seconds(row.get(columns.start), origin, columns.start)
        end = _seconds(row.get(columns.end), origin, columns.end)
        if start is not None and end is not None and end <= start:
            raise InputError(f"{origin}: {columns.end}={end} is not after {columns.start}={start}")
        extra = {k: _jsonable(v) for k, v in row.items() if k not in (columns.path, columns.start, columns.end)}
        yield _segment(_resolve(str(value).strip(), path.parent), origin=origin, start_s=start, end_s=end, columns=extra)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"manifest {path} is not a readable CSV file ({getattr(exc, 'strerror', None) or exc})") from None


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"manifest {path}: reading Parquet needs pyarrow (pip install 'onevae[corpus]')") from None
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"manifest {path} is not a readable Parquet file ({exc})") from None


def _seconds(value: Any, origin: str, name: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{origin}: {name}={value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"{origin}: {name}={value!r} must be a time >= 0 in seconds")
    return seconds


def _jsonable(value: Any) -> Any:
    """Manifest values as JSON types (Parquet gives dates, decimals, numpy scalars...)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# ------------------------------------------------------------------------------------------ tar shards
def _shard_members(path: Path) -> Iterator[Segment]:
    """The video/image member of each sample of a webdataset shard, located by byte offset (random access)."""
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(path, "r:") as tar:  # uncompressed: members can be read back by offset
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and "." in base and not base.startswith("."):
                    key = member.name[: len(member.name) - len(base)] + base.split(".", 1)[0]
                    samples.setdefault(key, {})[base.split(".", 1)[1].lower()] = member
            for key, members in samples.items():
                media = next((m for ext, m in members.items() if is_media_file(Path(f"x.{ext}"))), None)
                if media is None:
                    continue
                yield _segment(path, origin=f"{path} sample {key}", member=media.name, offset=media.offset_data,
                               size=media.size, columns=_sample_columns(tar, members))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"shard {path} is not a readable uncompressed tar file ({exc})") from None


def _sample_columns(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, Any]:
    """A sample's JSON object (its fields) and text members (``txt`` -> ``caption``-like columns by extension)."""
    columns: dict[str, Any] = {}
    if "json" in members:
        try:
            data = json.loads(tar.extractfile(members["json"]).read())
        except ValueError:
            data = None
        if isinstance(data, dict):
            columns.update({str(k): _jsonable(v) for k, v in data.items()})
    for ext, member in members.items():
        if ext.endswith("txt"):
            columns[ext] = tar.extractfile(member).read().decode("utf-8", "replace")
    return columns
