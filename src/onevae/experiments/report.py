"""``onevae experiment report``: the results CSVs -> ``docs/results.md`` (tables, verdicts) and plots.

The CSVs of each experiment are copied beside the report (``docs/results/<experiment>_results.csv`` and
``_curves.csv``), so the report can be regenerated from the repository alone. Arms and seeds that have not
finished are shown as pending; nothing is filled in.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_path
from .runner import PATHS, experiment_dir, read_csv
from .spec import ExperimentSpec
from .verdict import Verdict, by_seed, curve, format_mean_std, judge

COLUMNS = [  # (metric, header, unit)
    ("psnr_continuous", "latents PSNR", "dB"),
    ("psnr_discrete", "tokens PSNR", "dB"),
    ("ssim_continuous", "latents SSIM", ""),
    ("ssim_discrete", "tokens SSIM", ""),
]
LINE_STYLES = ["-", "--", ":", "-."]
EXTRA_COLUMNS = {  # shown when an experiment's checks or arms need them
    "psnr_continuous_step0": ("latents PSNR at step 0", "dB"),
    "psnr_discrete_step0": ("tokens PSNR at step 0", "dB"),
    "usage_discrete": ("codebook usage", ""),
    "psnr_first_discrete": ("tokens PSNR, frame 0", "dB"),
    "psnr_rest_discrete": ("tokens PSNR, frames 1+", "dB"),
    "psnr_first_continuous": ("latents PSNR, frame 0", "dB"),
    "psnr_rest_continuous": ("latents PSNR, frames 1+", "dB"),
}
EXTRAS_BY_EXPERIMENT_KIND = {
    "quantizer": ["psnr_discrete_step0", "usage_discrete"],
    "first_frame": ["psnr_first_discrete", "psnr_rest_discrete", "psnr_first_continuous", "psnr_rest_continuous"],
}


def collect(spec: ExperimentSpec, runs_root: Path, results_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Copy the experiment's CSVs from the runs root (when there) into the results folder; read them back."""
    results_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("results", "curves"):
        src = experiment_dir(runs_root, spec) / f"{kind}.csv"
        dst = results_dir / f"{spec.name}_{kind}.csv"
        if src.is_file():
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
    return read_csv(results_dir / f"{spec.name}_results.csv"), read_csv(results_dir / f"{spec.name}_curves.csv")


def extra_metrics(spec: ExperimentSpec) -> list[str]:
    metrics = [c.metric for c in spec.checks if c.metric in EXTRA_COLUMNS]
    if any(a.init for a in spec.arms.values()):  # step 0 of an arm that starts from a prior: the prior's quality
        metrics += ["psnr_continuous_step0", "psnr_discrete_step0"]
    if any("quantizer" in a.train.get("model", {}).get("config", {}) for a in spec.arms.values()):
        metrics += EXTRAS_BY_EXPERIMENT_KIND["quantizer"]
    if any("first_frame_highres" in a.train.get("model", {}).get("config", {}) for a in spec.arms.values()):
        metrics += EXTRAS_BY_EXPERIMENT_KIND["first_frame"]
    return list(dict.fromkeys(metrics))


def arm_table(spec: ExperimentSpec, results: list[dict[str, Any]]) -> list[str]:
    extras = extra_metrics(spec)
    headers = ["arm", "seeds", "steps (total)", "tokens/clip"] + [h for _, h, _ in COLUMNS] + [EXTRA_COLUMNS[m][0] for m in extras] + ["s/step"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for arm in spec.arms:
        rows = [r for r in results if r["arm"] == arm]
        if not rows:
            lines.append(f"| {spec.label(arm)} | 0 of {len(spec.seeds)} | pending |" + " |" * (len(headers) - 3))
            continue
        failed = sum(str(r.get("status") or "ok").startswith("failed") for r in rows)
        first = rows[0]
        steps = f"{first['steps']}" + (f" ({first['total_steps']})" if first["total_steps"] != first["steps"] else "")
        seeds = f"{len(rows)} of {len(spec.seeds)}" + (f" ({failed} failed)" if failed else "")
        cells = [spec.label(arm), seeds, steps, first["tokens_per_clip"]]
        for metric, _, _unit in COLUMNS:
            cells.append(format_mean_std(list(by_seed(results, arm, metric).values()), digits=3 if "ssim" in metric else 2))
        for metric in extras:
            digits = 4 if metric.startswith("usage") else 2
            cells.append(format_mean_std(list(by_seed(results, arm, metric).values()), digits=digits))
        per_step = [float(r["seconds"]) / int(r["steps"]) for r in rows if r.get("seconds") not in (None, "")]
        cells.append(f"{sum(per_step) / len(per_step):.2f}" if per_step else "")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def plot_curves(spec: ExperimentSpec, results: list[dict[str, Any]], curves: list[dict[str, Any]], out: Path) -> bool:
    """PSNR (mean over the evaluation windows, then over seeds, ± std) vs step, one panel per path. An arm that
    starts from a stage (a prior) is shifted by the stage's steps, so the x axis is the total compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not curves:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, path in zip(axes, PATHS):
        for index, arm in enumerate(spec.arms):
            seeds = sorted({int(r["seed"]) for r in curves if r["arm"] == arm})
            series = [dict(curve(curves, arm, seed, path)) for seed in seeds]
            series = [s for s in series if s]
            if not series:
                continue
            steps = sorted(set.intersection(*(set(s) for s in series)))
            values = np.array([[s[step] for step in steps] for s in series])  # (seeds, steps)
            offset = _stage_steps(results, arm)
            x = [step + offset for step in steps]
            mean = values.mean(axis=0)
            style = LINE_STYLES[index % len(LINE_STYLES)]  # arms that coincide (same seed, same start) stay visible
            ax.plot(x, mean, style, label=f"{spec.label(arm)} (n={len(series)})", linewidth=2.2 - 0.3 * (index % 4))
            if len(series) > 1:
                std = values.std(axis=0, ddof=1)
                ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_title(f"{'latents (continuous path)' if path == 'continuous' else 'tokens (discrete path)'}")
        ax.set_xlabel("training steps (including those of the prior a run starts from)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return True


def _stage_steps(results: list[dict[str, Any]], arm: str) -> int:
    rows = [r for r in results if r["arm"] == arm]
    return int(rows[0]["total_steps"]) - int(rows[0]["steps"]) if rows else 0


def _load_note(results: list[dict[str, Any]]) -> str:
    """A warning when the seeds of one arm differ in s/step by 1.5x or more: the machine's load, not the arms' cost."""
    by_arm: dict[str, list[float]] = {}
    for r in results:
        if r.get("seconds") not in (None, "") and int(r["steps"]) > 0:
            by_arm.setdefault(r["arm"], []).append(float(r["seconds"]) / int(r["steps"]))
    ratio = max((max(v) / min(v) for v in by_arm.values() if min(v) > 0), default=1.0)
    if ratio < 1.5:
        return ""
    return (f" Here it differs up to {ratio:.1f}x between the seeds of one arm (same config, different load), so "
            "its differences between arms do not measure their cost.")


def experiment_section(spec: ExperimentSpec, results: list[dict[str, Any]], curves: list[dict[str, Any]], verdicts: list[Verdict], plot: str) -> list[str]:
    lines = [f"## {spec.title}", ""]
    if spec.question:
        lines += [f"**Question.** {spec.question}", ""]
    if spec.setup:
        lines += [f"**Setup.** {spec.setup}", ""]
    lines += [f"Seeds {', '.join(map(str, spec.seeds))}; held-out evaluation every {spec.eval.every_n_steps} steps on "
              + ", ".join(f"`{w.label}` ({w.frames}x{w.height}x{w.width}, native scale)" for w in spec.eval.windows) + ".", ""]
    lines += arm_table(spec, results) + [""]
    seconds = [float(r["seconds"]) for r in results if r.get("seconds") not in (None, "")]
    expected = len(spec.arms) * len(spec.seeds)
    lines += [f"Compute so far: {len(results)} of {expected} runs finished, {sum(seconds) / 60:.0f} minutes of training "
              "(wall time of each run on the shared machine the scale note names; runs an arm starts from, such as a "
              "prior, not included).", ""]
    lines += ["Mean ± standard deviation over the finished seeds; PSNR/SSIM are means over the evaluation windows at the "
              "last step. s/step is wall time per training step on that shared machine (evaluation excluded)."
              + _load_note(results), ""]
    if plot:
        lines += [f"![{spec.name} curves]({plot})", ""]
    if verdicts:
        lines += ["| claim | verdict | effect (mean ± std over seeds) |", "|---|---|---|"]
        lines += [f"| {v.claim} | **{v.status}** | {v.effect} |" for v in verdicts]
        lines.append("")
        for v in verdicts:
            if v.details:
                lines.append(f"<details><summary>{v.claim}: per seed</summary>\n\n" + "\n".join(f"- {d}" for d in v.details) + "\n\n</details>\n")
    if spec.settle:
        lines += [f"**What would settle it.** {spec.settle}", ""]
    return lines


RULES = ("Rules: a claim is *confirmed* when every seed shows the effect beyond the stated margin (0.1 dB unless said), "
         "*not confirmed* when no seed does, *inconclusive* when the seeds disagree, *pending* while seeds are missing.")


NO_SCALE = ("**Scale.** Not stated: a `scale.md` beside the experiment files says where, on what and when the runs "
            "were made (configs/experiments/scale.md, configs/experiments/gpu/scale.md).")


def write_results(specs: list[ExperimentSpec], runs_root: Path, out: Path, scale: str | None = None) -> Path:
    """Write the report and its folder (CSVs, plots) from whatever rows exist; ``scale`` is the paragraph saying
    where, on what and when the runs were made (the folder's scale.md)."""
    results_dir = out.parent / out.stem
    sections, summary = [], ["| experiment | claim | verdict | effect | seeds |", "|---|---|---|---|---|"]
    for spec in specs:
        results, curves = collect(spec, runs_root, results_dir)
        verdicts = [judge(spec, check, results, curves) for check in spec.checks]
        png = results_dir / f"{spec.name}_psnr.png"
        plot = f"{results_dir.name}/{png.name}" if plot_curves(spec, results, curves, png) else ""
        sections += experiment_section(spec, results, curves, verdicts, plot)
        short = spec.title.split(":")[0]
        summary += [f"| {short} | {v.claim} | **{v.status}** | {v.effect} | {v.seeds} |" for v in verdicts]
        if not verdicts:
            summary.append(f"| {short} | (no checks) | | | |")
    header = [
        "# The paper's claims, measured with our training code",
        "",
        "Generated by `onevae experiment report` from the CSVs in "
        f"`docs/{results_dir.name}/` (written by `onevae experiment run`); do not edit by hand. Regenerated "
        f"{datetime.date.today().isoformat()}.",
        "",
        scale or NO_SCALE,
        "",
        RULES,
        "",
        "## Summary",
        "",
    ]
    text = "\n".join(header + summary + [""] + sections).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out
