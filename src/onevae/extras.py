"""Optional dependencies (the extras of pyproject.toml): imported where they are used, and a missing one is one
clear error that names the extra to install, never a traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import OneVAEError


def require(module: str, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """``import module``, or OneVAEError "PURPOSE needs PACKAGE: pip install 'onevae[EXTRA]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OneVAEError(f"{purpose} needs {package or module}: pip install 'onevae[{extra}]'") from None
