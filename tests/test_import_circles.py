"""Specification of local_eval's imports: no module reaches itself again through them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_EVAL = ROOT / "local_eval"
MODULES = sorted(LOCAL_EVAL.rglob("*.py"))


def module_of_file(path: Path) -> str:
    """``local_eval/a/b.py`` is ``local_eval.a.b``; ``local_eval/a/__init__.py`` is ``local_eval.a``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


KNOWN = {module_of_file(path) for path in MODULES}


def imported_modules(path: Path) -> set[str]:
    """The local_eval modules ``path`` imports, at its top or inside a function."""
    own = module_of_file(path)
    return imports_in(path.read_text(), own, path.name == "__init__.py") - {own}


def imports_in(source: str, own: str, is_package: bool) -> set[str]:
    """The known modules the import statements of ``source`` (module ``own``) name, anywhere in it.

    ``from local_eval.x import y`` names ``local_eval.x.y`` where that is itself a
    module, else ``local_eval.x``; a relative import is resolved against ``own``'s package.
    """
    package = own.split(".") if is_package else own.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in KNOWN else base)
    return found & KNOWN


def import_graph() -> dict[str, set[str]]:
    return {module_of_file(path): imported_modules(path) for path in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif following in on_path:
                return path[path.index(following) :] + [following]
            elif following not in done:
                path.append(following)
                on_path.add(following)
                stack.append(iter(sorted(graph[following])))
    return None


def test_an_import_inside_a_function_counts_and_from_imports_resolve_to_modules():
    source = (
        "import torch\n"
        "from local_eval.scoring import references\n"
        "from local_eval.scoring.presets import Preset\n"
        "def build():\n"
        "    from local_eval.errors import EvalError\n"
        "    from . import executors\n"
    )
    assert imports_in(source, "local_eval.scoring.runner", False) == {
        "local_eval.scoring.references",
        "local_eval.scoring.presets",
        "local_eval.errors",
        "local_eval.scoring.executors",
    }


def test_every_local_eval_module_is_in_the_graph():
    graph = import_graph()
    assert "local_eval.scoring.scenarios" in graph and "local_eval.scoring.references" in graph
    assert all(module in graph for targets in graph.values() for module in targets)


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_local_eval_module_imports_itself_through_others():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
