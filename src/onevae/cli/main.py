"""``onevae``: encode, decode, reconstruct, convert, info, train, export.

User errors (bad files, wrong shapes, mismatched models) end in one line on stderr and exit code 2; nothing
prints a traceback unless ``ONEVAE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from ..errors import OneVAEError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="onevae",
        description="Video tokenizers that are both discrete and continuous (OneVAE). "
        "With no --model, the small tokenizer shipped with the package is used.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in commands.REGISTRY:
        register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return f"onevae {__version__}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OneVAEError as exc:
        if os.environ.get("ONEVAE_DEBUG"):
            raise
        print(f"onevae {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"onevae {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(f"onevae {args.command}: error: out of memory; use a smaller --max-side or --chunk 1", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
