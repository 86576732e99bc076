"""What the machine runs fast: ``trainer.precision: auto``, and a warning before a reduced-precision run that
would crawl on a CPU.

PyTorch's CPU kernels run bfloat16 (and float16) natively only on CPUs with AVX-512 BF16/FP16 or AMX; on others
(AVX2-only machines, many AMD EPYCs) oneDNN emulates them. Measured on a 2-core AVX2 EPYC VM (2026-11-27,
PyTorch 2.13, docs/default_model.md "Recipe measurements"): a training step of onevae-small under bf16 autocast took
11x as long as in float32, and decoding in bfloat16 34x. The result is right, only slow, so this warns instead of refusing.
"""

from __future__ import annotations

import sys
import warnings

import torch

from .errors import OneVAEError, SlowDtypeWarning

_REDUCED = {torch.bfloat16: ("bfloat16", "AVX-512 BF16 or AMX"), torch.float16: ("float16", "AVX-512 FP16 or AMX")}


def cpu_runs_natively(dtype: torch.dtype) -> bool:
    """Whether this CPU has native kernels for ``dtype`` (always True for float32/float64, and when PyTorch
    cannot tell)."""
    probe = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}.get(dtype)
    if probe is None:
        return True
    try:
        return bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):  # an older or non-oneDNN build: no way to tell, so no warning
        return True


def slow_cpu_dtype_message(dtype: torch.dtype, setting: str, fallback: str) -> str | None:
    """One line for the user when ``dtype`` would run emulated on this CPU, else None.

    ``setting``: what the user set (e.g. ``trainer.precision=bf16-mixed``); ``fallback``: what to set instead."""
    if dtype not in _REDUCED or cpu_runs_natively(dtype):
        return None
    name, instructions = _REDUCED[dtype]
    return (f"{setting} on a CPU without {instructions} (best: {torch.backends.cpu.get_cpu_capability()}): "
            f"PyTorch emulates {name} here, 10-35x slower than float32; {fallback} is faster")


def warn_in_python_if_slow_on_cpu(*dtypes: torch.dtype | None) -> None:
    """A :class:`~onevae.errors.SlowDtypeWarning` for each distinct dtype this CPU would emulate (the Python API's
    counterpart of :func:`warn_if_slow_on_cpu`, which the command line prints with its own option names)."""
    for dtype in dict.fromkeys(d for d in dtypes if d is not None):
        message = slow_cpu_dtype_message(dtype, f"computing in {str(dtype).replace('torch.', '')}", "float32")
        if message:
            warnings.warn(message, SlowDtypeWarning, stacklevel=3)


def warn_if_slow_on_cpu(dtype: torch.dtype, setting: str, fallback: str) -> None:
    """Print :func:`slow_cpu_dtype_message` to stderr, as an ``[onevae] warning:`` line, if there is one."""
    message = slow_cpu_dtype_message(dtype, setting, fallback)
    if message:
        print(f"[onevae] warning: {message}", file=sys.stderr)


def trains_on_cuda(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` setting (``auto``, ``cpu``, ``gpu``, ``cuda``...) trains on a CUDA GPU."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def trains_on_cpu(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` setting trains on the CPU (``auto`` does when there is no CUDA or MPS)."""
    mps = getattr(torch.backends, "mps", None)
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available() and not (mps and mps.is_available()))


def auto_precision(accelerator: str) -> tuple[str, str]:
    """``trainer.precision: auto`` on ``accelerator`` (the trainer's setting): bf16 autocast where the hardware
    runs bfloat16 natively (CUDA GPUs with bf16, CPUs with AVX-512 BF16 or AMX), float32 elsewhere; and why."""
    if trains_on_cuda(accelerator):
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ("bf16-mixed", "the GPU runs bfloat16") if native else ("32-true", "the GPU has no bfloat16")
    if accelerator in ("cpu", "auto"):
        if cpu_runs_natively(torch.bfloat16):
            return "bf16-mixed", "the CPU runs bfloat16 natively"
        return "32-true", f"the CPU would emulate bfloat16 (best: {torch.backends.cpu.get_cpu_capability()})"
    return "32-true", f"no bfloat16 check for accelerator {accelerator}"


def checked_device(text: str) -> str:
    """A ``--device`` this machine can run on (cpu, cuda[:N], mps, ...), else a one-line :class:`OneVAEError`."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise OneVAEError(f"--device {text!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OneVAEError(f"--device {text} was asked for, but PyTorch sees no CUDA GPU")
        if device.index is not None and device.index >= count:
            raise OneVAEError(f"--device {text} was asked for, but PyTorch sees {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
        return text
    backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    if device.type == "meta":
        raise OneVAEError("--device meta holds no data and cannot run the model: use cpu, cuda or cuda:N")
    if not (callable(is_available) and is_available()):
        raise OneVAEError(f"--device {text} was asked for, but PyTorch has no {device.type} device here: use cpu, cuda or cuda:N")
    return text
