"""Reading tokenized shards back (``onevae tokenize`` output) for training a model on tokens.

:class:`TokenShards` is an ``IterableDataset``: shards are dealt out to the DDP ranks x DataLoader workers (with
fewer shards than readers, every reader scans all shards and keeps every n-th clip), and each clip comes as a
dict ``{"key", "tokens", "meta"}`` (plus ``"latents"`` when asked): ``tokens`` is the flattened sequence, int64
``(N,)``, in the docs/tokens.md order; ``meta`` is the clip's JSON metadata. :func:`collate_token_sequences`
batches them (padding to the longest when lengths differ). :func:`sample_token_grids` (:func:`sample_latent_grids`)
turns a sample back into the grids and metadata that :func:`onevae.pipeline.decode_to_video` takes;
:func:`read_clips` picks clips by key (what ``onevae decode CORPUS --key K`` decodes).
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
    from ..io.tokens import unflatten_tokens

    info = meta["tokens"]
    grids = unflatten_tokens(tokens.reshape(1, -1).long(), [tuple(s) for s in info["grid_shapes"]])
    return grids, _clip_file_meta(meta, "tokens", info["grid_names"], [list(g.shape) for g in grids],
                                  num_codebooks=info["grid_shapes"][0][-1], vocab_size=info["vocab_size"])


def sample_latent_grids(latents: list[torch.Tensor], meta: dict[str, Any]) -> tuple[list[torch.Tensor], TokenFileMeta]:
    """A clip's latent grids [(z, t, h, w)] (as ``TokenShards(latents=True)`` gives them) and metadata -> (float32
    grids [(1, z, t, h, w)], TokenFileMeta) for :func:`onevae.pipeline.decode_to_video`."""
    grids = [g.float().unsqueeze(0) for g in latents]
    return grids, _clip_file_meta(meta, "latents", meta["latents"]["grid_names"], [list(g.shape) for g in grids])


def _clip_file_meta(meta: dict[str, Any], kind: str, grid_names: list[str], grid_shapes: list[list[int]],
                    num_codebooks: int = 0, vocab_size: int = 0) -> TokenFileMeta:
    """What a token/latent file would record for this clip of the shards."""
    return TokenFileMeta(
        kind=kind, model_name=meta["model"]["name"], model_fingerprint=meta["model"]["fingerprint"], model_config={},
        grid_names=grid_names, grid_shapes=grid_shapes, num_codebooks=num_codebooks, vocab_size=vocab_size,
        fps=meta["fps"], source=meta["source"], fit=meta["fit"], frames=meta["clip"]["frames"],
        padded_frames=meta["padded_frames"],
    )


# ------------------------------------------------------------------------------------------------ clips by key
def corpus_keys(source: PathLike) -> dict[str, Path]:
    """Every clip of ``onevae tokenize`` output -> its shard: ``source`` is the output folder (its index, or its
    shards' member names when the index is missing) or one shard file."""
    source = Path(source)
    if source.is_dir():
        indexed = _indexed_keys(source)
        if indexed is not None:
            return indexed
    return {key: shard for shard in _shard_list(source) for key in _shard_keys(shard)}


def read_clips(source: PathLike, keys: Sequence[str] | None = None, latents: bool = False) -> Iterator[dict[str, Any]]:
    """Clips of ``onevae tokenize`` output (its folder, or one shard) as :class:`TokenShards` samples: every clip,
    in shard order, or those of ``keys`` (9-digit clip ids; ``12`` means ``000000012``) in the order given, reading
    only the shards that hold them. Unknown keys are refused before any clip is read."""
    if keys is None:
        yield from TokenShards([source] if Path(source).is_file() else source, latents=latents)
        return
    wanted = [normal_key(key) for key in keys]
    where = corpus_keys(source)
    missing = [key for key in wanted if key not in where]
    if missing:
        raise InputError(f"{source} has no clip {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                         f"(its {len(where)} clips are {_key_range(where)})")
    found: dict[str, dict[str, Any]] = {}
    for shard in dict.fromkeys(where[key] for key in wanted):  # each shard once, in the order first needed
        for sample in TokenShards([shard], latents=latents):
            if sample["key"] in wanted:
                found[sample["key"]] = sample
    for key in wanted:
        yield found[key]


def normal_key(key: str | int) -> str:
    """A clip id as the shards name it (9 digits)."""
    from ..corpus.samples import clip_key

    text = str(key).strip()
    if not text.isdigit():
        raise InputError(f"clip key {key!r} is not a clip id (the digits of KEY in KEY.tokens.npy, e.g. 000000012 or 12)")
    return clip_key(int(text))


def _indexed_keys(folder: Path) -> dict[str, Path] | None:
    """key -> shard from the folder's index.parquet (or index.jsonl); None when it has neither."""
    rows: list[dict[str, Any]]
    if (folder / "index.parquet").is_file():
        from ..extras import require

        pq = require("pyarrow.parquet", "corpus", "reading index.parquet", package="pyarrow")
        rows = pq.read_table(folder / "index.parquet", columns=["key", "shard"]).to_pylist()
    elif (folder / "index.jsonl").is_file():
        rows = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines() if line.strip()]
    else:
        return None
    return {row["key"]: folder / row["shard"] for row in rows}


def _shard_keys(shard: Path) -> list[str]:
    """The clip keys of a shard, from its member names (no member is read)."""
    import tarfile

    try:
        with tarfile.open(shard, "r|*") as tar:
            names = [m.name.rsplit("/", 1)[-1] for m in tar if m.isfile() and m.name.endswith(".json")]
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"shard {shard} is not a readable tar file ({error})") from None
    return [name.split(".", 1)[0] for name in names]


def _key_range(where: dict[str, Path]) -> str:
    keys = sorted(where)
    return "none" if not keys else keys[0] if len(keys) == 1 else f"{keys[0]} ... {keys[-1]}"
