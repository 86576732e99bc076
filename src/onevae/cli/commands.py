"""Sub-commands of the ``onevae`` command line. Each ``add_*`` registers one parser."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import OneVAEError


# ------------------------------------------------------------------------------------------------ shared
def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model directory, Hugging Face id in the local cache, or 'default' (the shipped tokenizer)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="compute dtype (default: float32)")


def load_model_from_args(args: argparse.Namespace):
    import torch

    from ..model import OneVAE

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OneVAEError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    return OneVAE.from_pretrained(args.model, device=device, dtype=dtype)


def print_err(message: str) -> None:
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------------------------ train
def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a stage (continuous, discrete, joint) from a YAML config",
                       description="Train with PyTorch Lightning. Overrides: key.path=value (YAML values), e.g. trainer.max_steps=100.")
    p.add_argument("--config", default=None, help="YAML config (see configs/)")
    p.add_argument("--resume", default=None, help="'auto' (the run's last.ckpt if any) or a checkpoint path")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..train.config import load_train_config
    from ..train.runner import train

    config = load_train_config(args.config, args.overrides)
    export = train(config, resume=args.resume)
    print_err(f"[onevae] exported the trained model to {export}")
    return 0


# ------------------------------------------------------------------------------------------------ export
def add_export(sub) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to a model directory (from_pretrained)")
    p.add_argument("checkpoint", help="a .ckpt written by onevae train")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..train.checkpointing import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.output, use_ema=not args.no_ema)
    print_err(f"[onevae] wrote {out}/config.json and {out}/model.safetensors")
    return 0


REGISTRY = [add_train, add_export]
