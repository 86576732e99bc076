"""After the last shard: the index of every clip, ``errors.jsonl``, ``token_counts.npy`` and ``dataset.json``,
all rebuilt from the shards themselves (so a resumed run gives the same files as an uninterrupted one)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..data.webdataset_source import iter_tar_samples
from .plan import SegmentPlan, plan_errors
from .samples import npy_bytes, read_tokens
from .shards import output_file, shard_name, write_json_lines
from .state import OutputDir, write_json


def finalize(out: OutputDir, plans: list[SegmentPlan], num_shards: int, run: dict[str, Any],
             vocab_size: int, num_codebooks: int) -> dict[str, Any]:
    rows, counts, lengths, frames = [], None, [], 0
    if vocab_size:
        counts = np.zeros((num_codebooks, vocab_size), dtype=np.int64)  # (K, vocab)
    for number in range(num_shards):
        for key, members in iter_tar_samples(out.shard_path(number)):
            meta = json.loads(members["json"])
            tokens = read_tokens(members)
            rows.append(_index_row(number, key, meta, tokens))
            frames += meta["clip"]["frames"]
            if tokens is not None and counts is not None:
                lengths.append(tokens.size)
                slots = tokens.astype(np.int64).reshape(-1, num_codebooks)  # (positions, K)
                for k in range(num_codebooks):
                    counts[k] += np.bincount(slots[:, k], minlength=vocab_size)
    errors = list(plan_errors(plans))
    for number in range(num_shards):
        path = out.errors_dir / f"{shard_name(number)}.errors.jsonl"
        errors.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    write_json_lines(out.root / "errors.jsonl", errors)
    index_name = _write_index(out.root, rows)
    if counts is not None and lengths:
        with output_file(out.root / "token_counts.npy") as tmp:
            tmp.write_bytes(npy_bytes(counts))
    summary = {
        "format": "onevae-corpus", "version": 1,
        "model": run["model"], "options": run["options"], "dtype": run["dtype"], "sources": run["sources"],
        "shards": [shard_name(n) for n in range(num_shards)],
        "index": index_name,
        "counts": {
            "segments": len(plans), "segments_failed": sum(1 for p in plans if p.error),
            "clips_planned": sum(p.num_clips for p in plans), "clips": len(rows),
            "clips_failed": sum(1 for e in errors if e.get("clip_id") is not None),
            "errors": len(errors), "frames": frames, "tokens": int(sum(lengths)),
        },
        "tokens": _token_statistics(lengths, counts, vocab_size) if lengths else None,
    }
    write_json(out.root / "dataset.json", summary)
    return summary


def _index_row(shard: int, key: str, meta: dict[str, Any], tokens: np.ndarray | None) -> dict[str, Any]:
    source, clip = meta["source"], meta["clip"]
    return {
        "key": key, "shard": shard_name(shard), "clip_id": int(key), "path": source["path"],
        "member": source["member"], "segment": source["segment"], "start_s": clip["start_s"], "end_s": clip["end_s"],
        "start_frame": clip["start_frame"], "frames": clip["frames"], "padded_frames": meta["padded_frames"],
        "fps": meta["fps"], "height": meta["fit"]["height"], "width": meta["fit"]["width"],
        "tokens": int(tokens.size) if tokens is not None else 0,
        "columns": json.dumps(meta["columns"], sort_keys=True),
    }


def _write_index(root: Path, rows: list[dict[str, Any]]) -> str:
    """index.parquet with pyarrow, else index.jsonl."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        write_json_lines(root / "index.jsonl", rows)
        return "index.jsonl"
    with output_file(root / "index.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({"key": pa.array([], pa.string())}), tmp)
    return "index.parquet"


def _token_statistics(lengths: list[int], counts: np.ndarray, vocab_size: int) -> dict[str, Any]:
    total = counts.sum()
    usage = []
    for k, row in enumerate(counts):
        used = int((row > 0).sum())
        p = row[row > 0] / max(row.sum(), 1)
        entropy = float(-(p * np.log2(p)).sum())
        usage.append({"slot": k, "ids_used": used, "fraction_used": used / vocab_size,
                      "entropy_bits": round(entropy, 4), "perplexity": round(2 ** entropy, 2),
                      "most_common": [[int(i), int(row[i])] for i in np.argsort(-row, kind="stable")[:5]]})
    overall = counts.sum(0)
    p = overall[overall > 0] / max(total, 1)
    entropy = float(-(p * np.log2(p)).sum())
    return {
        "per_clip": {"min": int(min(lengths)), "mean": float(np.mean(lengths)), "max": int(max(lengths))},
        "total": int(total), "vocab_size": vocab_size, "bits_per_token_max": round(math.log2(vocab_size), 4),
        "codebook_usage": {"ids_used": int((overall > 0).sum()), "fraction_used": float((overall > 0).mean()),
                           "entropy_bits": round(entropy, 4), "perplexity": round(2 ** entropy, 2), "per_slot": usage},
        "counts_file": "token_counts.npy",
    }
