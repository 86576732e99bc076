"""Reading tokenized shards back (``onevae tokenize`` output) for training a model on tokens.

:class:`TokenShards` is an ``IterableDataset``: shards are dealt out to the DDP ranks x DataLoader workers (with
fewer shards than readers, every reader scans all shards and keeps every n-th clip), and each clip comes as a
dict ``{"key", "tokens", "meta"}`` (plus ``"latents"`` when asked): ``tokens`` is the flattened sequence, int64
``(N,)``, in the docs/tokens.md order; ``meta`` is the clip's JSON metadata. :func:`collate_token_sequences`
batches them (padding to the longest when lengths differ). :func:`sample_token_grids` turns a sample back into
the grids and metadata that :func:`onevae.pipeline.decode_to_video` takes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from ..errors import InputError
from ..io.paths import PathLike
from ..io.tokens import TokenFileMeta
from .webdataset_source import assign_shards, expand_shards, iter_tar_samples, reader_slot


def _shard_list(source: PathLike | Iterable[PathLike]) -> list[Path]:
    """Shards of an output folder (in the order its dataset.json lists them), or files / globs / ranges."""
    if isinstance(source, (str, Path)) and Path(source).is_dir() and (Path(source) / "dataset.json").is_file():
        listed = json.loads((Path(source) / "dataset.json").read_text()).get("shards", [])
        return [Path(source) / name for name in listed]
    return expand_shards(source)


class TokenShards(IterableDataset):
    """Token sequences from ``onevae tokenize`` shards (a folder, shard files, globs or ``{000000..000009}``)."""

    def __init__(self, source: PathLike | Iterable[PathLike], shuffle_shards: bool = False, seed: int = 0,
                 latents: bool = False, rank: int | None = None, world_size: int | None = None) -> None:
        self.shards = _shard_list(source)
        if not self.shards:
            raise InputError(f"no shards in {source}")
        self.shuffle_shards, self.seed, self.epoch, self.latents = shuffle_shards, seed, 0, latents
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from ..corpus.samples import read_latents, read_tokens

        reader, readers = reader_slot(self.rank, self.world_size)
        shards, modulus, remainder = assign_shards(self.shards, reader, readers, self.shuffle_shards, self.seed, self.epoch)
        number = -1
        for shard in shards:
            for key, members in iter_tar_samples(shard):
                number += 1
                if number % modulus != remainder:
                    continue
                meta = json.loads(members["json"])
                tokens = read_tokens(members)
                if tokens is None and not self.latents:
                    raise InputError(f"{shard}: clip {key} has no tokens (written with --latents only: use latents=True)")
                sample = {"key": key, "meta": meta}
                if tokens is not None:
                    sample["tokens"] = torch.from_numpy(tokens.astype(np.int64))
                if self.latents:
                    sample["latents"] = read_latents(members, meta)
                yield sample


def collate_token_sequences(samples: Sequence[dict[str, Any]], pad_id: int | None = None) -> dict[str, Any]:
    """``{"tokens": (B, N) int64, "mask": (B, N) bool, "keys": [...], "meta": [...]}``; sequences of different
    lengths are right-padded with ``pad_id`` (required then; e.g. the vocabulary size as an extra id)."""
    lengths = [len(s["tokens"]) for s in samples]
    longest = max(lengths)
    if len(set(lengths)) > 1 and pad_id is None:
        raise InputError(f"token sequences of different lengths {sorted(set(lengths))} need a pad_id to share a batch "
                         "(or tokenize fixed --clip-frames clips)")
    tokens = torch.full((len(samples), longest), pad_id if pad_id is not None else 0, dtype=torch.int64)
    mask = torch.zeros((len(samples), longest), dtype=torch.bool)
    for i, sample in enumerate(samples):
        tokens[i, : lengths[i]] = sample["tokens"]
        mask[i, : lengths[i]] = True
    return {"tokens": tokens, "mask": mask, "keys": [s["key"] for s in samples], "meta": [s["meta"] for s in samples]}


def sample_token_grids(tokens: torch.Tensor, meta: dict[str, Any]) -> tuple[list[torch.Tensor], TokenFileMeta]:
    """A clip's sequence (N,) and metadata -> (token grids [(1, t, h, w, K)], TokenFileMeta) for
    :func:`onevae.pipeline.decode_to_video` (which undoes the fit and drops the padded frames)."""
    from ..io.tokens import TokenFileMeta, unflatten_tokens

    info = meta["tokens"]
    grids = unflatten_tokens(tokens.reshape(1, -1).long(), [tuple(s) for s in info["grid_shapes"]])
    file_meta = TokenFileMeta(
        kind="tokens", model_name=meta["model"]["name"], model_fingerprint=meta["model"]["fingerprint"], model_config={},
        grid_names=info["grid_names"], grid_shapes=[[1, *s] for s in info["grid_shapes"]],
        num_codebooks=info["grid_shapes"][0][-1], vocab_size=info["vocab_size"], fps=meta["fps"],
        source=meta["source"], fit=meta["fit"], frames=meta["clip"]["frames"], padded_frames=meta["padded_frames"],
    )
    return grids, file_meta
