"""Method -> notebook file: extraction, rendering and writing in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.discover import REPO_ROOT, resolve_target
from builder.extract import Extracted, extract_unlearning
from builder.render import DRIVER_NAMES, NotebookParameters, render_notebook, write_notebook

SUBMISSIONS_DIR = REPO_ROOT / "submissions"


@dataclass(frozen=True)
class BuiltNotebook:
    path: Path
    extracted: Extracted


def submission_dir(method_name: str, root: Path | None = None) -> Path:
    return (root or SUBMISSIONS_DIR) / method_name


def build_notebook(
    target: str,
    *,
    overrides: dict[str, object] | None = None,
    class_name: str | None = None,
    parameters: NotebookParameters | None = None,
    out_root: Path | None = None,
) -> BuiltNotebook:
    """Write ``submissions/<method>/<method>.ipynb`` for a registered name or a method file."""
    method = resolve_target(target, class_name)
    extracted = extract_unlearning(method, overrides, reserved=DRIVER_NAMES)
    notebook = render_notebook(extracted, parameters)
    folder = submission_dir(extracted.method_name, out_root)
    path = write_notebook(notebook, folder / f"{extracted.method_name}.ipynb")
    return BuiltNotebook(path=path, extracted=extracted)
