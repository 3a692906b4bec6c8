"""Static checks on a built notebook: what Kaggle would choke on before any cell runs."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

PROJECT_PACKAGES = ("methods", "builder", "local_eval", "cli")


def notebook_problems(path: Path) -> list[str]:
    """One line per problem: schema, code that does not compile, project imports."""
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several unrelated types
        return [f"{path}: not a valid notebook ({type(exc).__name__}: {exc})"]
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
            compile(cell.source, f"{path.name}[cell {index}]", "exec")
        except SyntaxError as exc:
            problems.append(f"{path}: cell {index} ({cell.get('id')}) does not compile: {exc.msg} at line {exc.lineno}")
            continue
        if cell.get("id") == "unlearning":
            for module in _imported_modules(tree):
                if module.split(".")[0] in PROJECT_PACKAGES:
                    problems.append(
                        f"{path}: the unlearning cell imports project module {module}, "
                        "which does not exist on Kaggle"
                    )
    if not any(c.get("id") == "unlearning" for c in notebook.cells):
        problems.append(f"{path}: no cell with id 'unlearning'")
    return problems


def _imported_modules(tree: ast.AST) -> list[str]:
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            modules.append("." * node.level + (node.module or ""))
    return modules


def check_registered_notebooks(echo=print) -> int:
    """Build and check every registered method's notebook; the number that failed.

    One broken method must not hide the others, so each is built and reported on its own.
    """
    from builder.errors import BuildError
    from builder.notebook import build_notebook
    from methods import all_method_handlers

    failures = 0
    for name in all_method_handlers():
        try:
            built = build_notebook(name)
            problems = notebook_problems(built.path)
        except BuildError as exc:
            problems = [exc]
        echo("\n".join(f"FAIL {name}: {p}" for p in problems) or f"ok   {name}: {built.path}")
        failures += bool(problems)
    return failures
