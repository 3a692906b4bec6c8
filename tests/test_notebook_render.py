"""The rendered competition notebook: valid nbformat, fixed ids, papermill parameters."""

import ast

import nbformat
import pytest

from builder.check_notebook import notebook_problems
from builder.discover import resolve_target
from builder.extract import extract_unlearning
from builder.render import DRIVER_NAMES, NotebookParameters, render_notebook, unlearning_cell_source


@pytest.fixture(scope="module")
def notebook():
    extracted = extract_unlearning(resolve_target("finetune"), reserved=DRIVER_NAMES)
    return render_notebook(extracted)


def cell(notebook, cell_id):
    return next(c for c in notebook.cells if c.get("id") == cell_id)


def test_notebook_is_valid_nbformat_v4(notebook):
    nbformat.validate(notebook)
    assert notebook.nbformat == 4


def test_cells_have_fixed_ids_in_order(notebook):
    ids = [c.get("id") for c in notebook.cells]
    assert ids == ["header", "imports", "parameters", "device-check", "data", "unlearning", "driver"]


def test_parameters_cell_is_tagged_and_defaults_to_kaggle_paths(notebook):
    parameters = cell(notebook, "parameters")
    assert parameters.metadata["tags"] == ["parameters"]
    values = {}
    exec(parameters.source, values)
    assert values["DATA_DIR"] == "/kaggle/input/neurips-2023-machine-unlearning"
    assert values["WORK_DIR"] == "/kaggle/tmp"
    assert values["N_CHECKPOINTS"] == 512 and values["BATCH_SIZE"] == 64
    assert values["REQUIRE_GPU"] is True


def test_python_values_are_rendered_with_repr_not_json():
    extracted = extract_unlearning(resolve_target("finetune"), reserved=DRIVER_NAMES)
    notebook = render_notebook(extracted, NotebookParameters(require_gpu=False, assets_dir="/x"))
    source = cell(notebook, "parameters").source
    assert "REQUIRE_GPU = False" in source and "false" not in source
    assert "ASSETS_DIR = '/x'" in source


def test_header_names_the_method_and_its_hyperparameters(notebook):
    header = cell(notebook, "header").source
    assert "`finetune`" in header and "`LR`" in header and "`0.001`" in header


def test_every_code_cell_compiles(notebook):
    for c in notebook.cells:
        if c.cell_type == "code":
            ast.parse(c.source)


def test_unlearning_cell_holds_the_generated_function(notebook):
    tree = ast.parse(unlearning_cell_source(notebook))
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions[-1] == "unlearning"


def test_static_checks_flag_a_project_import(tmp_path, notebook):
    broken = nbformat.from_dict(notebook)
    cell(broken, "unlearning").source += "\nfrom methods.common import unpack_batch\n"
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    assert any("project module methods.common" in p for p in notebook_problems(path))


def test_static_checks_pass_a_built_notebook(tmp_path, notebook):
    path = tmp_path / "ok.ipynb"
    nbformat.write(notebook, path)
    assert notebook_problems(path) == []
