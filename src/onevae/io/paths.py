"""Checks on the paths users give: an input must be an existing file, an output must be writable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from ..errors import OneVAEError


def existing_file(path: Union[str, os.PathLike], what: str = "file", error: type[OneVAEError] = OneVAEError) -> Path:
    """``path`` as a Path, or ``error`` when it is missing or a directory."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    if path.is_dir():
        raise error(f"{path} is a directory, not a {what}")
    return path


def writable_output(path: Union[str, os.PathLike]) -> Path:
    """Refuse an output that cannot be written (missing or read-only directory, a directory as the name),
    before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise OneVAEError(f"output {path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OneVAEError(f"cannot write {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OneVAEError(f"cannot write {path}: the directory {parent} is not writable")
    return path
