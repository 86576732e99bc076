"""Building config dataclasses from plain mappings (YAML, JSON) with type checks and clear errors."""

from __future__ import annotations

import dataclasses
from typing import Any, Union, get_args, get_origin, get_type_hints

from .errors import OneVAEError


def build_dataclass(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, recursively, refusing unknown keys with their path."""
    return _build(cls, data, where)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, recursively, refusing unknown keys with their path."""
    if not isinstance(data, dict):
        raise OneVAEError(f"config section {where or 'root'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise OneVAEError(f"unknown config key(s) in {where or 'root'}: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, key)
        else:
            kwargs[name] = _coerce(value, hint, key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if value is None:
        if origin is Union and type(None) in args:
            return None
        raise OneVAEError(f"config key {key} cannot be null")
    if origin is Union:
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except OneVAEError:
                continue
        raise OneVAEError(f"config key {key}: {value!r} does not fit {hint}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise OneVAEError(f"config key {key} must be a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise OneVAEError(f"config key {key} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, str) and hint is float:  # YAML reads 1e4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise OneVAEError(f"config key {key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OneVAEError(f"config key {key} must be a number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise OneVAEError(f"config key {key} must be an integer, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise OneVAEError(f"config key {key} must be a string, got {value!r}")
        return value
    return value
