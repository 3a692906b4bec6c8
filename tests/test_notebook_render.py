"""The rendered competition notebook: valid nbformat, fixed ids, papermill parameters."""

import ast

import nbformat
import numpy as np
import pytest
import torch

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


def _calls_in(node, attr):
    return [
        n for n in ast.walk(node)
        if isinstance(n, ast.Call)
        and (getattr(n.func, "attr", None) == attr or getattr(n.func, "id", None) == attr)
    ]


def test_driver_builds_the_network_once_outside_its_loop(notebook):
    tree = ast.parse(cell(notebook, "driver").source)
    loops = [n for n in ast.walk(tree) if isinstance(n, ast.For)]
    assert len(_calls_in(tree, "resnet18")) == 1
    assert not any(_calls_in(loop, "resnet18") for loop in loops)
    assert any(_calls_in(loop, "load_state_dict") for loop in loops)


def _competition_folder(tmp_path):
    """Three images of two persons, listed out of path order, as the competition lays them out."""
    from PIL import Image

    rows = [("7-0", 3, 31, 7), ("10-1", 1, 12, 10), ("10-0", 2, 17, 10)]
    for image_id, group, _, _ in rows:
        person, number = image_id.split("-")
        (tmp_path / "images" / person).mkdir(parents=True, exist_ok=True)
        pixels = np.full((32, 32, 3), 40 * group, dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / person / f"{number}.png")
    lines = ["image_id,age_group,age,person_id"] + [",".join(map(str, r)) for r in rows]
    (tmp_path / "retain.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.fixture
def data_cell(notebook, tmp_path):
    """The notebook's imports and data cells, run against a small competition folder."""
    namespace = {"DATA_DIR": str(_competition_folder(tmp_path)), "BATCH_SIZE": 2}
    exec(cell(notebook, "imports").source, namespace)
    exec(cell(notebook, "data").source, namespace)
    return namespace


def test_dataset_decodes_every_image_once_when_built(data_cell, tmp_path):
    import shutil

    dataset = data_cell["CompetitionDataset"]("retain")
    shutil.rmtree(tmp_path / "images")  # nothing is read from disk after construction
    assert [dataset[i]["image"].dtype for i in range(len(dataset))] == [torch.float32] * 3


def test_dataset_orders_examples_by_image_path(data_cell):
    dataset = data_cell["CompetitionDataset"]("retain")
    assert [dataset[i]["image_id"] for i in range(len(dataset))] == ["10-0", "10-1", "7-0"]


def test_dataset_items_hold_integer_labels_and_0_255_images(data_cell):
    item = data_cell["CompetitionDataset"]("retain")[0]
    assert (type(item["age_group"]), type(item["age"]), item["age_group"], item["age"]) == (int, int, 2, 17)
    assert item["image"].shape == (3, 32, 32) and float(item["image"].max()) == 80.0


def test_loaders_yield_dict_batches_with_the_competitions_keys(data_cell):
    loader = data_cell["DataLoader"](data_cell["CompetitionDataset"]("retain"), batch_size=2)
    batch = next(iter(loader))
    assert sorted(batch) == ["age", "age_group", "image", "image_id", "person_id"]
    assert batch["age_group"].dtype == torch.int64
