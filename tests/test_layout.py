"""The package's dependencies point one way (issue: one owner per idea, no import cycles).

Lower layers never import higher ones, even inside a function: the core model knows nothing of checkpoint
formats, files, training or the command line; nothing but the CLI imports the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "onevae"

# module (or package) -> what it must never import
FORBIDDEN = {
    "onevae.errors": ["onevae.config", "onevae.model", "onevae.nn"],
    "onevae.extras": ["onevae.config", "onevae.model", "onevae.nn", "onevae.io"],
    "onevae.latents": ["onevae.model", "onevae.nn", "onevae.checkpoints", "onevae.io", "onevae.train", "onevae.cli"],
    "onevae.hardware": ["onevae.model", "onevae.nn", "onevae.io", "onevae.train", "onevae.cli"],
    "onevae.padding": ["onevae.model", "onevae.io", "onevae.train", "onevae.cli"],
    "onevae.nn": ["onevae.model", "onevae.checkpoints", "onevae.io", "onevae.pipeline", "onevae.train", "onevae.cli"],
    "onevae.quantizers": ["onevae.model", "onevae.checkpoints", "onevae.train", "onevae.cli"],
    "onevae.streaming": ["onevae.checkpoints", "onevae.io", "onevae.pipeline", "onevae.train", "onevae.cli"],
    "onevae.model": ["onevae.checkpoints", "onevae.pipeline", "onevae.train", "onevae.cli", "onevae.data", "onevae.losses"],
    "onevae.checkpoints": ["onevae.pipeline", "onevae.train", "onevae.cli"],
    "onevae.io": ["onevae.model", "onevae.checkpoints", "onevae.train", "onevae.cli"],
    "onevae.data": ["onevae.model", "onevae.train", "onevae.cli"],
    "onevae.eval": ["onevae.train", "onevae.cli"],
    "onevae.losses": ["onevae.train", "onevae.cli"],
    "onevae.pipeline": ["onevae.train", "onevae.cli"],
    "onevae.corpus": ["onevae.train", "onevae.cli"],
    "onevae.sequences": ["onevae.train", "onevae.cli", "onevae.corpus"],
    "onevae.train": ["onevae.cli"],
    "onevae.experiments": ["onevae.cli"],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every onevae module a file imports at run time, at any depth (function-level imports included; imports
    for type checkers only, under ``if TYPE_CHECKING:``, are not)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.update(f"{module}.{a.name}" for a in node.names)
            found.add(module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("onevae")}


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


@pytest.mark.parametrize("owner", sorted(FORBIDDEN))
def test_no_upward_imports(owner):
    files = [p for name, p in MODULES.items() if name == owner or name.startswith(owner + ".")]
    assert files, owner
    bad = []
    for path in files:
        for imported in imports_of(path):
            for forbidden in FORBIDDEN[owner]:
                if imported == forbidden or imported.startswith(forbidden + "."):
                    bad.append(f"{module_name(path)} imports {imported}")
    assert not bad, bad


def test_no_import_cycles_between_modules():
    graph = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}
    graph = {name: {d for d in deps if not (name == "onevae" or d == "onevae")} for name, deps in graph.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, set()))
    assert not cycles, cycles
