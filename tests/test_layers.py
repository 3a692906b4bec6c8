"""Specification of local_eval's layers: imports point from a higher stage to a lower one only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LOCAL_EVAL = Path(__file__).resolve().parent.parent / "local_eval"
# core 0 < data 1 < scoring 2 < replica, boards 3 < tuning 4; replica and boards never import each other.
RANKS = {"core": 0, "store": 0, "data": 1, "scoring": 2, "replica": 3, "boards": 3, "tuning": 4}
ALLOWED_METHOD_MODULES = {"methods", "methods.base", "methods.common", "methods.search_space"}
METHODS = LOCAL_EVAL.parent / "methods"
MODULES = sorted(LOCAL_EVAL.rglob("*.py"))
ARCHITECTURE = LOCAL_EVAL.parent / "docs" / "architecture.md"


def layer_of_module(dotted: str) -> str:
    """The layer of ``local_eval.<part>...``: a sub-package's name, else core."""
    parts = dotted.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in RANKS else "core"


def layer_of_file(path: Path) -> str:
    relative = path.relative_to(LOCAL_EVAL.parent).with_suffix("")
    return layer_of_module(".".join(relative.parts))


def imported(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an import statement in ``path`` names, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_every_module_is_in_a_known_layer():
    assert MODULES and all(layer_of_file(path) in RANKS for path in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LOCAL_EVAL)))
def test_a_module_imports_no_higher_layer_and_no_sibling_top_layer(path):
    own = layer_of_file(path)
    wrong = []
    for line, module in imported(path):
        if not module.startswith("local_eval."):
            continue
        other = layer_of_module(module)
        if RANKS[other] > RANKS[own] or (RANKS[other] == RANKS[own] == 3 and other != own):
            wrong.append(f"line {line}: {own} imports {module} ({other})")
    assert not wrong, wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LOCAL_EVAL)))
def test_a_module_reaches_methods_only_through_the_registry(path):
    wrong = [
        f"line {line}: imports {module}"
        for line, module in imported(path)
        if is_method_module(module)
    ]
    assert not wrong, wrong


def is_method_module(module: str) -> bool:
    """``methods.<name>`` (or a name in it) where ``methods/<name>.py`` is one method's file."""
    parts = module.split(".")
    if parts[0] != "methods" or len(parts) < 2:
        return False
    return f"methods.{parts[1]}" not in ALLOWED_METHOD_MODULES and (METHODS / f"{parts[1]}.py").exists()


# A board is a view: it asks ``scoring.board_scores`` for its figures and renders them.
BOARD_MODULES = [LOCAL_EVAL / "boards" / "leaderboard.py", LOCAL_EVAL / "boards" / "split_board.py"]
SCORING_WORK = ("local_eval.scoring.runner", "local_eval.scoring.references", "local_eval.scoring.intervals.with_intervals")


@pytest.mark.parametrize("path", BOARD_MODULES, ids=lambda p: p.name)
def test_a_board_scores_nothing_itself_and_asks_board_scores(path):
    modules = [module for _, module in imported(path)]
    assert "local_eval.scoring.board_scores" in modules
    assert not [m for m in modules if m.startswith(SCORING_WORK)], modules


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.stem != "__init__"], ids=lambda p: str(p.relative_to(LOCAL_EVAL))
)
def test_every_module_is_named_in_the_architecture_table(path):
    """A newcomer finds every room on the map: a module the table does not name fails here."""
    table = [line for line in ARCHITECTURE.read_text().splitlines() if line.startswith("  | ")]
    assert any(f"`{path.stem}`" in line for line in table), f"docs/architecture.md's layer table lacks `{path.stem}`"
