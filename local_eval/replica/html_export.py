"""Render an executed notebook as a single HTML page.

The HTML is what reviewers open without Jupyter: it shows every cell's output,
the timing line and, after a failure, the traceback, exactly as executed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode

from local_eval.errors import EvalError
from local_eval.store.files import atomic_write_text


class HtmlExportFailed(EvalError):
    """nbconvert could not render the notebook."""


def export_html(notebook: NotebookNode | Path, html_path: Path) -> Path:
    """Write ``notebook`` (a node or an .ipynb path) as HTML to ``html_path``, atomically."""
    from nbconvert import HTMLExporter

    html_path = Path(html_path)
    try:
        node = (
            notebook
            if isinstance(notebook, NotebookNode)
            else nbformat.read(notebook, as_version=4)
        )
        body, _ = HTMLExporter().from_notebook_node(node)
    except Exception as error:  # nbconvert raises template, jinja and parsing errors alike
        raise HtmlExportFailed(
            f"Could not render {notebook if isinstance(notebook, Path) else 'the executed notebook'} "
            f"as HTML for {html_path}: {type(error).__name__}: {error}. The executed .ipynb is unaffected; "
            "check that nbconvert's templates are installed in the environment (`pip install nbconvert`)."
        ) from error
    atomic_write_text(html_path, body)
    return html_path
