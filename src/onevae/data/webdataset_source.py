"""Clips from webdataset-style tar shards: each sample is a video or image member (``000123.mp4``), optionally
with a ``000123.json`` beside it, members of one sample being consecutive and sharing the key before the first dot.

Read with Python's :mod:`tarfile` rather than the ``webdataset`` package: the format is only a tar, the package is
an optional dependency whose API changed across versions, and doing it here gives exact shard splitting across DDP
ranks and DataLoader workers and lets each member go through the same decoding and clip sampling as
:class:`~onevae.data.video_dataset.VideoClipDataset` (the member is written to a temporary file, read by
:mod:`onevae.io.video`, and deleted).

Splitting: the (shuffled, same for all) shard list is dealt out to the ``world_size * num_workers`` readers;
with fewer shards than readers, every reader scans all shards and keeps every n-th sample instead. Readers can
get different numbers of samples when shards differ in size (as with any webdataset pipeline).
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import InputError, OneVAEError
from ..io.paths import PathLike
from ..io.video import probe_video
from .video_dataset import (
    DEFAULT_EXCLUDE,
    ClipSampler,
    DataWarning,
    is_excluded,
    is_image_file,
    is_media_file,
    list_media_files,
    validate_num_frames,
)

_BRACE_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


# ============================================================================================ shard lists


def expand_shards(sources: PathLike | Iterable[PathLike]) -> list[Path]:
    """Shard paths from files, folders (their ``*.tar``), globs and ``{000000..000009}`` ranges."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    shards: list[Path] = []
    for source in sources:
        for pattern in _expand_braces(str(source)):
            shards.extend(_expand_one(pattern))
    if not shards:
        raise InputError(f"no .tar shards found in {list(map(str, sources))}")
    return list(dict.fromkeys(shards))


def missing_shards(sources: Iterable[PathLike]) -> list[str]:
    """The shard files and folders that ``sources`` spell out (``{000000..000009}`` ranges expanded) but that do
    not exist; globs are not checked here (one that matches nothing is refused when the shards are listed)."""
    patterns = [p for source in sources for p in _expand_braces(str(source))]
    return [p for p in patterns if not glob.has_magic(p) and not Path(p).exists()]


def _expand_braces(pattern: str) -> list[str]:
    match = _BRACE_RANGE.search(pattern)
    if not match:
        return [pattern]
    low, high, width = int(match.group(1)), int(match.group(2)), len(match.group(1))
    heads = [pattern[: match.start()] + str(i).zfill(width) for i in range(low, high + 1)]
    return [head + tail for head in heads for tail in _expand_braces(pattern[match.end() :])]


def _expand_one(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():
        return sorted(path.glob("*.tar"))
    if glob.has_magic(pattern):
        return [Path(p) for p in sorted(glob.glob(pattern))]
    if not path.is_file():
        raise InputError(f"shard {path} does not exist")
    return [path]


# ============================================================================================ writing


def write_shards(
    paths: PathLike | Iterable[PathLike],
    out_dir: PathLike,
    samples_per_shard: int = 100,
    prefix: str = "shard",
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> list[Path]:
    """Pack media files (or folders / list files of them) into ``{prefix}-000000.tar``, ... in ``out_dir``.

    Each sample is ``{key}.{ext}`` plus ``{key}.json`` (``{"source": file name}``); each shard is written to a
    temporary name and renamed when complete. Returns the shard paths.
    """
    if samples_per_shard < 1:
        raise InputError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    files = list_media_files(paths, exclude)
    if not files:
        raise InputError(f"no video or image files to pack in {paths!s}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for number, first in enumerate(range(0, len(files), samples_per_shard)):
        shard = out_dir / f"{prefix}-{number:06d}.tar"
        _write_one_shard(shard, files[first : first + samples_per_shard], first)
        shards.append(shard)
    return shards


def _write_one_shard(shard: Path, files: list[Path], first_key: int) -> None:
    tmp = shard.with_name(f".{shard.name}.tmp")
    try:
        with tarfile.open(tmp, "w") as tar:
            for key, path in enumerate(files, start=first_key):
                if not path.is_file():
                    raise InputError(f"cannot pack {path}: no such file")
                name = f"{key:08d}"
                tar.add(str(path), arcname=f"{name}.{_member_extension(path)}")
                meta = json.dumps({"source": path.name}).encode()
                info = tarfile.TarInfo(f"{name}.json")
                info.size = len(meta)
                tar.addfile(info, io.BytesIO(meta))
        os.replace(tmp, shard)
    finally:
        tmp.unlink(missing_ok=True)


def _member_extension(path: Path) -> str:
    """``mp4`` for clip.mp4, ``mp4.gz`` for box.mp4.gz."""
    if path.suffix.lower() == ".gz":
        return Path(path.stem).suffix.lower().lstrip(".") + ".gz"
    return path.suffix.lower().lstrip(".")


# ============================================================================================ reading


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def reader_slot(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(this reader's id, number of readers) over DDP ranks x DataLoader workers (``rank``/``world_size``
    override the process group's)."""
    default_rank, default_world = _rank_and_world()
    rank = rank if rank is not None else default_rank
    world = world_size if world_size is not None else default_world
    worker = get_worker_info()
    worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
    return rank * workers + worker_id, world * workers


def assign_shards(shards: Sequence[Path], reader: int, readers: int, shuffle: bool, seed: int, epoch: int) -> tuple[list[Path], int, int]:
    """(shards to scan, modulus, remainder): keep sample number n of the scan when n % modulus == remainder."""
    order = list(shards)
    if shuffle:
        np.random.default_rng([seed & 0xFFFFFFFF, epoch]).shuffle(order)
    if len(order) >= readers:
        return order[reader::readers], 1, 0
    return order, readers, reader


def iter_tar_samples(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of a shard, read sequentially."""
    key, members = None, {}
    try:
        with tarfile.open(shard, "r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                if "." not in base or base.startswith("."):
                    continue
                this_key, extension = base.split(".", 1)
                if this_key != key and members:
                    yield key, members
                    members = {}
                key = this_key
                members[extension.lower()] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"shard {shard} is not a readable tar file ({error})") from None
    if members:
        yield key, members


class WebDatasetClips(IterableDataset):
    """Random clips from tar shards, split across DDP ranks and workers (see the module doc)."""

    def __init__(
        self,
        shards: PathLike | Iterable[PathLike],
        num_frames: int,
        size: int | tuple[int, int],
        fps: float | None = None,
        temporal_factor: int = 8,
        random_crop_scale: tuple[float, float] = (0.6, 1.0),
        hflip: bool = True,
        images_as_clips: bool = True,
        simulate_motion: bool = False,
        seed: int = 0,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        shuffle_shards: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        validate_num_frames(num_frames, temporal_factor)
        height, width = (size, size) if isinstance(size, int) else size
        self.sampler = ClipSampler(
            num_frames, height, width, fps, tuple(random_crop_scale), hflip, images_as_clips, simulate_motion
        )
        self.shards = expand_shards(shards)
        self.seed, self.epoch, self.exclude, self.shuffle_shards = seed, 0, list(exclude), shuffle_shards
        self.rank, self.world_size = rank, world_size
        self.skipped: dict[str, str] = {}  # "shard:key" -> reason (this reader only)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _reader(self) -> tuple[int, int]:
        return reader_slot(self.rank, self.world_size)

    def _assigned(self, reader: int, readers: int) -> tuple[list[Path], int, int]:
        return assign_shards(self.shards, reader, readers, self.shuffle_shards, self.seed, self.epoch)

    def __iter__(self) -> Iterator[torch.Tensor]:
        reader, readers = self._reader()
        shards, modulus, remainder = self._assigned(reader, readers)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, reader, readers])
        self.skipped = {}
        number = -1
        with tempfile.TemporaryDirectory(prefix="onevae-shard-") as scratch:
            for shard in shards:
                for key, members in iter_tar_samples(shard):
                    number += 1
                    if number % modulus != remainder:
                        continue
                    clip = self._sample(Path(scratch), shard, key, members, rng)
                    if clip is not None:
                        yield clip
        if self.skipped:
            examples = "; ".join(list(self.skipped.values())[:3])
            warnings.warn(f"skipped {len(self.skipped)} shard sample(s): {examples}", DataWarning, stacklevel=2)

    def _sample(
        self, scratch: Path, shard: Path, key: str, members: dict[str, bytes], rng: np.random.Generator
    ) -> torch.Tensor | None:
        """One clip from a sample's media member, or None (skipped and counted)."""
        label = f"{shard.name}:{key}"
        extension = next((e for e in members if is_media_file(Path(f"x.{e}"))), None)
        if extension is None:
            self.skipped[label] = f"{label}: no video or image member (has {', '.join(members)})"
            return None
        source = _source_name(members) or f"{key}.{extension}"
        if is_excluded(source, self.exclude) or is_excluded(f"{key}.{extension}", self.exclude):
            return None
        if not self.sampler.images_as_clips and is_image_file(Path(f"x.{extension}")):
            return None
        path = scratch / f"{key}.{extension}"
        path.write_bytes(members[extension])
        try:
            info = probe_video(path)
            reason = self.sampler.unusable_reason(info)
            if reason:
                self.skipped[label] = f"{label} ({source}): {reason}"
                return None
            return self.sampler.sample(path, info, rng)
        except OneVAEError as error:
            self.skipped[label] = f"{label} ({source}): {error}"
            return None
        finally:
            path.unlink(missing_ok=True)


def _source_name(members: dict[str, bytes]) -> str | None:
    """The original file name recorded by :func:`write_shards`, if any."""
    if "json" not in members:
        return None
    try:
        source = json.loads(members["json"]).get("source")
    except (ValueError, AttributeError):
        return None
    return source if isinstance(source, str) else None
