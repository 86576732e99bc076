"""Writing files whole or not at all: a temporary file beside the target, renamed onto it on success; an
output directory created for a command and removed again if the command fails before writing into it."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OneVAEError


def temp_file_beside(target: str | Path, suffix: str = ".tmp") -> Path:
    """An empty temporary file in ``target``'s directory (so that the final rename is atomic), with the
    permissions a normal new file gets (mkstemp alone makes it 0600)."""
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=directory)
    except OSError as exc:
        raise OneVAEError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    os.chmod(name, default_file_mode())
    return Path(name)


def default_file_mode() -> int:
    """The permissions a new file gets from ``open()`` under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a directory's) content to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: str | Path, target: str | Path) -> None:
    """Rename a complete temporary file onto ``target`` so that a power loss leaves either the old or the new
    file: the data is flushed before the rename, the directory entry after it."""
    fsync_path(tmp)
    os.replace(tmp, target)
    try:
        fsync_path(Path(target).parent if str(Path(target).parent) else ".")
    except OSError:  # some file systems cannot fsync a directory; the rename itself is done
        pass


class atomic_path:
    """Context manager: yields a temporary path next to ``target``; renames it onto ``target`` on success,
    removes it on failure."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.tmp = temp_file_beside(self.target)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None
        if exc_type is None:
            # writers that replace the file themselves (safetensors does) leave it 0600: set the usual mode again
            try:
                os.chmod(self.tmp, default_file_mode())
                replace_durably(self.tmp, self.target)
            except BaseException:
                self.tmp.unlink(missing_ok=True)
                raise
        else:
            self.tmp.unlink(missing_ok=True)
        return False


@contextmanager
def output_directory(path: str | Path | None) -> Iterator[Path | None]:
    """Context manager: ``path`` as a directory, created with its missing parents; if the block fails or is
    interrupted (Ctrl-C, SIGTERM) the directories it created are removed again while empty, so that nothing the
    command made is left. ``None``: nothing to create."""
    if path is None:
        yield None
        return
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OneVAEError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    try:
        yield path
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(directories: list[Path]) -> None:
    """rmdir each directory in order (deepest first), stopping at the first that is not empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def write_safetensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` through :class:`atomic_path`; its I/O failures (a full disk, a file size
    limit) become the OSError they are, naming ``path``, instead of a SafetensorError."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            number = int(code.group(1))
            raise OSError(number, os.strerror(number) if number else errno.errorcode.get(number, str(exc)), str(path)) from None
