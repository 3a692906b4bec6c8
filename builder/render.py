"""Render the competition notebook from the jinja2 template and the extracted code.

The template is split into cells *before* rendering, so generated code can never
be mistaken for a cell marker; every value from Python goes through ``repr``
(the ``py`` filter), because JSON spells ``True``/``None`` differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat

from builder.atomic_files import write_text_atomic
from builder.errors import BuildError
from builder.extract import Extracted

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "competition.ipynb.j2"
KAGGLE_DATA_DIR = "/kaggle/input/neurips-2023-machine-unlearning"
ASSETS_ENV = "UNLEARNKIT_ASSETS_DIR"
_MARKER = re.compile(r"^# %% \[(markdown|code)\] id=([A-Za-z0-9_-]+)(?: tags=([\w,-]+))?$", re.M)

# Names the driver cells bind, and the import each stands for (None: not an import).
# The extraction keeps generated names clear of them.
DRIVER_NAMES: dict[str, tuple | None] = {
    "os": ("imp", "os", None),
    "time": ("imp", "time", None),
    "zipfile": ("imp", "zipfile", None),
    "torch": ("imp", "torch", None),
    "DataLoader": ("imp", "torch.utils.data", "DataLoader"),
    "Dataset": ("imp", "torch.utils.data", "Dataset"),
    "np": ("imp", "numpy", None),
    "Image": ("imp", "PIL", "Image"),
    "resnet18": ("imp", "torchvision.models", "resnet18"),
    **{
        name: None
        for name in (
            "DATA_DIR WORK_DIR N_CHECKPOINTS BATCH_SIZE REQUIRE_GPU ASSETS_DIR DEVICE load_split "
            "CompetitionDataset make_loaders retain_loader forget_loader validation_loader "
            "original_path call_seconds checkpoint_index net started state checkpoints archive "
            "name mean_seconds handle png pixels parse_field image_path decode_png save_atomically "
            "write_zip checkpoint_path checkpoint_paths temporary"
        ).split()
    },
}


@dataclass(frozen=True)
class NotebookParameters:
    """Defaults of the papermill ``parameters`` cell: Kaggle's paths unless overridden."""

    data_dir: str = KAGGLE_DATA_DIR
    work_dir: str = "/kaggle/tmp"
    n_checkpoints: int = 512
    batch_size: int = 64
    require_gpu: bool = True
    assets_dir: str = ""


def render_notebook(extracted: Extracted, parameters: NotebookParameters | None = None):
    """An ``nbformat`` v4 notebook, validated, with fixed cell ids."""
    parameters = parameters or NotebookParameters()
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters["py"] = repr
    context = {
        "method_name": extracted.method_name,
        "class_name": extracted.class_name,
        "source_file": _display_path(extracted.source_path),
        "hyperparameters": [
            (attr, extracted.constant_names[attr], repr(value))
            for attr, value in extracted.hyperparameters.items()
        ],
        "assets": [Path(a).name for a in extracted.assets],
        "unlearning_source": extracted.source.rstrip("\n"),
        "assets_env": ASSETS_ENV,
        **vars(parameters),
    }
    cells = []
    for kind, cell_id, tags, body in _split_cells(TEMPLATE.read_text(encoding="utf-8")):
        text = env.from_string(body).render(context).strip("\n")
        cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell)(
            text
        )
        cell["id"] = cell_id
        if tags:
            cell["metadata"]["tags"] = tags
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook["metadata"] = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "unlearnkit": {
            "method": extracted.method_name,
            "class": extracted.class_name,
            "source": context["source_file"],
        },
    }
    nbformat.validate(notebook)
    return notebook


def _split_cells(template: str) -> list[tuple[str, str, list[str], str]]:
    matches = list(_MARKER.finditer(template))
    if not matches:
        raise BuildError(f"{TEMPLATE}: no cell markers found")
    cells = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(template)
        tags = match.group(3).split(",") if match.group(3) else []
        cells.append((match.group(1), match.group(2), tags, template[match.end() + 1 : end]))
    return cells


def _display_path(path: Path) -> str:
    root = TEMPLATE.parent.parent
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return path.name


def write_notebook(notebook, path: Path) -> Path:
    """Write atomically: a notebook is either complete on disk or not there."""
    write_text_atomic(path, nbformat.writes(notebook))
    return path


def unlearning_cell_source(notebook) -> str:
    """The generated code as it stands in the notebook (for checks and stale detection)."""
    for cell in notebook.cells:
        if cell.get("id") == "unlearning":
            return cell.source
    raise BuildError("the notebook has no cell with id 'unlearning'")
