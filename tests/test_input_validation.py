"""A broken competition input is refused before any notebook runs: one line per problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from local_eval.errors import EvalError
from local_eval.replica.dryrun import dry_run
from local_eval.replica.input_validation import (
    MOCK_MARKER,
    check_competition_input,
    input_problems,
)
from tests.competition_input import write_competition_input


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_competition_input(tmp_path / "my-data")


def only_problem(folder: Path) -> str:
    problems = input_problems(folder)
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    return problems[0]


def test_a_complete_input_has_no_problems(folder):
    assert input_problems(folder) == []


def test_the_mock_passes_its_own_checks(tiny_mock):
    assert input_problems(tiny_mock) == []


def test_the_public_empty_mock_is_valid(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert input_problems(tmp_path) == []


def test_csv_without_rows_names_the_file(folder):
    (folder / "forget.csv").write_text("image_id,age_group,age,person_id\n")
    problem = only_problem(folder)
    assert str(folder / "forget.csv") in problem and "no rows" in problem


def test_missing_column_names_the_file_line_and_column(folder):
    (folder / "retain.csv").write_text("image_id,age_group,person_id\n1-0,3,1\n")
    problem = only_problem(folder)
    assert f"{folder / 'retain.csv'}:1" in problem and "lacks age" in problem


def test_missing_image_names_the_row_and_the_path(folder):
    (folder / "images" / "2" / "0.png").unlink()
    problem = only_problem(folder)
    assert "retain.csv:4" in problem and "images/2/0.png is missing" in problem


@pytest.mark.parametrize(
    "image, expected",
    [
        (Image.new("RGB", (28, 28)), "28x28 RGB, not 32x32 RGB"),
        (Image.new("L", (32, 32)), "32x32 L, not 32x32 RGB"),
    ],
)
def test_image_of_the_wrong_size_or_mode_is_reported(folder, image, expected):
    image.save(folder / "images" / "4" / "1.png")
    problem = only_problem(folder)
    assert "validation.csv:3" in problem and expected in problem


def test_unreadable_image_is_reported(folder):
    (folder / "images" / "1" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    assert "images/1/1.png cannot be read" in only_problem(folder)


def test_duplicate_image_id_names_both_rows(folder):
    with (folder / "validation.csv").open("a") as handle:
        handle.write("1-0,3,25,1\n")
    problems = input_problems(folder)
    assert any("validation.csv:4: image_id 1-0 is also at retain.csv:2" in p for p in problems)


def test_forget_person_also_retained_is_reported(folder):
    with (folder / "retain.csv").open("a") as handle:
        handle.write("3-1,7,57,3\n")
    Image.new("RGB", (32, 32)).save(folder / "images" / "3" / "1.png")
    problem = only_problem(folder)
    assert "forget.csv:2: person_id 3 is also in retain.csv:5" in problem


def test_original_model_for_another_architecture_names_the_keys(folder):
    torch.save(resnet18(weights=None, num_classes=100).state_dict(), folder / "original_model.pth")
    problem = only_problem(folder)
    assert "wrong shape for keys fc.weight, fc.bias" in problem and "strict=True" in problem


def test_original_model_that_is_not_a_state_dict_is_reported(folder):
    torch.save(resnet18(weights=None, num_classes=10), folder / "original_model.pth")
    assert "does not load with torch.load(weights_only=True)" in only_problem(folder)


def test_missing_original_model_in_a_users_folder_says_to_copy_it_not_to_rebuild_a_mock(folder):
    (folder / "original_model.pth").unlink()
    problem = only_problem(folder)
    assert "copy the competition's original_model.pth" in problem
    assert "mock" not in problem


def test_problem_in_a_mock_says_to_rebuild_the_mock(folder):
    (folder / MOCK_MARKER).write_text(json.dumps({"options": {}}))
    (folder / "original_model.pth").unlink()
    problem = only_problem(folder)
    assert "the mock is damaged" in problem and str(folder) in problem


def test_every_problem_is_listed_one_per_line(folder):
    (folder / "forget.csv").write_text("image_id,age_group,age,person_id\n")
    (folder / "original_model.pth").unlink()
    with pytest.raises(EvalError) as caught:
        check_competition_input(folder)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3  # a heading and the two problems
    assert "2 problems" in lines[0]


def test_dry_run_refuses_a_broken_data_dir_before_running_anything(folder, tmp_path):
    shutil.rmtree(folder / "images" / "4")
    notebook = tmp_path / "subs" / "toy" / "toy.ipynb"
    notebook.parent.mkdir(parents=True)
    cell = nbformat.v4.new_code_cell("DATA_DIR = '/kaggle/input'")
    cell.metadata["tags"] = ["parameters"]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), notebook)
    with pytest.raises(EvalError, match=r"validation\.csv:2: image images/4/0\.png is missing"):
        dry_run(notebook, data_dir=folder)
    assert sorted(p.name for p in notebook.parent.iterdir()) == ["toy.ipynb"]
