"""The experiment runner (onevae experiment run/report): quick mode, CSVs, resume after an interruption, the
report; the quantizer choice; the verdict rules."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import yaml

from onevae import OneVAE, OneVAEConfig
from onevae.cli.main import main as cli_main

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "configs" / "experiments"


def mini_experiment(tmp_path: Path) -> Path:
    """Two arms and a shared prior over the experiments' base config (what --quick shrinks)."""
    spec = {
        "name": "mini", "title": "Mini: prior vs scratch", "base": str(EXPERIMENTS / "base" / "tiny.yaml"),
        "seeds": [0, 1, 2],
        "eval": {"every_n_steps": 50, "windows": [{"source": "sample:carphone_pristine", "frames": 17, "height": 64, "width": 64}]},
        "stages": {"prior": {"train": {"stage": "continuous", "schedule": {"kind": "continuous"}}}},
        "arms": {
            "from_prior": {"init": "prior", "label": "from the prior"},
            "scratch": {"label": "from scratch"},
        },
        "checks": [{"claim": "prior helps", "arm": "from_prior", "baseline": "scratch"}],
        "quick": {"max_steps": 4, "eval_every": 2, "train": {"data": {"num_frames": 5, "height": 16, "width": 16, "batch_size": 1}}},
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def run_quick(spec: Path, root: Path) -> int:
    return cli_main(["experiment", "run", str(spec), "--quick", "--runs", str(root), "--threads", "1"])


def test_quick_run_resumes_after_an_interruption_and_reports(tmp_path, monkeypatch, capsys):
    from onevae.experiments import evaluation

    spec = mini_experiment(tmp_path)
    # reference: an uninterrupted run
    assert run_quick(spec, tmp_path / "ref") == 0
    ref = {r["arm"]: r for r in read(tmp_path / "ref" / "mini" / "results.csv")}
    assert sorted(ref) == ["from_prior", "scratch"]
    assert ref["from_prior"]["total_steps"] == "8" and ref["scratch"]["total_steps"] == "4"
    curves = read(tmp_path / "ref" / "mini" / "curves.csv")
    assert sorted({int(r["step"]) for r in curves if r["arm"] == "scratch"}) == [0, 2, 4]
    assert {r["path"] for r in curves} == {"continuous", "discrete"}

    # a crash at step 3 of the first arm (its checkpoint is at step 2), then continued by a second call
    original = evaluation.HeldOutEvaluator.on_train_batch_end

    def crash(self, trainer, module, *args):
        original(self, trainer, module, *args)
        if trainer.global_step == 3 and "from_prior" in str(self.out_csv):
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(evaluation.HeldOutEvaluator, "on_train_batch_end", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_quick(spec, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "mini" / "results.csv").exists()
    monkeypatch.setattr(evaluation.HeldOutEvaluator, "on_train_batch_end", original)
    assert run_quick(spec, tmp_path / "resumed") == 0
    resumed = {r["arm"]: r for r in read(tmp_path / "resumed" / "mini" / "results.csv")}
    for arm in ref:
        for key in ("psnr_continuous", "psnr_discrete", "psnr_discrete_step0"):
            assert float(resumed[arm][key]) == pytest.approx(float(ref[arm][key]), abs=1e-3)
    steps = [int(r["step"]) for r in read(tmp_path / "resumed" / "mini" / "curves.csv") if r["arm"] == "from_prior" and r["path"] == "discrete"]
    assert steps == [0, 2, 4]  # each evaluation once, none lost or repeated

    # a third call finds everything done: no new rows; status says so
    assert run_quick(spec, tmp_path / "resumed") == 0
    assert len(read(tmp_path / "resumed" / "mini" / "results.csv")) == 2
    capsys.readouterr()
    assert cli_main(["experiment", "status", str(spec), "--quick", "--runs", str(tmp_path / "resumed")]) == 0
    status = capsys.readouterr().out.splitlines()
    assert len(status) == 2 and all(" finished  tokens " in line for line in status)

    # the report: tables, a pending verdict (1 of 3 seeds), the plot
    (tmp_path / "exps").mkdir()
    (tmp_path / "exps" / "mini.yaml").write_text(spec.read_text())
    out = tmp_path / "docs" / "results.md"
    assert cli_main(["experiment", "report", "--runs", str(tmp_path / "resumed"), "--experiments", str(tmp_path / "exps"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| from the prior | 1 of 3 | 4 (8) |" in text
    assert "pending (1 of 3 seeds)" in text
    assert f"{float(resumed['from_prior']['psnr_discrete']):.2f}" in text
    assert (tmp_path / "docs" / "results" / "mini_psnr.png").stat().st_size > 1000
    assert (tmp_path / "docs" / "results" / "mini_results.csv").read_text() == (tmp_path / "resumed" / "mini" / "results.csv").read_text()


def test_experiment_files_are_valid_and_every_arm_builds(tmp_path):
    """Every configs/experiments/*.yaml loads, and each arm's quick training config and model build."""
    from onevae.configtools import build_dataclass
    from onevae.experiments import find_experiments
    from onevae.experiments.runner import RunOptions, jobs
    from onevae.train.config import TrainConfig, validate

    specs = find_experiments(EXPERIMENTS)
    assert [s.name for s in specs][:2] == ["e1_prior_vs_scratch", "e6_transition_schedules"]
    assert len(specs) == 6
    gpu = find_experiments(EXPERIMENTS / "gpu")  # the larger-scale versions, reported in docs/results_gpu.md
    assert [s.name for s in gpu] == ["e3_multi_token_gpu"]
    options = RunOptions(root=tmp_path, data_dir=tmp_path, opencv_dir=None, quick=True)
    for spec in specs + gpu:
        assert spec.seeds == [0, 1, 2]
        for plan in jobs(spec, options):
            config = build_dataclass(TrainConfig, {**plan.config, "output_dir": str(tmp_path)})
            validate(config)
            model = OneVAE(config.model_config())
            video = torch.zeros(1, 3, 5, 16, 16)
            assert model.decode_latents(model.encode_latents(video)).shape == video.shape


def test_a_bad_experiment_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "title": "t", "arms": {"a": {"init": "nope"}}}))
    assert cli_main(["experiment", "run", str(bad), "--quick", "--runs", str(tmp_path)]) == 2
    assert "starts from 'nope', which is not one of its stages" in capsys.readouterr().err


def test_seed_selection_restricts_the_runs(tmp_path, capsys):
    from onevae.experiments import load_experiment
    from onevae.experiments.runner import RunOptions, jobs

    spec = load_experiment(EXPERIMENTS / "e1_prior_vs_scratch.yaml")
    def seeds_run(**options) -> list[int]:  # quick mode (no data to prepare) keeps the first seed
        return [p.seed for p in jobs(spec, RunOptions(root=tmp_path, data_dir=tmp_path, opencv_dir=None, quick=True, **options))]

    assert seeds_run() == [0] * len(spec.arms) == seeds_run(seeds=(0, 2))
    assert seeds_run(seeds=(2,)) == []
    assert cli_main(["experiment", "run", str(EXPERIMENTS / "e1_prior_vs_scratch.yaml"), "--seeds", "0,x", "--runs", str(tmp_path)]) == 2
    assert "--seeds must be comma-separated integers" in capsys.readouterr().err


@pytest.mark.slow
def test_every_experiment_runs_quick(tmp_path):
    """All six experiments, one seed, a few steps each (what `make science` runs at full length)."""
    pytest.importorskip("vector_quantize_pytorch")
    files = sorted(str(p) for p in EXPERIMENTS.glob("*.yaml"))
    assert cli_main(["experiment", "run", *files, "--quick", "--runs", str(tmp_path), "--threads", "1"]) == 0
    for path in files:
        name = yaml.safe_load(Path(path).read_text())["name"]
        rows = read(tmp_path / name / "results.csv")
        arms = yaml.safe_load(Path(path).read_text())["arms"]
        assert sorted(r["arm"] for r in rows) == sorted(arms)


# ------------------------------------------------------------------------------------------------ quantizers
def quantizer_config(**changes) -> OneVAEConfig:
    base = dict(dim=8, z_dim=8, dim_mult=[1, 2], num_res_blocks=1, temporal_downsample=[True], fsq_levels=[8, 5, 5, 5], num_codebooks=2)
    return OneVAEConfig(**{**base, **changes})


@pytest.mark.parametrize("changes, embed_dim, vocab", [
    ({}, 8, 1000),
    ({"quantizer": "vq", "codebook_size": 64, "codebook_dim": 3}, 6, 64),
    ({"quantizer": "lfq", "codebook_size": 256}, 16, 256),
])
def test_quantizer_choice_tokens_decode_like_the_training_path(changes, embed_dim, vocab):
    if changes:
        pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    model = OneVAE(quantizer_config(**changes)).eval()
    assert model.config.embed_dim == embed_dim and model.config.vocab_size == vocab
    video = torch.rand(1, 3, 5, 8, 8) * 2 - 1
    tokens = model.encode_tokens(video)
    grid = tokens.to_list()[0]
    assert grid.shape == (1, 3, 4, 4, 2) and int(grid.min()) >= 0 and int(grid.max()) < vocab
    with torch.no_grad():
        via_tokens = model.decode_tokens(tokens)
        via_quantize = model.decode_latents(model.quantize(model.encode_latents(video))[0])
    torch.testing.assert_close(via_tokens, via_quantize, atol=1e-5, rtol=1e-5)
    # gradients reach the encoder through the quantizer; VQ/LFQ report their auxiliary loss
    model.train()
    out = model(video)
    out.recon.square().mean().backward()
    assert model.model.encoder.conv1.weight.grad.abs().sum() > 0
    from onevae.quantizers.factory import auxiliary_loss

    assert (auxiliary_loss(model.quantizer) is None) == (not changes)


def test_fsq_is_still_the_default_and_bad_quantizer_configs_are_refused():
    config = quantizer_config()
    assert config.quantizer == "fsq" and type(OneVAE(config).quantizer).__name__ == "FSQ"
    with pytest.raises(ValueError, match="quantizer must be one of"):
        quantizer_config(quantizer="rvq", codebook_size=4)
    with pytest.raises(ValueError, match="power-of-two"):
        quantizer_config(quantizer="lfq", codebook_size=1000)
    with pytest.raises(ValueError, match="codebook_dim"):
        quantizer_config(quantizer="vq", codebook_size=16)


# ------------------------------------------------------------------------------------------------ verdicts
def verdict_spec(checks):
    from onevae.experiments.spec import ArmSpec, CheckSpec, ExperimentSpec

    return ExperimentSpec(name="x", title="x", arms={"a": ArmSpec(), "b": ArmSpec(), "c": ArmSpec()},
                          checks=[CheckSpec(**c) for c in checks])


def rows(values: dict[str, list[float]], metric: str = "psnr_discrete") -> list[dict]:
    return [{"arm": arm, "seed": str(seed), metric: str(v)} for arm, vs in values.items() for seed, v in enumerate(vs)]


@pytest.mark.parametrize("a, b, status", [
    ([20.5, 20.6, 20.4], [20.0, 20.1, 20.0], "confirmed"),
    ([20.0, 20.05, 19.0], [20.0, 20.0, 20.0], "not confirmed"),
    ([19.0, 19.1, 19.2], [20.0, 20.0, 20.0], "not confirmed (the opposite holds)"),
    ([20.5, 19.5, 20.5], [20.0, 20.0, 20.0], "inconclusive (the seeds disagree)"),
    ([20.5, 20.5], [20.0, 20.0], "pending (2 of 3 seeds)"),
])
def test_greater_verdicts(a, b, status):
    from onevae.experiments.verdict import judge

    spec = verdict_spec([{"claim": "a beats b", "arm": "a", "baseline": "b"}])
    verdict = judge(spec, spec.checks[0], rows({"a": a, "b": b}), [])
    assert verdict.status == status
    diffs = [x - y for x, y in zip(a, b)]
    assert verdict.effect.startswith(f"{sum(diffs) / len(diffs):+.2f}")


def test_speedup_verdict_from_curves():
    from onevae.experiments.verdict import judge

    spec = verdict_spec([{"claim": "faster", "kind": "speedup", "arm": "a", "baseline": "b"}])
    results = rows({"a": [21.0] * 3, "b": [18.0] * 3})
    curves = []
    for seed in range(3):
        curves += [{"arm": "a", "seed": str(seed), "path": "discrete", "step": str(s), "psnr": str(v)} for s, v in [(0, 10), (50, 18.5), (100, 21)]]
        curves += [{"arm": "b", "seed": str(seed), "path": "discrete", "step": str(s), "psnr": str(v)} for s, v in [(0, 10), (100, 14), (200, 18)]]
    verdict = judge(spec, spec.checks[0], results, curves)
    assert verdict.status == "confirmed"  # 200 steps vs 50: 4x
    assert verdict.effect.startswith("4.0 ± 0.0 x")
    assert not math.isnan(float(verdict.effect.split()[0]))


def test_speedup_can_count_the_prior_steps():
    from onevae.experiments.verdict import judge

    spec = verdict_spec([{"claim": "faster with the prior counted", "kind": "speedup", "arm": "a", "baseline": "b", "include_stage_steps": True}])
    results = [{**r, "steps": "100", "total_steps": "200" if r["arm"] == "a" else "100"} for r in rows({"a": [21.0] * 3, "b": [18.0] * 3})]
    curves = []
    for seed in range(3):
        curves += [{"arm": "a", "seed": str(seed), "path": "discrete", "step": str(s), "psnr": str(v)} for s, v in [(0, 18.5), (100, 21)]]
        curves += [{"arm": "b", "seed": str(seed), "path": "discrete", "step": str(s), "psnr": str(v)} for s, v in [(0, 10), (100, 14), (200, 18)]]
    verdict = judge(spec, spec.checks[0], results, curves)
    # reached at its own step 0, i.e. after the prior's 100 steps: 200 / 100 = 2x, not unbounded
    assert verdict.effect.startswith("2.0 ± 0.0 x") and verdict.status == "confirmed"


@pytest.mark.parametrize("a, b, c, status", [
    ([20.5, 20.6, 20.4], [20.0, 20.1, 20.0], [19.0] * 3, "clear"),
    ([20.05, 20.1, 20.0], [20.0, 20.0, 20.05], [19.0] * 3, "no clear best (the lead is within the 0.1 dB margin)"),
    ([20.5, 20.5, 19.9], [20.0, 20.0, 20.0], [19.0] * 3, "best on average, not on every seed"),
])
def test_best_verdict_needs_a_lead_beyond_the_margin(a, b, c, status):
    from onevae.experiments.verdict import judge

    spec = verdict_spec([{"claim": "best", "kind": "best", "arms": ["a", "b", "c"]}])
    verdict = judge(spec, spec.checks[0], rows({"a": a, "b": b, "c": c}), [])
    assert verdict.status == status and verdict.effect.startswith("a, ahead of b by")


def test_the_report_warns_when_load_not_the_arm_sets_the_seconds_per_step():
    from onevae.experiments.report import _load_note

    steady = [{"arm": "a", "seed": str(s), "steps": "100", "seconds": str(v)} for s, v in enumerate([50, 55, 60])]
    assert _load_note(steady) == ""
    loaded = steady + [{"arm": "b", "seed": str(s), "steps": "100", "seconds": str(v)} for s, v in enumerate([40, 300, 50])]
    assert "up to 7.5x between the seeds of one arm" in _load_note(loaded)


def test_a_run_that_stops_itself_is_recorded_as_failed(tmp_path):
    """A diverging run (here: non-finite losses from an absurd learning rate, trainer.nonfinite stop) gets a
    'failed' row and summary; the experiment goes on with the next arm; the verdict says so."""
    spec_path = mini_experiment(tmp_path)
    spec = yaml.safe_load(spec_path.read_text())
    spec["stages"] = {}
    spec["arms"] = {"from_prior": {"train": {"optim": {"lr": 1.0e30, "warmup_steps": 0}, "trainer": {"nonfinite": "stop"}}}, "scratch": {}}
    spec_path.write_text(yaml.safe_dump(spec))
    assert run_quick(spec_path, tmp_path / "runs") == 0
    rows = {r["arm"]: r for r in read(tmp_path / "runs" / "mini" / "results.csv")}
    assert rows["from_prior"]["status"].startswith("failed: training stopped") and rows["from_prior"]["psnr_discrete"] == ""
    assert rows["scratch"]["status"] == "ok" and float(rows["scratch"]["psnr_discrete"]) > 5
    from onevae.experiments import load_experiment
    from onevae.experiments.verdict import judge

    loaded = load_experiment(spec_path)
    verdict = judge(loaded, loaded.checks[0], list(rows.values()), [])
    assert verdict.status == "inconclusive (1 run(s) failed)"


def test_a_changed_config_replaces_the_stale_rows_instead_of_keeping_them(tmp_path):
    """results.csv is keyed by (arm, seed) and the run's hash: after a config change, the new run's row and
    curves replace the old ones (an experiment fixed after a bad run must not keep reporting the bad run)."""
    spec_path = mini_experiment(tmp_path)
    root = tmp_path / "runs"
    assert run_quick(spec_path, root) == 0
    before = read(root / "mini" / "results.csv")
    spec = yaml.safe_load(spec_path.read_text())
    spec["arms"]["scratch"]["train"] = {"optim": {"lr": 3e-4}}  # only the scratch arm changes
    spec_path.write_text(yaml.safe_dump(spec))
    assert run_quick(spec_path, root) == 0
    after = read(root / "mini" / "results.csv")
    runs = lambda rows, arm: [r["run"] for r in rows if r["arm"] == arm]  # noqa: E731
    assert runs(after, "from_prior") == runs(before, "from_prior")  # unchanged: kept, not redone
    assert len(runs(after, "scratch")) == 1 and runs(after, "scratch") != runs(before, "scratch")
    curves = read(root / "mini" / "curves.csv")
    assert {(r["arm"], r["seed"]) for r in curves} == {("from_prior", "0"), ("scratch", "0")}
    assert len([r for r in curves if r["arm"] == "scratch"]) == len([r for r in curves if r["arm"] == "from_prior"])  # no stale curve left


def test_jobs_share_the_runs_of_an_experiment(tmp_path, capsys):
    """--jobs 2: a second process takes the runs the first does not hold; every run is trained once and the
    results match a single process's."""
    spec = mini_experiment(tmp_path)
    assert run_quick(spec, tmp_path / "one") == 0
    args = ["experiment", "run", str(spec), "--quick", "--runs", str(tmp_path / "two"), "--threads", "1", "--jobs", "2"]
    assert cli_main(args) == 0
    assert "worker 1 started" in capsys.readouterr().out
    one = {r["arm"]: r for r in read(tmp_path / "one" / "mini" / "results.csv")}
    two = {r["arm"]: r for r in read(tmp_path / "two" / "mini" / "results.csv")}
    assert sorted(two) == sorted(one) == ["from_prior", "scratch"]  # one row each: nothing trained twice
    for arm in one:
        assert float(two[arm]["psnr_discrete"]) == pytest.approx(float(one[arm]["psnr_discrete"]), abs=1e-3)
    log = (tmp_path / "two" / "logs" / "worker-1.log").read_text()
    assert "Traceback" not in log
    assert len(list((tmp_path / "two" / "runs").glob("*-s0-*"))) == 3  # the prior and the two arms


def test_a_folder_scale_note_replaces_the_cpu_scale_paragraph(tmp_path):
    from onevae.experiments import find_experiments

    spec = mini_experiment(tmp_path)
    folder = tmp_path / "exps"
    folder.mkdir()
    (folder / "mini.yaml").write_text(spec.read_text())
    out = tmp_path / "docs" / "results_gpu.md"
    args = ["experiment", "report", "--runs", str(tmp_path / "none"), "--experiments", str(folder), "--out", str(out)]
    assert cli_main(args) == 0
    assert "**Scale.** Not stated" in out.read_text() and "docs/results_gpu/" in out.read_text()
    (folder / "scale.md").write_text("**Scale.** One GPU, nine runs at once.\n")
    assert cli_main(args) == 0
    text = out.read_text()
    assert "**Scale.** One GPU, nine runs at once." in text and "Not stated" not in text
    assert [s.name for s in find_experiments(folder)] == ["mini"]  # scale.md is no experiment


def test_report_without_experiment_files_writes_nothing(tmp_path, capsys):
    """Outside a checkout the default configs/experiments does not exist: an error, not an empty report."""
    out = tmp_path / "docs" / "results.md"
    args = ["experiment", "report", "--runs", str(tmp_path / "none"), "--experiments", str(tmp_path / "missing"), "--out", str(out)]
    assert cli_main(args) == 2
    assert f"{tmp_path / 'missing'}: no experiment files (*.yaml) there" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()
