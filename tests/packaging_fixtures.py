"""Small stand-ins for what other parts produce: a built notebook, a dry-run record, methods.

Packaging is tested on its own, so it does not wait for the notebook builder
or the dry-run: a minimal valid notebook with the agreed parameters cell and a
``dryrun.json`` with the agreed keys are enough.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from builder.assets import assets_slug, kaggle_assets_dir
from methods.base import BaseMethod


def write_notebook(path: Path, assets_dir: str = "") -> Path:
    """A notebook whose parameters cell sets ``ASSETS_DIR`` as the builder does."""
    parameters = nbformat.v4.new_code_cell(
        "DATA_DIR = '/kaggle/input/neurips-2023-machine-unlearning'\n"
        "WORK_DIR = '/kaggle/tmp'\n"
        "N_CHECKPOINTS = 512\n"
        "BATCH_SIZE = 64\n"
        "REQUIRE_GPU = True\n"
        f"ASSETS_DIR = {assets_dir!r}\n"
    )
    parameters["metadata"]["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell("print('unlearning')")
    notebook = nbformat.v4.new_notebook(cells=[parameters, body])
    notebook["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def notebook_for(method_name: str, root: Path, with_assets: bool) -> Path:
    """``<root>/<method>/<method>.ipynb`` pointing at the method's Kaggle assets mount."""
    assets_dir = kaggle_assets_dir(assets_slug(method_name)) if with_assets else ""
    return write_notebook(root / method_name / f"{method_name}.ipynb", assets_dir)


def record_dryrun(notebook: Path, ok: bool = True, sha256: str | None = None) -> Path:
    """``dryrun.json`` beside the notebook, with the keys the dry-run writes."""
    record = {
        "notebook_sha256": sha256 or hashlib.sha256(notebook.read_bytes()).hexdigest(),
        "source_sha256": "0" * 64,
        "ok": ok,
        "n_checkpoints": 2,
        "seconds_per_call": 0.5,
        "device": "cpu",
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    path = notebook.parent / "dryrun.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def dry_run_notebook(method_name: str, root: Path, with_assets: bool) -> Path:
    """A notebook that passed its dry-run, as ``make submission`` leaves it."""
    notebook = notebook_for(method_name, root, with_assets)
    record_dryrun(notebook)
    return notebook


class PlainMethod(BaseMethod):
    """No assets: packaging must produce a kernel folder only."""

    name = "plain_method"

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        net.eval()


def method_producing(name: str, files: dict[str, bytes]) -> type[BaseMethod]:
    """A method class whose ``build_assets`` writes ``files``."""

    def build_assets(dest_dir: str) -> None:
        for filename, content in files.items():
            (Path(dest_dir) / filename).write_bytes(content)

    return type(
        "Producing",
        (PlainMethod,),
        {
            "name": name,
            "assets": tuple(files),
            "build_assets": staticmethod(build_assets),
            "__module__": __name__,
        },
    )
