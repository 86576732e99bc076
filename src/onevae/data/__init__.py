"""Training data: random clips from files or tar shards, or synthetic clips, as float32 (3, T, H, W) in [-1, 1]."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..errors import InputError
from .config import DATA_KINDS, DataConfig
from .procedural import ProceduralVideoDataset
from .video_dataset import (
    DEFAULT_EXCLUDE,
    ClipSampler,
    DataWarning,
    VideoClipDataset,
    list_media_files,
    validate_num_frames,
)
from .token_shards import TokenShards, collate_token_sequences, sample_token_grids
from .webdataset_source import WebDatasetClips, expand_shards, write_shards

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
    "build_dataloader",
    "build_dataset",
    "collate_clips",
    "collate_token_sequences",
    "expand_shards",
    "list_media_files",
    "sample_token_grids",
    "validate_num_frames",
    "write_shards",
]


def build_dataset(cfg: DataConfig) -> Union[Dataset, IterableDataset]:
    """The dataset a :class:`DataConfig` describes."""
    cfg.validate()
    size = (cfg.height, cfg.width)
    if cfg.kind == "procedural":
        validate_num_frames(cfg.num_frames, cfg.temporal_factor)
        return ProceduralVideoDataset(cfg.num_samples, cfg.num_frames, size, seed=cfg.seed)
    common = dict(
        num_frames=cfg.num_frames,
        size=size,
        fps=cfg.fps,
        temporal_factor=cfg.temporal_factor,
        random_crop_scale=cfg.random_crop_scale,
        hflip=cfg.hflip,
        images_as_clips=cfg.images_as_clips,
        simulate_motion=cfg.simulate_motion,
        seed=cfg.seed,
        exclude=cfg.exclude,
    )
    if cfg.kind == "webdataset":
        return WebDatasetClips(cfg.sources, **common)
    return VideoClipDataset(cfg.sources, **common)


def collate_clips(clips: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack (3, T, H, W) clips into (B, 3, T, H, W), with a clear error when their lengths differ."""
    shapes = {tuple(c.shape) for c in clips}
    if len(shapes) > 1:
        raise InputError(
            f"clips of different shapes {sorted(shapes)} cannot share a batch (still images are one-frame clips: "
            "use batch_size=1, simulate_motion=True, or separate image and video datasets)"
        )
    return torch.stack(list(clips))


def _limit_worker_threads(worker_id: int) -> None:
    """Decoding already uses threads; one torch thread per worker avoids oversubscribing the cores."""
    torch.set_num_threads(1)


def build_dataloader(
    cfg: DataConfig, dataset: Optional[Union[Dataset, IterableDataset]] = None, shuffle: bool = True
) -> DataLoader:
    """A DataLoader over ``dataset`` (default: ``build_dataset(cfg)``) with ``cfg``'s batch size and workers.

    Workers are not persistent, so that ``dataset.set_epoch(epoch)`` reaches them at each epoch.
    """
    dataset = build_dataset(cfg) if dataset is None else dataset
    iterable = isinstance(dataset, IterableDataset)
    generator = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=shuffle and not iterable,
        num_workers=cfg.num_workers,
        collate_fn=collate_clips,
        worker_init_fn=_limit_worker_threads if cfg.num_workers > 0 else None,
        generator=None if iterable else generator,
        drop_last=not iterable and len(dataset) >= cfg.batch_size,
        persistent_workers=False,
    )
