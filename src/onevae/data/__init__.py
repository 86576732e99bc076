"""Training data: random clips from files or tar shards, or synthetic clips, as float32 (3, T, H, W) in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset, IterableDataset

from ..errors import InputError
from .config import DATA_KINDS, DataConfig
from .procedural import ProceduralVideoDataset
from .token_shards import TokenShards, collate_token_sequences, read_clips, sample_latent_grids, sample_token_grids
from .video_dataset import (
    DEFAULT_EXCLUDE,
    ClipSampler,
    DataWarning,
    VideoClipDataset,
    list_media_files,
    missing_paths,
    relative_paths_note,
    validate_num_frames,
)
from .webdataset_source import WebDatasetClips, expand_shards, missing_shards, write_shards

__all__ = [
    "DATA_KINDS",
    "DEFAULT_EXCLUDE",
    "ClipSampler",
    "DataConfig",
    "DataWarning",
    "ProceduralVideoDataset",
    "TokenShards",
    "VideoClipDataset",
    "WebDatasetClips",
    "build_dataset",
    "collate_clips",
    "collate_token_sequences",
    "expand_shards",
    "list_media_files",
    "missing_sources",
    "relative_paths_note",
    "require_sources",
    "read_clips",
    "sample_latent_grids",
    "sample_token_grids",
    "validate_num_frames",
    "write_shards",
]


def build_dataset(cfg: DataConfig, temporal_factor: int, seed: int = 0) -> Dataset | IterableDataset:
    """The dataset a :class:`DataConfig` describes, for a model of ``temporal_factor``; ``seed`` fixes every
    random choice (crops, flips, start times, motion)."""
    cfg.validate()
    size = (cfg.height, cfg.width)
    require_sources(cfg)
    if cfg.kind == "procedural":
        validate_num_frames(cfg.num_frames, temporal_factor)
        return ProceduralVideoDataset(cfg.num_samples, cfg.num_frames, size, seed=seed)
    common = dict(
        num_frames=cfg.num_frames,
        size=size,
        fps=cfg.fps,
        temporal_factor=temporal_factor,
        random_crop_scale=cfg.random_crop_scale,
        hflip=cfg.hflip,
        images_as_clips=cfg.images_as_clips,
        simulate_motion=cfg.simulate_motion,
        seed=seed,
        exclude=cfg.exclude,
    )
    if cfg.kind == "webdataset":
        return WebDatasetClips(cfg.sources, **common)
    return VideoClipDataset(cfg.sources, **common)


def require_sources(cfg: DataConfig, key: str = "sources") -> None:
    """Refuse data that reads files (every kind but procedural) with no source; ``key`` names the list."""
    if cfg.kind != "procedural" and not cfg.sources:
        raise InputError(f"data kind {cfg.kind!r} needs at least one entry in {key}")


def missing_sources(cfg: DataConfig) -> list[str]:
    """The entries of ``cfg.sources`` that name nothing on disk (none for procedural clips, which read no file)."""
    if cfg.kind == "procedural":
        return []
    return missing_shards(cfg.sources) if cfg.kind == "webdataset" else missing_paths(cfg.sources)


def collate_clips(clips: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack (3, T, H, W) clips into (B, 3, T, H, W), with a clear error when their lengths differ."""
    shapes = {tuple(c.shape) for c in clips}
    if len(shapes) > 1:
        raise InputError(
            f"clips of different shapes {sorted(shapes)} cannot share a batch (still images are one-frame clips: "
            "use batch_size=1, simulate_motion=True, or separate image and video datasets)"
        )
    return torch.stack(list(clips))
