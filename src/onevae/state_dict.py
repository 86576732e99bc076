"""Copying a state dict into a model, key by key, with a report of what happened to every key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .errors import CheckpointError
from .guards import first_nonfinite


@dataclass
class LoadReport:
    """What a load did. ``copied``: taken from the file; ``initialised``: the model's keys the file did not
    provide (they keep their fresh initialisation); ``mismatched``: in both, with other shapes (not copied);
    ``dropped``: in the file, unknown to the model; ``ignored``: in the file, skipped on purpose (EMA,
    discriminator, counters)."""

    source: str = ""
    copied: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every key of the model came from the file."""
        return not self.initialised and not self.mismatched

    def summary(self, max_keys: int = 8) -> str:
        lines = [f"load report for {self.source}:" if self.source else "load report:"]
        lines.append(f"  copied:       {len(self.copied)} tensors")
        for label, keys in (("initialised", self.initialised), ("dropped", self.dropped), ("ignored", self.ignored)):
            lines.append(f"  {label + ':':13} {len(keys)}" + _preview(keys, max_keys))
        mismatched = [f"{k} file{list(a)} model{list(b)}" for k, a, b in self.mismatched]
        lines.append(f"  {'mismatched:':13} {len(mismatched)}" + _preview(mismatched, max_keys))
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "copied": self.copied,
            "initialised": self.initialised,
            "mismatched": [{"key": k, "file": list(a), "model": list(b)} for k, a, b in self.mismatched],
            "dropped": self.dropped,
            "ignored": self.ignored,
            "notes": self.notes,
        }

    def __str__(self) -> str:
        return self.summary()


def _preview(keys: list[str], max_keys: int) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:max_keys])
    return f" ({shown}{', ...' if len(keys) > max_keys else ''})"


def copy_matching(model: nn.Module, state: Mapping[str, torch.Tensor], report: LoadReport) -> LoadReport:
    """Copy every tensor of ``state`` whose name and shape match a key of ``model``; record the rest. Weights
    holding NaN or inf are refused, whatever the file's format: they would decode black frames later."""
    bad = first_nonfinite(state.items())
    if bad is not None:
        raise CheckpointError(f"{report.source or 'the weights'}: weight {bad} holds NaN or inf; the model is broken (retrain or re-export it)")
    own = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if key not in own:
                report.dropped.append(key)
            elif tuple(own[key].shape) != tuple(value.shape):
                report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
            else:
                own[key].copy_(value.to(own[key].dtype))
                report.copied.append(key)
    report.initialised = [key for key in own if key not in state]
    return report


def require_complete(report: LoadReport, what: str) -> None:
    """Refuse a load that left the model partly uninitialised (e.g. a checkpoint of another variant)."""
    if report.complete and not report.dropped:
        return
    raise CheckpointError(
        f"{report.source} does not fit {what}: {len(report.mismatched)} tensors of another shape, "
        f"{len(report.initialised)} missing, {len(report.dropped)} unknown"
        + (f" (first mismatch: {report.mismatched[0][0]} file{list(report.mismatched[0][1])} vs model{list(report.mismatched[0][2])})" if report.mismatched else "")
        + (f" (first missing: {report.initialised[0]})" if report.initialised and not report.mismatched else "")
        + (f" (first unknown: {report.dropped[0]})" if report.dropped and not (report.mismatched or report.initialised) else "")
        + ". Is it a checkpoint of another variant? Pick the matching --variant/preset, or load it as a prior (non-strict)."
    )
