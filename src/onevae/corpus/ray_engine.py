"""``--engine ray``: the same stages on Ray Data — planning and reading as CPU tasks, the model in actors
(``num_gpus=1`` each on GPU machines, one per GPU), the shards written by this (driver) process as their clips
arrive (tokens are a few hundred times smaller than the frames, so the driver is not the bottleneck).

Local Ray (started here, ``--workers`` CPUs for the readers) or an existing cluster (``--ray-address``; the
sources must then be readable from every node, and the output folder is written by the driver only).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import OneVAEError
from ..extras import require
from .encoding import EncodedSample, EncodeSettings, EncodeStage, Result
from .plan import ClipSettings, SegmentPlan
from .reading import ClipFailure, ClipPart, plan_segment, read_clips
from .samples import json_bytes
from .sources import Segment


def _ray():
    require("ray.data", "corpus", "--engine ray", package="Ray Data")
    return require("ray", "corpus", "--engine ray", package="Ray Data")


# A local cluster turns token authentication on by default (what we want) and says so at every start.
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _not_the_auth_notice(record: logging.LogRecord) -> bool:
    """A logging filter: False for Ray's "Token authentication is enabled for this Ray cluster" notice only."""
    return not str(record.msg).startswith("Token authentication is enabled for this Ray cluster")


def start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` or start a local Ray; True when this call started it (and must shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            logging.getLogger(_RAY_AUTH_LOGGER).addFilter(_not_the_auth_notice)
            ray.init(num_cpus=num_cpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise OneVAEError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {error}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": ours are on
    return True


def plan_segments_ray(segments: list[Segment], settings: ClipSettings) -> list[SegmentPlan]:
    ray = _ray()
    items = [{"segment": json.dumps(s.to_dict())} for s in segments]

    def plan_row(row: dict[str, Any]) -> dict[str, Any]:
        plan = plan_segment(Segment.from_dict(json.loads(row["segment"])), settings)
        return {"index": plan.segment.index, "plan": json.dumps(plan.to_dict())}

    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 256))).map(plan_row, num_cpus=1)
    rows = sorted(ds.take_all(), key=lambda r: r["index"])
    return [SegmentPlan.from_dict(json.loads(r["plan"])) for r in rows]


# ------------------------------------------------------------------------------------------------ stages
def _message_row(message) -> dict[str, Any]:
    if isinstance(message, ClipFailure):
        return {"clip_id": message.clip_id, "frames": b"", "meta": b"", "error": message.reason}
    buffer = io.BytesIO()
    np.save(buffer, message.frames, allow_pickle=False)
    return {"clip_id": message.clip_id, "frames": buffer.getvalue(), "meta": json_bytes(message.meta), "error": ""}


def _row_message(row: dict[str, Any]):
    if row["error"]:
        return ClipFailure(int(row["clip_id"]), str(row["error"]))
    frames = np.load(io.BytesIO(row["frames"]), allow_pickle=False)
    return ClipPart(int(row["clip_id"]), frames, final=True, meta=json.loads(row["meta"]))


def _batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: np.array([r[key] for r in rows], dtype=object) for key in rows[0]}


def _rows(batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    keys = list(batch)
    for i in range(len(batch[keys[0]])):
        yield {key: batch[key][i] for key in keys}


class _Reader:
    """Ray Data stage: a segment task -> one row per clip (its frames whole), or per failure."""

    def __init__(self, settings: ClipSettings) -> None:
        self.settings = settings

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for task in _rows(batch):
            plan = SegmentPlan.from_dict(json.loads(task["plan"]))
            wanted = set(json.loads(task["wanted"]))
            parts: dict[int, list[np.ndarray]] = {}
            for message in read_clips(plan, self.settings, wanted):
                if isinstance(message, ClipPart):
                    parts.setdefault(message.clip_id, []).append(message.frames)
                    if not message.final:
                        continue
                    axis = 0 if message.frames.dtype == np.uint8 else 1
                    message = ClipPart(message.clip_id, np.concatenate(parts.pop(message.clip_id), axis=axis),
                                       final=True, meta=message.meta)
                yield _batch([_message_row(message)])


class _Encoder:
    """Ray Data actor: holds one model on its device; clip rows -> sample rows."""

    def __init__(self, model, settings: EncodeSettings, fingerprint: str, device: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.stage = EncodeStage(model.to(device), settings, fingerprint)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import msgpack  # a Ray dependency: imported here, so that this module imports without Ray (see _ray)

        out = []
        for row in _rows(batch):
            result = self.stage.handle(_row_message(row))
            if isinstance(result, EncodedSample):
                out.append({"clip_id": result.clip_id, "members": msgpack.packb(result.members, use_bin_type=True),
                            "frames": result.frames, "tokens": result.tokens, "error": ""})
            else:
                out.append({"clip_id": result.clip_id, "members": b"", "frames": 0, "tokens": 0, "error": result.reason})
        return _batch(out)


def _result(row: dict[str, Any]) -> Result:
    if row["error"]:
        return ClipFailure(int(row["clip_id"]), str(row["error"]))
    import msgpack

    members = msgpack.unpackb(row["members"], raw=False)
    return EncodedSample(int(row["clip_id"]), members, int(row["frames"]), int(row["tokens"]))


def run_ray(plans: list[SegmentPlan], wanted: set[int], settings: ClipSettings, encode: EncodeSettings, model,
            fingerprint: str, deliver: Callable[[Result], None], device: str, threads: int) -> None:
    ray = _ray()
    tasks = [{"plan": json.dumps(p.to_dict()), "wanted": json.dumps(sorted(c for c in p.clip_ids() if c in wanted))}
             for p in plans if any(c in wanted for c in p.clip_ids())]
    if not tasks:
        return
    gpus = 1 if device.startswith("cuda") else 0
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.map_batches(_Reader(settings), batch_size=1, batch_format="numpy", num_cpus=1)
    ds = ds.map_batches(
        _Encoder, fn_constructor_kwargs={"model": model, "settings": encode, "fingerprint": fingerprint,
                                         "device": "cuda" if gpus else "cpu", "threads": threads},
        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=_actors(gpus)), num_gpus=gpus,
        num_cpus=0 if gpus else 1,
        memory=_ENCODER_MEMORY,  # also keeps the readers as their own tasks (Ray fuses stages of equal resources)
    )
    for row in ds.iter_rows():
        deliver(_result(row))


_ENCODER_MEMORY = 512 * 2**20  # bytes reserved for an encoder actor (the model and one clip's activations)


def _actors(gpus: int) -> int:
    if not gpus:
        return 1
    import ray

    return max(1, int(ray.cluster_resources().get("GPU", 1)))
