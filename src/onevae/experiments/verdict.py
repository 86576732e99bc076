"""Turning results into statements: a claim is confirmed, not confirmed or inconclusive at this scale.

Rules (paired by seed; every seed of the experiment must be finished, otherwise the check is "pending"):

* ``greater``: the arm beats the baseline on ``metric``. Confirmed when every seed's difference exceeds
  ``min_effect``; not confirmed when none does; inconclusive when the seeds disagree.
* ``within``: the arm is "competitive": no seed falls more than ``min_effect`` below the baseline (confirmed),
  every seed does (not confirmed), or the seeds disagree (inconclusive).
* ``speedup``: steps the baseline needs to reach its own final value, divided by the steps the arm needs to
  reach it (from the evaluation curves, discrete path). Confirmed when every seed's factor is at least
  ``min_speedup``, not confirmed when none is.
* ``best``: the ranking of the arms by their mean; the best arm is "clear" when it beats every other arm on
  every seed by more than ``min_effect``, and there is "no clear best" when its mean lead over the runner-up is
  no more than ``min_effect``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from .spec import CheckSpec, ExperimentSpec


@dataclass
class Verdict:
    claim: str
    status: str  # confirmed | not confirmed | inconclusive | pending | ...
    effect: str  # "+0.42 ± 0.10 dB" etc.
    seeds: int
    details: list[str] = field(default_factory=list)


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def format_mean_std(values: list[float], unit: str = "", signed: bool = False, digits: int = 2) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "pending"
    sign = "+" if signed else ""
    text = f"{mean:{sign}.{digits}f}"
    if not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text + (f" {unit}" if unit else "")


def _value(row: dict[str, Any], metric: str) -> float | None:
    raw = row.get(metric)
    if raw in (None, ""):
        return None
    value = float(raw)
    return None if math.isnan(value) else value


def by_seed(results: list[dict[str, Any]], arm: str, metric: str) -> dict[int, float]:
    out = {}
    for row in results:
        if row["arm"] == arm:
            value = _value(row, metric)
            if value is not None:
                out[int(row["seed"])] = value
    return out


def curve(curves: list[dict[str, Any]], arm: str, seed: int, path: str = "discrete", metric: str = "psnr") -> list[tuple[int, float]]:
    """(step, mean over windows) of one run's evaluation curve."""
    points: dict[int, list[float]] = {}
    for row in curves:
        if row["arm"] == arm and int(row["seed"]) == seed and row["path"] == path and row.get(metric) not in (None, ""):
            points.setdefault(int(row["step"]), []).append(float(row[metric]))
    return sorted((step, statistics.fmean(values)) for step, values in points.items())


def stage_steps(results: list[dict[str, Any]], arm: str, seed: int) -> int:
    """Steps of the stage (e.g. a prior) the arm's run starts from: total_steps - steps."""
    for row in results:
        if row["arm"] == arm and int(row["seed"]) == seed and row.get("total_steps") not in (None, ""):
            return int(row["total_steps"]) - int(row["steps"])
    return 0


def first_step_reaching(points: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, value in points if value >= target), None)


def failed_runs(results: list[dict[str, Any]], arms: list[str]) -> list[str]:
    return [f"{r['arm']} seed {r['seed']}: {r['status']}" for r in results
            if r["arm"] in arms and str(r.get("status") or "ok").startswith("failed")]


def judge(spec: ExperimentSpec, check: CheckSpec, results: list[dict[str, Any]], curves: list[dict[str, Any]]) -> Verdict:
    failures = failed_runs(results, [a for a in (check.arm, check.baseline, *check.arms) if a])
    if failures:  # a run that stopped itself (non-finite, collapse) is reported, not averaged away
        return Verdict(check.claim, f"inconclusive ({len(failures)} run(s) failed)", "n/a", 0, failures)
    if check.kind == "best":
        return _judge_best(spec, check, results)
    if check.kind == "speedup":
        return _judge_speedup(spec, check, results, curves)
    arm, base = by_seed(results, check.arm, check.metric), by_seed(results, check.baseline, check.metric)
    seeds = sorted(set(arm) & set(base))
    diffs = [arm[s] - base[s] for s in seeds]
    effect = format_mean_std(diffs, "dB", signed=True) if diffs else "pending"
    details = [f"seed {s}: {arm[s]:.2f} vs {base[s]:.2f} dB ({d:+.2f})" for s, d in zip(seeds, diffs)]
    if len(seeds) < len(spec.seeds):
        return Verdict(check.claim, f"pending ({len(seeds)} of {len(spec.seeds)} seeds)", effect, len(seeds), details)
    tol = check.min_effect
    if check.kind == "within":
        ok = [d >= -tol for d in diffs]
    else:
        ok = [d > tol for d in diffs]
    if all(ok):
        status = "confirmed"
    elif not any(ok):
        status = "not confirmed"
        if check.kind == "greater" and all(d < -tol for d in diffs):
            status += " (the opposite holds)"
    else:
        status = "inconclusive (the seeds disagree)"
    return Verdict(check.claim, status, effect, len(seeds), details)


def _judge_speedup(spec: ExperimentSpec, check: CheckSpec, results: list[dict[str, Any]], curves: list[dict[str, Any]]) -> Verdict:
    finals = by_seed(results, check.baseline, "psnr_discrete")
    arm_done = by_seed(results, check.arm, "psnr_discrete")
    seeds = sorted(set(finals) & set(arm_done))
    factors, details = [], []
    for seed in seeds:
        target = finals[seed]
        base_steps = first_step_reaching(curve(curves, check.baseline, seed), target - 1e-9)
        arm_points = curve(curves, check.arm, seed)
        arm_steps = first_step_reaching(arm_points, target)
        if check.include_stage_steps:  # the prior's steps count as compute spent before the arm's step 0
            offset = stage_steps(results, check.arm, seed)
            arm_points = [(step + offset, value) for step, value in arm_points]
            arm_steps = None if arm_steps is None else arm_steps + offset
        if base_steps is None:
            continue
        if arm_steps is None:
            last = arm_points[-1][0] if arm_points else 0
            factor = base_steps / max(last, 1)  # an upper bound: never reached within the run
            details.append(f"seed {seed}: never reaches {target:.2f} dB in {last} steps (speed-up < {factor:.2f}x)")
            factors.append(min(factor, check.min_speedup - 1e-6))
        elif arm_steps == 0:
            details.append(f"seed {seed}: already at {target:.2f} dB at step 0 of its discrete run (the scratch run needs {base_steps})")
            factors.append(math.inf)
        else:
            details.append(f"seed {seed}: {base_steps} vs {arm_steps} steps to {target:.2f} dB ({base_steps / arm_steps:.1f}x)")
            factors.append(base_steps / arm_steps)
    finite = [f for f in factors if math.isfinite(f)]
    if not factors:
        effect = "pending"
    elif finite:
        effect = format_mean_std(finite, "x", digits=1) + (f" ({len(factors) - len(finite)} seed(s) unbounded)" if len(finite) < len(factors) else "")
    else:
        effect = "unbounded (reached at step 0)"
    if len(seeds) < len(spec.seeds):
        return Verdict(check.claim, f"pending ({len(seeds)} of {len(spec.seeds)} seeds)", effect, len(seeds), details)
    ok = [f >= check.min_speedup for f in factors]
    status = "confirmed" if all(ok) else "not confirmed" if not any(ok) else "inconclusive (the seeds disagree)"
    return Verdict(check.claim, status, effect, len(seeds), details)


def _judge_best(spec: ExperimentSpec, check: CheckSpec, results: list[dict[str, Any]]) -> Verdict:
    values = {arm: by_seed(results, arm, check.metric) for arm in check.arms}
    complete = {arm: v for arm, v in values.items() if len(v) == len(spec.seeds)}
    means = sorted(((statistics.fmean(v.values()), arm) for arm, v in values.items() if v), reverse=True)
    details = [f"{spec.label(arm)}: {format_mean_std(list(values[arm].values()), 'dB')} ({len(values[arm])} seed(s))" for _, arm in means]
    if len(complete) < len(check.arms):
        return Verdict(check.claim, f"pending ({len(complete)} of {len(check.arms)} arms complete)", "pending", min((len(v) for v in values.values()), default=0), details)
    best = means[0][1]
    others = [arm for arm in check.arms if arm != best]
    gaps = {arm: [complete[best][s] - complete[arm][s] for s in spec.seeds] for arm in others}
    runner_up = means[1][1]
    effect = f"{spec.label(best)}, ahead of {spec.label(runner_up)} by " + format_mean_std(gaps[runner_up], "dB", signed=True)
    tol = check.min_effect
    if statistics.fmean(gaps[runner_up]) <= tol:
        status = f"no clear best (the lead is within the {tol:g} dB margin)"
    elif all(g > tol for arm in others for g in gaps[arm]):
        status = "clear"
    else:
        status = "best on average, not on every seed"
    return Verdict(check.claim, status, effect, len(spec.seeds), details)
