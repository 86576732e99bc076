"""The continuous -> discrete transition: which path(s) a training step uses, as a function of the step.

Everything here is a pure function of ``(seed, step)``, so a resumed run makes the same choices as one that
was never interrupted.
"""

from __future__ import annotations

import random

from ..model import CONTINUOUS, DISCRETE, PathPlan
from .config import ScheduleConfig


def ramp(step: int, start: int, length: int, final: float) -> float:
    """0 before ``start``, then linear to ``final`` over ``length`` steps (a switch when length <= 0)."""
    if step < start:
        return 0.0
    if length <= 0:
        return final
    return final * min(1.0, (step - start) / length)


# The random path choice of step s is drawn from a generator seeded with seed * STEP_SEED_STRIDE + s (a prime
# larger than any step count, so that (seed, step) pairs never share a generator).
STEP_SEED_STRIDE = 1_000_003


def step_rng(seed: int, step: int) -> random.Random:
    return random.Random(seed * STEP_SEED_STRIDE + step)


def plan_step(config: ScheduleConfig, step: int, seed: int) -> list[PathPlan]:
    """The loss terms of training step ``step``."""
    kind = config.kind
    if kind == "continuous":
        return [CONTINUOUS]
    if kind == "switch":
        return [DISCRETE] if step >= config.start_step else [CONTINUOUS]
    if kind == "ramp":
        p = ramp(step, config.start_step, config.ramp_steps, config.final_discrete)
        use_discrete = step_rng(seed, step).random() < p
        return [DISCRETE] if use_discrete else [CONTINUOUS]
    if kind == "interpolate":
        alpha = ramp(step, config.start_step, config.ramp_steps, config.final_discrete)
        return [PathPlan("discrete", 1.0, alpha)] if alpha > 0 else [CONTINUOUS]
    if kind == "joint":
        if config.joint_mode == "sum":
            return [PathPlan("continuous", config.continuous_weight, 0.0), PathPlan("discrete", config.discrete_weight)]
        use_discrete = step_rng(seed, step).random() < config.final_discrete
        return [DISCRETE] if use_discrete else [CONTINUOUS]
    raise ValueError(f"unknown schedule kind {kind!r}")


def discrete_share(config: ScheduleConfig, step: int) -> float:
    """The expected share of the discrete path at ``step`` (for logging)."""
    if config.kind == "continuous":
        return 0.0
    if config.kind == "switch":
        return 1.0 if step >= config.start_step else 0.0
    if config.kind == "joint":
        return 0.5 if config.joint_mode == "sum" else config.final_discrete
    return ramp(step, config.start_step, config.ramp_steps, config.final_discrete)
