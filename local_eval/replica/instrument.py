"""The dry-run's own checks, run inside the notebook's kernel after its driver.

What the driver leaves in the kernel (the reused ``net``, the loaders, ``unlearning``)
is only reachable from there, so the dry-run executes a copy of the notebook with
extra cells after the driver; the submitted notebook never contains them. Each check
prints one marker line with a JSON payload, read back from the executed notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat import NotebookNode

CHECK_TAG = "unlearnkit-dryrun-check"


def instrumented_copy(notebook_path: Path, folder: Path, cells: list[str]) -> Path:
    """``notebook_path`` with ``cells`` inserted after its driver cell, written into ``folder``."""
    notebook = nbformat.read(notebook_path, as_version=4)
    position = next(
        (i + 1 for i, c in enumerate(notebook.cells) if "driver" in c.get("metadata", {}).get("tags", [])),
        len(notebook.cells),
    )
    for offset, source in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"{CHECK_TAG}-{offset}"
        cell["metadata"]["tags"] = [CHECK_TAG]
        notebook.cells.insert(position + offset, cell)
    path = Path(folder) / notebook_path.name
    nbformat.write(notebook, path)  # a scratch copy inside the run's temporary folder
    return path


def marker_payload(executed: NotebookNode | None, marker: str) -> object | None:
    """The JSON after the last ``marker`` line the notebook printed, or None."""
    found = None
    for cell in executed.cells if executed is not None else ():
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                for line in output.get("text", "").splitlines():
                    if line.startswith(marker + " "):
                        found = line[len(marker) + 1 :]
    if found is None:
        return None
    try:
        return json.loads(found)
    except ValueError:
        return None
