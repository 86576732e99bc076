"""Checks on the paths users give: an input must be an existing file (or a frame pattern naming existing files),
an output must be writable."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import OneVAEError
from .frame_files import find_frames, is_frame_sequence

PathLike = str | os.PathLike  # what every function taking a path accepts


def existing_file(path: str | os.PathLike, what: str = "file", error: type[OneVAEError] = OneVAEError) -> Path:
    """``path`` as a Path, or ``error`` when it is missing or a directory."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    if path.is_dir():
        raise error(f"{path} is a directory, not a {what}")
    return path


def existing_input(path: str | os.PathLike, what: str = "video file") -> Path:
    """``path`` as a Path: an existing file (even one whose name holds a ``%``), or a frame pattern
    (``frames/%05d.png``) that names existing frame files (:func:`onevae.io.frame_files.find_frames`); else
    OneVAEError. What the commands that read videos check before any work."""
    if is_frame_sequence(path):
        find_frames(path)
        return Path(path)
    return existing_file(path, what)


def writable_output(
    path: str | os.PathLike, suffixes: Iterable[str] | None = None, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Refuse an output that cannot be written (missing or read-only directory, a directory as the name), that
    lacks one of ``suffixes``, or that is one of the ``inputs`` (also through a link), before any work is done."""
    path = Path(path)
    for source in inputs:
        if same_file(path, source):
            raise OneVAEError(f"output {path} is the input {source}; writing it would destroy the input")
    if path.is_dir():
        raise OneVAEError(f"output {path} is a directory; give a file name")
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if not path.name.lower().endswith(suffixes):
            raise OneVAEError(f"output {path}: the name must end in {' or '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OneVAEError(f"cannot write {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OneVAEError(f"cannot write {path}: the directory {parent} is not writable")
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (the same inode: links and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return Path(a).resolve() == Path(b).resolve()


def directory_output(output: str | os.PathLike, count: int, several: str) -> Path | None:
    """``-o`` as the directory that ``count`` outputs are written into, or None when one output is the file ``-o``
    (an existing directory takes even one); a file given for several outputs is refused (``several`` names them:
    "several videos need")."""
    out = Path(output)
    if count == 1 and not out.is_dir():
        return None
    if out.exists() and not out.is_dir():
        raise OneVAEError(f"{several} -o to be a directory, got the file {out}")
    if not out.exists() and out.suffix:  # 'clip.mp4' for a batch is a slip, not a folder to create by that name
        raise OneVAEError(f"{several} -o to be a directory, got {out}, a file name; give a directory (make it first if "
                          "its name really has a suffix)")
    return out


def new_output_dir(path: str | os.PathLike, overwrite: bool = False, protected: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse, before any work, a directory output that would replace something: an existing file, a directory
    that already holds files (unless ``overwrite``), or one of ``protected`` (e.g. the shipped model), ever."""
    path = Path(path)
    for guarded in protected:
        if same_file(path, guarded):
            raise OneVAEError(f"output {path} is the model shipped inside the package; write to another directory")
    if path.exists() and not path.is_dir():
        raise OneVAEError(f"output {path} is a file; give a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OneVAEError(f"output {path} already holds files; pass --overwrite to replace them, or choose another directory")
    nearest = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())  # itself, or where it will be made
    if not os.access(nearest, os.W_OK):
        raise OneVAEError(f"cannot write {path}: {nearest} is not writable")
    return path
