"""The layering of DESIGN.md, checked on the source: "nothing flows back up".

Every module under ``promptopt/`` is parsed with ``ast`` (nothing is imported, so a heavy optional
dependency cannot hide an edge) and every import is read — at module level, inside functions,
under ``TYPE_CHECKING`` — because a lazy import inside a function is still a dependency: it is how
``tasks/`` came to reach into ``optimizers/`` and how ``bpo.train`` and ``bpo.train_pref`` came to
import each other.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "promptopt"

#: The promptopt modules ``llm/`` may use today: the lowest layer, below everything else.
#: A new one here is a design decision (DESIGN.md: "llm/ imports nothing of the rest"), not a fix.
LLM_MAY_IMPORT = frozenset({"promptopt.errors", "promptopt.extras", "promptopt.paths", "promptopt.records"})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = all_modules()


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(absolute dotted name, line) of every import anywhere in the file. ``from a import b`` yields
    ``a.b`` when that is a module of the package (``from promptopt import errors``), else ``a``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), node.lineno


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(package: str, allowed: Callable[[str], bool]) -> list[str]:
    found = {
        f"{mod} (line {line}) imports {name}"
        for mod, path in MODULES.items()
        if within(mod, package)
        for name, line in imported(mod, path)
        if within(name, "promptopt") and not allowed(name)
    }
    return sorted(found)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_parser_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import promptopt.errors\n"
        "def f():\n    from promptopt.optimizers.bpo.rewriter import Rewriter\n"
        "from . import paths\nfrom promptopt import records\n",
        encoding="utf-8",
    )
    assert {n for n, _ in imported("promptopt.llm.m", src)} == {
        "promptopt.errors",
        "promptopt.optimizers.bpo.rewriter",  # inside a function
        "promptopt.llm",  # "from . import paths" in llm/: llm.paths is no module, so the package
        "promptopt.records",  # "from promptopt import records": the module, not the package
    }
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_tasks_do_not_import_optimizers() -> None:
    assert "promptopt.tasks.instructions.rewrite" in MODULES  # the scan does reach the tasks
    bad = violations("promptopt.tasks", lambda name: not within(name, "promptopt.optimizers"))
    assert not bad, "tasks are below optimizers:\n" + "\n".join(bad)


def test_the_rewriter_contract_is_below_tasks_and_optimizers() -> None:
    """``promptopt.rewriting`` is how a task reaches a BPO rewriter without importing it: it must
    import neither side, and each loader it names as ``"module:function"`` must really exist
    (a string reference is the one link the import scan cannot see)."""
    from promptopt.rewriting import LOADERS, rewriter_loader

    path = MODULES["promptopt.rewriting"]
    ours = {n for n, _ in imported("promptopt.rewriting", path) if within(n, "promptopt")}
    assert ours <= {"promptopt.errors"}, ours
    assert LOADERS
    for kind, ref in LOADERS.items():
        assert ref.partition(":")[0] in MODULES, ref
        assert callable(rewriter_loader(kind)), ref


def test_llm_imports_only_the_lowest_modules() -> None:
    assert len([m for m in MODULES if within(m, "promptopt.llm")]) > 5
    bad = violations("promptopt.llm", lambda name: within(name, "promptopt.llm") or name in LLM_MAY_IMPORT)
    assert not bad, "llm/ imports nothing of the rest:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["promptopt.optimizers.bpo"])
def test_no_import_cycle_inside_a_package(package: str) -> None:
    graph = {
        mod: {name for name, _ in imported(mod, path) if within(name, package) and name != mod}
        for mod, path in MODULES.items()
        if within(mod, package)
    }
    assert {f"{package}.train", f"{package}.train_pref"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
