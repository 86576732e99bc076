"""``onevae``: encode, decode, reconstruct, convert, info, train, export.

:func:`main` is the command line's one error boundary. Whatever the user caused (a bad file or config, a
mismatched model, a full or read-only disk, a missing permission) ends in one line on stderr and exit code 2;
nothing prints a traceback unless ``ONEVAE_DEBUG=1``. Exit codes (docs/cli.md):

- 0: done
- 2: user error (including OS errors: no space left, read-only file system, permission denied)
- 75: training preempted by SIGTERM, a checkpoint was saved (EX_TEMPFAIL: retry with ``--resume auto``)
- 130: interrupted by Ctrl-C (SIGINT; ``train`` saves a checkpoint first)
- 141: stdout closed early (``onevae info | head -3``): ends quietly, like a tool killed by SIGPIPE
- 143: another command stopped by SIGTERM (temporary files removed, no output written)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..errors import InputRangeWarning, OneVAEError, Preempted, Terminated

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75  # sysexits.h EX_TEMPFAIL: "temporary failure, retry"; 143 would not tell a saved checkpoint from a kill
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
EXIT_BROKEN_PIPE = 128 + 13  # 141, 128 + SIGPIPE (signal.SIGPIPE does not exist on Windows)


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="onevae",
        description="Video tokenizers that are both discrete and continuous (OneVAE). "
        "With no --model, the small tokenizer shipped with the package is used.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from .corpus_commands import add_tokenize

    for register in commands.REGISTRY + [add_tokenize]:
        register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return f"onevae {__version__}"


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``train``'s KEY=VALUE overrides may sit on both sides of its options
    (``train --config X a=1 --resume auto b=2``); any other leftover is an error, as argparse reports it."""
    args, extras = parser.parse_known_args(argv)
    if args.command == "train":
        overrides = [e for e in extras if "=" in e and not e.startswith("-")]
        args.overrides = [*args.overrides, *overrides]
        extras = [e for e in extras if e not in overrides]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    previous = _install_sigterm_handler()
    try:
        with one_line_warnings():
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except Exception as exc:
        code = exit_code(exc)
        if code is None or os.environ.get("ONEVAE_DEBUG"):
            raise  # a bug, not the user's doing: keep the traceback
        if not getattr(exc, "quiet", False):  # a preempted DDP run: its first process alone says so
            print(f"onevae {args.command}: {describe_failure(exc)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"onevae {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"onevae {args.command}: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (``| head``): point stdout at devnull, so that the interpreter's last flush
    does not complain, and end without a message (the Python documentation's recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Within: Python warnings print as the command line's other notices, one line ``[onevae] warning: …``
    on stderr (no source file, line number or code line); the previous display is restored after. The
    command line converts every frame to [-1, 1] itself, so a bright clip is not taken for a [0, 1] video."""
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        warnings.simplefilter("ignore", InputRangeWarning)
        yield


def show_warning(message, category: type[Warning], filename: str, lineno: int, file=None, line=None) -> None:
    """A :func:`warnings.showwarning` that prints one line; the category is named unless it is onevae's own."""
    kind = "" if category.__module__.startswith("onevae") else f"{category.__name__}: "
    print(f"[onevae] warning: {kind}{' '.join(str(message).split())}", file=file or sys.stderr)


def _install_sigterm_handler():
    """SIGTERM unwinds like Ctrl-C, so that cleanups run; returns the previous handler (None: not installed,
    as in a thread other than the main one)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        return None


def exit_code(exc: BaseException) -> int | None:
    """The exit code of a failure the user caused, or None for a bug."""
    if isinstance(exc, Preempted):
        return EXIT_INTERRUPTED if exc.signum == signal.SIGINT else EXIT_PREEMPTED
    if isinstance(exc, (OneVAEError, OSError, MemoryError)):
        return EXIT_USER_ERROR
    return None


def describe_failure(exc: BaseException) -> str:
    """One line for a user-caused failure."""
    return " ".join(_describe(exc).split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Preempted):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "error: out of memory; use a smaller --max-side or --chunk"
    if isinstance(exc, OSError) and not isinstance(exc, OneVAEError):
        return f"error: {describe_os_error(exc)}"
    return f"error: {exc}"


def describe_os_error(exc: OSError) -> str:
    """'cannot write out.mp4: No space left on device' rather than a traceback."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
