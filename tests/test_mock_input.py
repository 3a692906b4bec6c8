"""The mock input has exactly the competition's layout, is cached by its options and written atomically."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from local_eval.data.datasets import load_dataset
from local_eval.data.splits import make_split
from local_eval.errors import EvalError
from local_eval.replica import mock_input
from local_eval.replica.mock_input import (
    build_mock_input,
    read_mock_options,
    write_empty_mock,
)
from local_eval.store.files import (
    atomic_write_json,
    atomic_write_text,
    cache_dir,
    options_key,
)

# The cheapest build that still exercises every step: cache tests rebuild it several times.
MINI = {
    "dataset": "synthetic",
    "n_train": 60,
    "n_val": 20,
    "epochs": 1,
    "arch": "resnet18_tiny",
    "progress": False,
}


def read_rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, newline="") as handle:
        return list(csv.DictReader(handle))


def all_rows(folder: Path) -> dict[str, list[dict[str, str]]]:
    return {
        name: read_rows(folder, name) for name in ("retain.csv", "forget.csv", "validation.csv")
    }


def test_mock_holds_the_competition_files(tiny_mock):
    names = {p.name for p in tiny_mock.iterdir()}
    assert {"retain.csv", "forget.csv", "validation.csv", "images", "original_model.pth"} <= names


@pytest.mark.parametrize("name", ["retain.csv", "forget.csv", "validation.csv"])
def test_csv_header_is_exactly_the_competitions(tiny_mock, name):
    first_line = (tiny_mock / name).read_text().splitlines()[0]
    assert first_line == "image_id,age_group,age,person_id"


def test_every_image_id_names_its_png_under_images_person(tiny_mock):
    for rows in all_rows(tiny_mock).values():
        for row in rows:
            person, n = row["image_id"].split("-")
            assert person == row["person_id"]
            assert (tiny_mock / "images" / person / f"{n}.png").is_file()


def test_every_png_is_listed_in_exactly_one_csv(tiny_mock):
    listed = [row["image_id"] for rows in all_rows(tiny_mock).values() for row in rows]
    on_disk = [f"{p.parent.name}-{p.stem}" for p in (tiny_mock / "images").glob("*/*.png")]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(on_disk)


def test_images_are_32x32_rgb_png(tiny_mock):
    path = next((tiny_mock / "images").glob("*/*.png"))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (32, 32)


def test_pngs_hold_the_training_images_losslessly_under_their_person(tiny_mock):
    options = read_mock_options(tiny_mock)
    train = load_dataset("synthetic", "train", seed=options["seed"], size=options["n_train"])
    person_ids = make_split(train.labels, options["seed"], options["forget_fraction"]).person_ids
    seen: dict[int, int] = {}
    for i in range(0, len(train), 37):
        person = int(person_ids[i])
        n = int((person_ids[:i] == person).sum())
        seen[person] = n
        with Image.open(tiny_mock / "images" / str(person) / f"{n}.png") as image:
            png = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(png, train.images[i])
    assert len(seen) > 1


def test_forget_persons_are_disjoint_from_retain_and_validation_persons(tiny_mock):
    rows = all_rows(tiny_mock)
    persons = {name: {row["person_id"] for row in r} for name, r in rows.items()}
    assert persons["forget.csv"]
    assert persons["forget.csv"].isdisjoint(persons["retain.csv"])
    assert persons["validation.csv"].isdisjoint(persons["retain.csv"] | persons["forget.csv"])


def test_forget_is_about_two_percent_of_the_training_images(tiny_mock):
    rows = all_rows(tiny_mock)
    n_forget, n_retain = len(rows["forget.csv"]), len(rows["retain.csv"])
    assert 0.01 <= n_forget / (n_forget + n_retain) <= 0.03


def test_a_person_has_one_age_group_and_one_age(tiny_mock):
    by_person: dict[str, set[tuple[str, str]]] = {}
    for rows in all_rows(tiny_mock).values():
        for row in rows:
            by_person.setdefault(row["person_id"], set()).add((row["age_group"], row["age"]))
    assert all(len(values) == 1 for values in by_person.values())
    assert {int(g) for values in by_person.values() for g, _ in values} <= set(range(10))


def test_original_model_loads_strictly_into_torchvision_resnet18(tiny_mock):
    state = torch.load(tiny_mock / "original_model.pth", weights_only=True)
    model = resnet18(weights=None, num_classes=10)
    model.load_state_dict(state, strict=True)


def test_original_model_was_trained(tiny_mock):
    state = torch.load(tiny_mock / "original_model.pth", weights_only=True)
    torch.manual_seed(0)
    untrained = resnet18(weights=None, num_classes=10).state_dict()
    assert not torch.equal(state["fc.weight"], untrained["fc.weight"])
    assert int(state["bn1.num_batches_tracked"]) > 0


def test_options_file_records_the_build(tiny_mock):
    recorded = json.loads((tiny_mock / "mock_options.json").read_text())
    assert recorded["options"]["dataset"] == "synthetic"
    assert recorded["stats"]["n_forget"] == len(read_rows(tiny_mock, "forget.csv"))


def test_unchanged_options_reuse_the_cached_mock(tmp_path):
    out = build_mock_input(tmp_path / "mock", **MINI)
    model_before = (out / "original_model.pth").stat()
    again = build_mock_input(tmp_path / "mock", **MINI)
    assert again == out
    assert (out / "original_model.pth").stat().st_ino == model_before.st_ino


def test_changed_options_rebuild_the_mock(tmp_path):
    out = build_mock_input(tmp_path / "mock", **MINI)
    forget_before = (out / "forget.csv").read_text()
    build_mock_input(tmp_path / "mock", **{**MINI, "seed": 1})
    assert read_mock_options(out)["seed"] == 1
    assert (out / "forget.csv").read_text() != forget_before


def test_default_location_is_keyed_by_the_options():
    first = build_mock_input(**MINI)
    second = build_mock_input(**{**MINI, "seed": 1})
    assert first.parent == second.parent == cache_dir() / "mock"
    assert first != second


def test_failed_build_leaves_no_folder_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("training crashed")

    monkeypatch.setattr(mock_input, "train_model", broken)
    with pytest.raises(RuntimeError):
        build_mock_input(tmp_path / "mock", **MINI)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_a_mock(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(EvalError, match="not a mock input"):
        build_mock_input(tmp_path, **MINI)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_empty_mock_holds_only_empty_txt(tmp_path):
    out = write_empty_mock(tmp_path / "empty")
    assert [p.name for p in out.iterdir()] == ["empty.txt"]


def test_command_line_writes_the_empty_mock(tmp_path, capsys):
    from cli.main import main  # the one mock-input command line: `python -m cli mock`

    assert main(["mock", "--out", str(tmp_path / "public"), "--empty"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "public")
    assert (tmp_path / "public" / "empty.txt").is_file()


def test_command_line_reports_user_errors_in_one_line(tmp_path, capsys):
    from cli.main import main

    (tmp_path / "notes.txt").write_text("precious")
    assert main(["mock", "--out", str(tmp_path), "--dataset", "synthetic"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error


def test_options_key_ignores_dict_order_and_changes_with_values():
    assert options_key({"a": 1, "b": 2}) == options_key({"b": 2, "a": 1})
    assert options_key({"a": 1, "b": 2}) != options_key({"a": 1, "b": 3})


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    reference = tmp_path / "plain.txt"
    reference.write_text("")
    written = atomic_write_text(tmp_path / "atomic.txt", "")
    assert written.stat().st_mode == reference.stat().st_mode


def test_atomic_write_replaces_the_whole_file_and_leaves_no_temp_file(tmp_path):
    target = atomic_write_text(tmp_path / "out.txt", "old")
    atomic_write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"new": True}
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
