"""One clip as a webdataset sample: its members' names and bytes, written and read back.

Members of clip ``KEY`` (``KEY`` = the clip id, 9 digits):

* ``KEY.tokens.npy`` — the flattened token sequence (docs/tokens.md order), 1-D, **uint16** when the vocabulary
  fits in 16 bits (64,000 does), else int32;
* ``KEY.latents.0.npy``, ``KEY.latents.1.npy`` — the latent grids (z, t, h, w) in grid order, float16; for
  bfloat16 (which .npy cannot name) the raw bit patterns as uint16, with ``latents.dtype`` = ``bfloat16``;
* ``KEY.json`` — the metadata (source, clip, fps, fit, model, grids, manifest columns).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import torch

from .model_adapter import EncodedClip

KEY_DIGITS = 9


def clip_key(clip_id: int) -> str:
    return f"{clip_id:0{KEY_DIGITS}d}"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits in 16 bits, else int32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def json_bytes(data: Any) -> bytes:
    """Deterministic JSON (sorted keys, no spaces)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sample_members(encoded: EncodedClip, meta: dict[str, Any], model_info: dict[str, Any],
                   vocab_size: int, grid_names: list[str]) -> dict[str, bytes]:
    """The members (without the key) of one encoded clip."""
    meta = dict(meta)
    meta["model"] = model_info
    meta["padded_frames"] = encoded.padded_frames
    members: dict[str, bytes] = {}
    if encoded.tokens is not None:
        shapes = [list(g.shape[1:]) for g in encoded.tokens]  # (t, h, w, K)
        flat = torch.cat([g.reshape(-1) for g in encoded.tokens]).numpy()
        stored = token_dtype(vocab_size)
        members["tokens.npy"] = npy_bytes(flat.astype(stored))
        meta["tokens"] = {"grid_names": grid_names, "grid_shapes": shapes, "length": int(flat.size),
                          "dtype": stored.name, "vocab_size": vocab_size}
    if encoded.latents is not None:
        dtype = encoded.latents[0].dtype
        for i, grid in enumerate(encoded.latents):
            grid = grid[0].contiguous()  # (z, t, h, w)
            array = grid.view(torch.uint16).numpy() if dtype == torch.bfloat16 else grid.numpy()
            members[f"latents.{i}.npy"] = npy_bytes(array)
        meta["latents"] = {"grid_names": grid_names, "grid_shapes": [list(g.shape[1:]) for g in encoded.latents],
                           "dtype": str(dtype).replace("torch.", "")}
    members["json"] = json_bytes(meta)
    return members


def read_tokens(members: dict[str, bytes]) -> np.ndarray | None:
    return npy_array(members["tokens.npy"]) if "tokens.npy" in members else None


def read_latents(members: dict[str, bytes], meta: dict[str, Any]) -> list[torch.Tensor] | None:
    """The latent grids (z, t, h, w) in their stored dtype (float16 or bfloat16)."""
    if "latents" not in meta:
        return None
    grids = []
    for i in range(len(meta["latents"]["grid_shapes"])):
        tensor = torch.from_numpy(npy_array(members[f"latents.{i}.npy"]).copy())
        grids.append(tensor.view(torch.bfloat16) if meta["latents"]["dtype"] == "bfloat16" else tensor)
    return grids
