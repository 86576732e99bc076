"""``onevae train``: build the model (and its initialisation), the data, the Lightning trainer, and fit."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import lightning as L
import torch

from ..errors import InputRangeWarning
from ..hardware import auto_precision, trains_on_cpu, warn_if_slow_on_cpu
from ..model import OneVAE
from ..state_dict import LoadReport
from .checkpointing import AtomicModelCheckpoint, ExportCallback, ResumePoint, SafeCheckpointIO, find_resume_checkpoint
from .config import TrainConfig, TrainerSection, validate
from .config_changes import check_resume_config
from .data import OneVAEDataModule, check_sources
from .initialise import initialise_model
from .logs import ResumableCSVLogger
from .module import OneVAETrainingModule
from .preemption import PreemptionCallback
from .rundir import RunDirectory
from .validation import MissedValidation, keep_validation_rows_up_to


def build_module(config: TrainConfig, initialise: bool = True) -> tuple[OneVAETrainingModule, LoadReport | None]:
    """The module to train; ``initialise``: load ``model.init_from`` (a resumed run takes its weights from the
    checkpoint instead, so it neither reads nor needs that file)."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = OneVAE(config.model_config())
    report = initialise_model(model, config.model) if config.model.init_from and initialise else None
    apply_speed_options(model, config.trainer.channels_last, config.trainer.compile)
    return OneVAETrainingModule(config, model), report


def apply_speed_options(model: OneVAE, channels_last: bool, compile_backend: str) -> None:
    """trainer.channels_last and trainer.compile on a model about to be trained (benchmarks/bench_train.py too)."""
    if channels_last:
        model.set_memory_format(torch.channels_last_3d)
    if compile_backend != "off":
        from torch._functorch import config as functorch_config

        # the adaptive GAN weight differentiates the loss twice (retain_graph), which inductor's donated buffers forbid
        functorch_config.donated_buffer = False
        model.compile(backend=compile_backend)  # in place: parameter names, checkpoints and EMA unchanged


def _multi_process(t: TrainerSection) -> bool:
    """Whether the trainer settings ask for more than one process (where Lightning's ``auto`` picks DDP)."""
    if t.num_nodes > 1:
        return True
    devices = t.devices.strip() if isinstance(t.devices, str) else t.devices
    if devices in ("auto", "-1", -1):  # every GPU there is (one process on a CPU)
        return t.accelerator != "cpu" and torch.cuda.device_count() > 1
    if isinstance(devices, str) and "," in devices:  # a list of device indices, as Lightning reads "0,1"
        return len([d for d in devices.split(",") if d.strip()]) > 1
    return int(devices) > 1 if str(devices).isdigit() else False


def _strategy(config: TrainConfig):
    name = config.trainer.strategy
    if name == "ddp" or (name == "auto" and _multi_process(config.trainer)):
        # paths not taken in a step (continuous vs discrete, the discriminator before its start) leave
        # parameters without gradients
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True, process_group_backend="gloo" if config.trainer.accelerator == "cpu" else None)
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from ..nn.layers import ResidualBlock

        return FSDPStrategy(auto_wrap_policy={ResidualBlock}, use_orig_params=True)
    return name


def build_trainer(config: TrainConfig, extra_callbacks: list | None = None, resume_step: int | None = None) -> L.Trainer:
    """``resume_step``: the step of the checkpoint the run resumes from (the metrics log keeps the rows before it)."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    out = Path(config.output_dir)
    t = config.trainer
    callbacks = [
        AtomicModelCheckpoint(
            dirpath=out / "checkpoints", filename="step={step:07d}", every_n_train_steps=t.checkpoint_every_n_steps,
            save_last=True, save_top_k=-1, auto_insert_metric_name=False, enable_version_counter=False,
        ),
        ExportCallback(out / "export", use_ema=t.export_ema),
        PreemptionCallback(out / "checkpoints" / "last.ckpt"),
        MissedValidation(out, config.val.every_n_steps),
    ]
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    callbacks += extra_callbacks or []
    loggers = [ResumableCSVLogger(str(out), name="logs", version="", resume_step=resume_step), _tensorboard_logger(out)]
    return L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=_strategy(config),
        precision=_precision(t.precision, t.accelerator),
        plugins=[SafeCheckpointIO()],
        logger=[lg for lg in loggers if lg is not None],
        callbacks=callbacks,
        log_every_n_steps=t.log_every_n_steps,
        val_check_interval=config.val.every_n_steps,  # in steps: the training loader never ends an epoch
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # our step sampler shards by rank itself
        default_root_dir=str(out),
        deterministic=False,
    )


def _tensorboard_logger(out: Path):
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out), name="tb", version="")
    except ModuleNotFoundError:  # tensorboard not installed: CSV only
        return None


# Lightning warnings that do not apply here: our checkpoints are taken after the optimiser step on purpose
# (resume continues from them), and a resumed run reuses its own log and checkpoint folders.
_QUIET = (
    r"Using ModelCheckpoint with manual optimization",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Experiment logs directory .* exists and is not empty",
    r"Checkpoint directory .* exists and is not empty",
    r"The '(train|val)_dataloader' does not have many workers",
    r"The dirpath has changed from",  # resuming a run that was moved, or another run's checkpoint: nothing to reload
)


# Lightning's rank_zero_info advertisements (litmodels, litlogger) on every run: dropped, other info kept.
_ADVERTS = ("[litmodels]", "[litlogger]")
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero", "lightning_utilities.core.rank_zero")


def _not_an_advert(record: logging.LogRecord) -> bool:
    """A logging filter: False for Lightning's "Tip: try installing [litmodels]/[litlogger]" lines."""
    message = str(record.msg)
    return not (message.startswith("\N{ELECTRIC LIGHT BULB} Tip:") and any(a in message for a in _ADVERTS))


def _quiet_lightning() -> None:
    import warnings

    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    # the training data is converted to [-1, 1] by onevae.data: a bright crop is not a [0, 1] video
    warnings.filterwarnings("ignore", category=InputRangeWarning)
    for name in _RANK_ZERO_LOGGERS:  # the logger rank_zero_info writes to (addFilter adds a filter once)
        logging.getLogger(name).addFilter(_not_an_advert)


def train(config: TrainConfig, resume: str | None = None, extra_callbacks: list | None = None, overwrite: bool = False) -> Path | None:
    """Run a training stage; returns the exported model directory.

    ``resume``: None (a new run: refused in a directory that holds one, unless ``overwrite``), ``"auto"`` or a
    checkpoint path; a resumed run may change settings (said in one line) but not what the checkpoint's state
    holds (:func:`~onevae.train.config_changes.check_resume_config`). Under DDP, the processes other than the
    first return None (the first one exports). Raises :class:`~onevae.errors.Preempted` when SIGTERM/SIGINT stopped the run after
    saving ``last.ckpt``."""
    from ..io.atomic import atomic_path

    _quiet_lightning()
    out = Path(config.output_dir)
    validate(config)  # a config built in Python, not read by load_train_config, is checked the same way
    model_config = config.model_config()  # every config error before the directory is touched
    check_sources(config)  # a missing data or val source (or an unknown heldout:NAME) before the model is built
    with RunDirectory(out, resume, overwrite):
        point = find_resume_checkpoint(out, resume, model_config)
        changes = check_resume_config(point.train_config, config, point.path) if point else None
        module, report = build_module(config, initialise=point is None)
        trainer = build_trainer(config, extra_callbacks, resume_step=point.step if point else None)
        _report_precision(trainer, config.trainer.precision, config.trainer.accelerator)
        if trainer.is_global_zero:
            config.save(out / "config.yaml")
            if point is not None:
                keep_validation_rows_up_to(out, point.step)
            if report is not None:
                with atomic_path(out / "init_report.json") as tmp:
                    tmp.write_text(json.dumps(report.to_dict(), indent=1))
                print(report.summary(), file=sys.stderr)
            if resume == "auto" and point is None:  # a first piece, or a mistyped output_dir: say which
                print(f"[onevae] --resume auto: no checkpoint in {out / 'checkpoints'} yet; starting a new run", file=sys.stderr)
            print(model_line(config, module.vae, point), file=sys.stderr)
            if changes:
                print(changes, file=sys.stderr)
            print(f"[onevae] {module.perceptual_message}", file=sys.stderr)
            if not config.val.sources and config.data.kind != "procedural":
                print("[onevae] validation on synthetic clips (val.sources is empty): name held-out videos in val.sources, "
                      "or [heldout]", file=sys.stderr)
        _fit(trainer, module, OneVAEDataModule(config), point.path if point else None)
        if trainer.is_global_zero and module.skipped_steps:
            print(f"[onevae] warning: {skipped_steps_line(module.skipped_steps, trainer.global_step, module.nonfinite_streak)}", file=sys.stderr)
    return out / "export" if trainer.is_global_zero else None


def skipped_steps_line(skipped: int, steps: int, final_streak: int) -> str:
    """What a run that finished with skipped (non-finite) steps says about them: a skipped step changes no weight,
    so the export holds the weights of the last step that was not skipped."""
    line = f"{skipped} of the run's {steps} steps were skipped as non-finite (train/skipped_steps in the logs)"
    if final_streak:
        line += (f"; the last {final_streak} in a row, so the export holds step {steps - final_streak}'s weights: "
                 "lower optim.lr or train in 32-true before trusting it")
    return line


def model_line(config: TrainConfig, model: OneVAE, point: ResumePoint | None) -> str:
    """What a run trains, said once at its start: the architecture (preset and overrides), its size and
    compression, and where its weights come from (a config without ``model:`` trains the default preset)."""
    section, c = config.model, model.config
    architecture = section.preset or "custom"
    if section.config:
        architecture += " with " + ", ".join(f"{k}={v}" for k, v in section.config.items())
    if point is not None:
        start = f"resumed from {point.path} (step {point.step})"
    else:
        start = f"initialised from {section.init_from}" if section.init_from else "randomly initialised"
    size = f"{model.num_parameters() / 1e6:.2f} M parameters, {c.temporal_factor}x{c.spatial_factor}x{c.spatial_factor}"
    return f"[onevae] model: {architecture} ({size}), {start}"


def _precision(precision: str, accelerator: str) -> str:
    """``trainer.precision`` with ``auto`` resolved for this machine, and ``16-mixed`` off a GPU made the
    ``bf16-mixed`` that Lightning would run instead on a CPU (it has no float16 autocast there), so that what is
    said about it names the dtype that actually runs."""
    if precision == "auto":
        return auto_precision(accelerator)[0]
    if precision == "16-mixed" and trains_on_cpu(accelerator):
        return "bf16-mixed"
    return precision


def _report_precision(trainer: L.Trainer, precision: str, accelerator: str) -> None:
    """On rank zero: what ``auto`` chose and why; a warning for bf16/fp16 on a CPU that emulates it."""
    from lightning.pytorch.accelerators import CPUAccelerator

    if not trainer.is_global_zero:
        return
    if precision == "auto":
        precision, why = auto_precision(accelerator)
        print(f"[onevae] trainer.precision=auto: {precision} ({why})", file=sys.stderr)
    elif (resolved := _precision(precision, accelerator)) != precision:
        print(f"[onevae] trainer.precision={precision}: {resolved} (no float16 autocast on a CPU)", file=sys.stderr)
        precision = resolved
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16 if precision.startswith("16") else None
    if dtype is not None and isinstance(trainer.accelerator, CPUAccelerator):
        warn_if_slow_on_cpu(dtype, f"trainer.precision={precision}", "trainer.precision=32-true")


def _fit(trainer: L.Trainer, module: OneVAETrainingModule, data: OneVAEDataModule, ckpt_path: str | None) -> None:
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    except SystemExit as exc:
        # Lightning turns Ctrl-C into sys.exit(1); give the command line back the interruption it was
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
