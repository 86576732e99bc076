"""Experiment files (``configs/experiments/*.yaml``): arms x seeds over a training config.

An experiment names a base training config (``base``, a path relative to the experiment file), the seeds, the
held-out evaluation (``eval``), optional shared ``stages`` (e.g. a continuous prior that arms start from) and
its ``arms``: each arm deep-merges its ``train`` section into the base config and may start from a stage
(``init``). ``checks`` state the claims to test (see :mod:`onevae.experiments.verdict`); ``quick`` says how to
shrink everything for the smoke test (``--quick``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..configtools import build_dataclass, read_yaml_file
from ..errors import InputError, OneVAEError
from .data import EvalConfig, EvalWindow


@dataclass
class ArmSpec:
    """One configuration under test (or a shared stage such as a prior)."""

    train: dict[str, Any] = field(default_factory=dict)  # merged into the base training config
    init: str | None = None  # name of a stage whose exported model this arm starts from
    label: str | None = None  # human-readable name for tables and plots


@dataclass
class CheckSpec:
    """A claim, as a comparison between arms (see :mod:`onevae.experiments.verdict`)."""

    claim: str
    kind: str = "greater"  # greater: arm beats baseline on metric | speedup: steps to reach baseline's final value | best: ranking
    arm: str | None = None
    baseline: str | None = None
    arms: list[str] = field(default_factory=list)  # for kind "best"
    metric: str = "psnr_discrete"
    min_effect: float = 0.1  # smallest difference (dB) that counts as an effect
    min_speedup: float = 1.5  # for kind "speedup": what "several times faster" needs at least
    include_stage_steps: bool = False  # for kind "speedup": count the steps of the stage the arm starts from


@dataclass
class QuickSpec:
    """How ``--quick`` shrinks the experiment: steps per run, and training-config overrides (tiny clips)."""

    max_steps: int = 4
    eval_every: int = 2
    train: dict[str, Any] = field(default_factory=dict)
    eval_frames: int = 5
    eval_size: int = 32


@dataclass
class ExperimentSpec:
    name: str
    title: str
    question: str = ""
    setup: str = ""
    settle: str = ""  # what it would take to settle the question
    base: str = ""
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the base shared by all arms
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval: EvalConfig = field(default_factory=EvalConfig)
    stages: dict[str, ArmSpec] = field(default_factory=dict)
    arms: dict[str, ArmSpec] = field(default_factory=dict)
    checks: list[CheckSpec] = field(default_factory=list)
    quick: QuickSpec = field(default_factory=QuickSpec)
    order: int = 100  # position in the report and in `make science`
    path: Path | None = None

    def label(self, arm: str) -> str:
        spec = self.arms.get(arm) or self.stages.get(arm)
        return (spec.label if spec and spec.label else None) or arm

    def base_config(self) -> dict[str, Any]:
        """The base training config as a plain dict, with the experiment-wide overrides merged in."""
        data: dict[str, Any] = {}
        if self.base:
            base_path = (self.path.parent if self.path else Path(".")) / self.base
            if not base_path.is_file():
                raise OneVAEError(f"experiment {self.name}: base config {base_path} not found")
            data = yaml.safe_load(base_path.read_text()) or {}
        return deep_merge(data, self.train)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in, recursively for mappings."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_experiment(path: Path) -> ExperimentSpec:
    """Read and check an experiment file."""
    path = Path(path)
    data = read_yaml_file(path, "experiment")
    # sections made of dataclasses inside mappings and lists: built one by one (build_dataclass does fields)
    nested = {key: data.pop(key, None) for key in ("stages", "arms", "checks", "eval")}
    spec = build_dataclass(ExperimentSpec, data, where=path.name)
    spec.stages = _named(nested["stages"], f"{path.name}.stages")
    spec.arms = _named(nested["arms"], f"{path.name}.arms")
    spec.checks = [build_dataclass(CheckSpec, c, where=f"{path.name}.checks") for c in nested["checks"] or []]
    spec.eval = _eval_config(nested["eval"] or {}, f"{path.name}.eval")
    spec.path = path
    _check(spec)
    return spec


def _named(section: dict[str, Any] | None, where: str) -> dict[str, ArmSpec]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise OneVAEError(f"{where} must be a mapping of names to arms")
    return {str(name): build_dataclass(ArmSpec, body or {}, where=f"{where}.{name}") for name, body in section.items()}


def _eval_config(section: dict[str, Any], where: str) -> EvalConfig:
    windows = section.pop("windows", None)
    config = build_dataclass(EvalConfig, section, where=where)
    if windows is not None:
        config.windows = [build_dataclass(EvalWindow, w, where=f"{where}.windows") for w in windows]
    if not config.windows:
        raise OneVAEError(f"{where}: no evaluation windows")
    return config


def _check(spec: ExperimentSpec) -> None:
    where = f"experiment {spec.name}"
    if not spec.arms:
        raise OneVAEError(f"{where}: no arms")
    if not spec.seeds:
        raise OneVAEError(f"{where}: no seeds")
    clash = set(spec.arms) & set(spec.stages)
    if clash:
        raise OneVAEError(f"{where}: {', '.join(sorted(clash))} is both a stage and an arm")
    for name, arm in {**spec.stages, **spec.arms}.items():
        if arm.init is not None and arm.init not in spec.stages:
            raise OneVAEError(f"{where}: {name} starts from {arm.init!r}, which is not one of its stages ({', '.join(spec.stages) or 'none'})")
    for check in spec.checks:
        for arm in [check.arm, check.baseline, *check.arms]:
            if arm is not None and arm not in spec.arms:
                raise OneVAEError(f"{where}: a check names {arm!r}, which is not one of its arms")


def find_experiments(folder: Path) -> list[ExperimentSpec]:
    """The experiment files of a folder, in their ``order``; a folder without any is an InputError."""
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        raise InputError(f"{folder}: no experiment files (*.yaml) there; the experiments are in the source repository's "
                         "configs/experiments/ (run from a checkout, or give the folder that holds them)")
    specs = [load_experiment(p) for p in paths]
    return sorted(specs, key=lambda s: (s.order, s.name))
