"""``tokenize_corpus``: sources -> plan -> clips read in parallel -> model -> shards, resumable."""

from __future__ import annotations

import contextlib
import copy
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .encoding import EncodeSettings, EncodeStage
from .finalize import finalize
from .model_adapter import compute_dtype
from .plan import ClipSettings, SegmentPlan, clips_by_shard, number_clips, shard_of
from .progress import Progress
from .shards import ShardAssembler, require_webdataset
from .sources import ManifestColumns, expand_sources
from .state import RUN_FORMAT, RUN_VERSION, OutputDir

ENGINES = ("local", "ray")
LATENT_DTYPES = ("float16", "bfloat16")


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass
class TokenizeOptions:
    """Everything ``onevae tokenize`` takes besides the model, the sources and the output folder."""

    clip_frames: int | None = None  # None: whole videos
    stride: int | None = None  # default: clip_frames (no overlap)
    fps: float | None = None
    size_mode: str = "crop"  # crop | pad | resize
    short_side: int | None = None
    max_side: int | None = None
    max_frames: int | None = None
    chunk_latents: int = 2
    tokens: bool = True
    latents: bool = False
    latent_dtype: str = "float16"
    clips_per_shard: int = 1000
    columns: ManifestColumns = field(default_factory=ManifestColumns)
    engine: str = "local"
    workers: int = field(default_factory=default_workers)
    ray_address: str | None = None
    overwrite: bool = False
    progress: bool = False

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if not (self.tokens or self.latents):
            raise InputError("nothing to write: ask for --tokens, --latents or both")
        if self.latent_dtype not in LATENT_DTYPES:
            raise InputError(f"--latent-dtype must be one of {', '.join(LATENT_DTYPES)}")
        if self.clips_per_shard < 1:
            raise InputError(f"--clips-per-shard must be >= 1, got {self.clips_per_shard}")
        if self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if self.ray_address and self.engine != "ray":
            raise InputError("--ray-address needs --engine ray")

    def clip_settings(self, model) -> ClipSettings:
        config = model.config
        return ClipSettings(config.spatial_factor, config.temporal_factor, self.size_mode, self.short_side,
                            self.max_side, self.fps, self.max_frames, self.clip_frames, self.stride, self.chunk_latents)

    def encode_settings(self) -> EncodeSettings:
        return EncodeSettings(self.tokens, self.latents, self.latent_dtype, self.chunk_latents)

    def output_options(self) -> dict[str, Any]:
        """The options that decide the bytes of the output (recorded, and compared on resume)."""
        keep = ("clip_frames", "stride", "fps", "size_mode", "short_side", "max_side", "max_frames", "chunk_latents",
                "tokens", "latents", "latent_dtype", "clips_per_shard")
        return {**{k: getattr(self, k) for k in keep}, "columns": asdict(self.columns)}


@dataclass
class TokenizeResult:
    out_dir: Path
    summary: dict[str, Any]  # dataset.json
    shards_written: int  # by this call (the others were complete already)


def tokenize_corpus(model, sources: list[str | Path], out_dir: str | Path,
                    options: TokenizeOptions | None = None, fingerprint: str | None = None) -> TokenizeResult:
    """Tokenize every clip of ``sources`` into webdataset shards in ``out_dir`` (see docs/corpus.md)."""
    from ..model_dir import model_fingerprint

    options = options or TokenizeOptions()
    options.validate()
    require_webdataset()  # before any clip is read or encoded: the shards need it
    if options.tokens and not model.config.discrete:
        raise InputError(f"{model.config.name} is a continuous-only model: it has no tokens (use --latents)")
    settings = options.clip_settings(model)
    settings.validate()
    fingerprint = fingerprint or model_fingerprint(model)
    sources = [str(s) for s in sources]
    segments = expand_sources(sources, options.columns)
    run = {"format": RUN_FORMAT, "version": RUN_VERSION,
           "model": {"name": model.config.name, "fingerprint": fingerprint, "config": model.config.to_dict()},
           "dtype": compute_dtype(model), "options": options.output_options(), "sources": sources,
           "cwd": os.getcwd()}  # relative SOURCEs (and the plan's paths) are relative to it
    ray_started = False
    with OutputDir.prepare(Path(out_dir), run, options.overwrite) as out, _readers(options, settings) as readers:
        try:
            if options.engine == "ray":
                from .ray_engine import start_ray

                ray_started = start_ray(options.ray_address, options.workers + 1 if options.workers else None)
            plans = out.load_plan()
            if plans is None:
                plans = _plan(segments, settings, options, readers)
                number_clips(plans)
                out.save_plan(plans)
            total = sum(p.num_clips for p in plans)
            num_shards = math.ceil(total / options.clips_per_shard)
            todo = {k: ids for k, ids in clips_by_shard(plans, options.clips_per_shard).items()
                    if k not in out.complete_shards(num_shards)}
            wanted = {c for ids in todo.values() for c in ids}
            progress = Progress(len(wanted), options.progress)
            assembler = ShardAssembler(out.root, out.errors_dir, todo, options.clips_per_shard,
                                       _error_row(plans, options.clips_per_shard), progress.update)
            try:
                _encode(plans, wanted, settings, options, model, fingerprint, assembler, readers)
            finally:
                progress.close()
            if assembler.pending:  # a clip that was never delivered (should not happen): fail it, visibly
                assembler.fail_all_pending("no result was delivered for this clip (internal error)")
            summary = finalize(out, plans, num_shards, run, model.config.vocab_size, model.config.num_codebooks)
        finally:
            if ray_started:
                import ray

                ray.shutdown()
    return TokenizeResult(Path(out_dir), summary, len(assembler.written))


def _plan(segments, settings: ClipSettings, options: TokenizeOptions, readers) -> list[SegmentPlan]:
    if options.engine == "ray":
        from .ray_engine import plan_segments_ray

        return plan_segments_ray(segments, settings)
    return readers.plan(segments)


def _encode(plans, wanted, settings, options: TokenizeOptions, model, fingerprint, assembler: ShardAssembler,
            readers) -> None:
    if not wanted:
        return
    if options.engine == "ray":
        from .ray_engine import run_ray

        cpu_model = copy.deepcopy(model).to("cpu")  # sent to the actors; the caller's model stays where it is
        run_ray(plans, wanted, settings, options.encode_settings(), cpu_model, fingerprint, assembler.add,
                str(model.device), torch.get_num_threads())
        return
    readers.read(plans, wanted, EncodeStage(model, options.encode_settings(), fingerprint), assembler.add)


def _readers(options: TokenizeOptions, settings: ClipSettings):
    """The local engine's reader processes (started once, for planning and reading), or nothing for Ray."""
    if options.engine == "ray":
        return contextlib.nullcontext(None)
    from .local_engine import ReaderPool

    return ReaderPool(settings, options.workers)


def _error_row(plans: list[SegmentPlan], clips_per_shard: int):
    owner = {}
    for plan in plans:
        for clip_id in plan.clip_ids():
            owner[clip_id] = plan.segment

    def row(clip_id: int, reason: str) -> dict[str, Any]:
        segment = owner[clip_id]
        return {"segment": segment.index, "source": segment.label, "origin": segment.origin, "clip_id": clip_id,
                "shard": shard_of(clip_id, clips_per_shard), "error": reason}

    return row
