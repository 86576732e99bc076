"""User-facing errors.

Everything a user can get wrong (a bad file, a wrong shape, a mismatched checkpoint, an out-of-range token)
raises :class:`OneVAEError` with one clear sentence. The command line turns it into one line on stderr and a
non-zero exit; the Python API lets it propagate.
"""


class OneVAEError(Exception):
    """An error caused by the user's input, with a message meant to be read by a person."""


class InputError(OneVAEError, ValueError):
    """A tensor, video or token file that the model cannot take (shape, range, dtype, content)."""


class InputRangeWarning(UserWarning):
    """A video whose values all lie in [0, 1]: probably not converted to the [-1, 1] the model takes (a [0, 1]
    video is in range, so it cannot be refused, but encodes to washed-out latents and tokens)."""


class SlowDtypeWarning(UserWarning):
    """A model set to bfloat16/float16 on a CPU that emulates them (10-35x slower than float32, see
    :mod:`onevae.hardware`): the numbers are right, only slow."""


class CheckpointError(OneVAEError):
    """A checkpoint or model directory that is missing, unreadable or belongs to another model."""


class Preempted(Exception):
    """Training stopped by a signal (SIGTERM from a scheduler, SIGINT from Ctrl-C) after saving a checkpoint.

    Not an error: ``onevae train --resume auto`` continues exactly where it stopped."""

    def __init__(self, signum: int, message: str, quiet: bool = False) -> None:
        super().__init__(message)
        self.signum = signum
        self.quiet = quiet  # another process of the same run (DDP) says it: the command line stays silent


class Terminated(BaseException):
    """Raised by the command line's SIGTERM handler so that every ``with`` block cleans up (temporary files
    removed, nothing half-written) before the process exits. A BaseException, like KeyboardInterrupt, so that
    ``except Exception`` clauses cannot swallow it."""
