"""Building config dataclasses from plain mappings (YAML, JSON) with type checks and clear errors.

The dataclass *is* the schema: field types are checked (``bool`` is never a number, ``"no"`` is never true),
``Literal[...]`` fields only take their listed strings, and ``Annotated[int, Range(1, 64)]`` fields are
range-checked, so that every config, token-file metadata and ``config.json`` is validated in this one place
before anything is allocated or trained.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import OneVAEError


@dataclass(frozen=True)
class Range:
    """Bounds for a number field: ``low <= value <= high`` (``<`` where ``*_open``); None: unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, value: float, key: str) -> None:
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise OneVAEError(f"config key {key} must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts) or "a number"


POSITIVE = Range(0, None, low_open=True)
NON_NEGATIVE = Range(0)
UNIT_INTERVAL = Range(0, 1)


def build_dataclass(cls: type, data: dict[str, Any], where: str = "", strict: bool = False) -> Any:
    """Build dataclass ``cls`` from a mapping, recursively, refusing unknown keys, values of the wrong type,
    strings outside a ``Literal`` and numbers outside a ``Range``, each with its key path.

    ``strict``: numbers must be JSON numbers (by default a float field also takes a string such as YAML's
    ``1e4``, which YAML reads as a string)."""
    return _build(cls, data, where, strict)


def _build(cls: type, data: dict[str, Any], where: str, strict: bool = False) -> Any:
    if not isinstance(data, dict):
        raise OneVAEError(f"config section {where or 'root'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - names)
    if unknown:
        raise OneVAEError(unknown_keys_message(unknown, names, where))
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, {} if value is None else value, key, strict)
        else:
            kwargs[name] = _coerce(value, hint, key, strict)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a __post_init__ check of the dataclass itself
        if isinstance(exc, OneVAEError):
            raise
        raise OneVAEError(f"config {where or 'root'}: {exc}") from None


def unknown_keys_message(unknown: list[str], names: set[str], where: str) -> str:
    """One line naming the unknown keys of section ``where``, each with the known key it most resembles (a
    typo), else the section's known keys."""
    guesses = {key: difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.6) for key in unknown}
    listed = ", ".join(key + (f" (did you mean {guesses[key][0]}?)" if guesses[key] else "") for key in unknown)
    known = "" if all(guesses.values()) else f" (known: {', '.join(sorted(names))})"
    return f"unknown config key(s) in {where or 'root'}: {listed}{known}"


def _coerce(value: Any, hint: Any, key: str, strict: bool = False) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is types.UnionType:  # ``X | None`` is the same as ``Optional[X]``
        origin = Union
    if origin is Annotated:
        value = _coerce(value, args[0], key, strict)
        for rule in args[1:]:
            if isinstance(rule, Range):
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    rule.check(item, key)
        return value
    if value is None:
        if origin is Union and type(None) in args:
            return None
        raise OneVAEError(f"config key {key} cannot be null")
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise OneVAEError(f"config key {key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is Union:
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, strict)
            except OneVAEError as exc:
                errors.append(str(exc))
        raise OneVAEError(errors[0] if len(errors) == 1 else f"config key {key}: {value!r} does not fit {_type_name(hint)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            one = f" (one item: [{value}])" if isinstance(value, str) else ""
            raise OneVAEError(f"config key {key} must be a list, got {value!r}{one}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise OneVAEError(f"config key {key} must hold {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, key, strict) for v, a in zip(value, args))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key, strict) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise OneVAEError(f"config key {key} must be a mapping, got {type(value).__name__}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise OneVAEError(f"config key {key} must be true or false, got {value!r}")
    if hint in (int, float):
        return _number(value, hint, key, strict)
    if hint is str:
        if not isinstance(value, str):
            raise OneVAEError(f"config key {key} must be a string, got {value!r}")
        return value
    return value


def _number(value: Any, hint: type, key: str, strict: bool = False) -> int | float:
    if isinstance(value, str) and hint is float and not strict:  # YAML reads 1e4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise OneVAEError(f"config key {key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OneVAEError(f"config key {key} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise OneVAEError(f"config key {key} must be a finite number, got {value!r}")
    if hint is int and float(value) != int(value):
        raise OneVAEError(f"config key {key} must be an integer, got {value!r}")
    return hint(value)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "")


def read_yaml_file(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping a YAML file holds (empty file: {}); a missing file, invalid YAML or a non-mapping is one
    clear error."""
    path = Path(path)
    if not path.is_file():
        raise OneVAEError(f"{path}: no such {what} file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise OneVAEError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise OneVAEError(f"{path}: a {what} file must hold a mapping, got {type(data).__name__}")
    return data
