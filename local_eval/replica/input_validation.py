"""Is a folder a competition input the notebook can run on? Checked before any cell runs.

The competition notebook reads ``retain.csv``, ``forget.csv`` and ``validation.csv``
(``image_id,age_group,age,person_id``), one 32x32 RGB PNG per row under
``images/<person>/<n>.png`` (from ``image_id`` ``<person>-<n>``) and
``original_model.pth``, a state dict for ``resnet18(num_classes=10)``. A folder that
breaks any of that fails deep inside a cell (``num_samples=0`` from a DataLoader, a
``KeyError`` in a dataset), minutes in, so every problem is listed up front, one line
each, naming the file and row or key, with advice that fits whose folder it is: a mock
is rebuilt, a user's own folder is fixed by its owner.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from local_eval.errors import EvalError

CSV_COLUMNS = ("image_id", "age_group", "age", "person_id")
CSV_FILES = ("retain.csv", "forget.csv", "validation.csv")
ORIGINAL_MODEL = "original_model.pth"
EMPTY_MARKER = "empty.txt"
MOCK_MARKER = "mock_options.json"  # written by local_eval.replica.mock_input
IMAGE_SIZE = (32, 32)
NUM_CLASSES = 10
SHOWN = 12  # problems listed before "... and N more"


@dataclass(frozen=True)
class Row:
    file: str
    line: int
    image_id: str
    person_id: str


def is_mock(folder: Path) -> bool:
    return (Path(folder) / MOCK_MARKER).is_file()


def input_problems(folder: Path) -> list[str]:
    """Every reason ``folder`` is not a competition input; empty when it is one.

    The public mock (a folder holding ``empty.txt``) is valid as it is: the notebook
    then only writes an empty ``submission.zip``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: no such folder."]
    if (folder / EMPTY_MARKER).exists():
        return []
    fix = _MockAdvice(folder) if is_mock(folder) else _OwnAdvice(folder)
    problems: list[str] = []
    rows: list[Row] = []
    for name in CSV_FILES:
        found, read = _read_csv(folder / name, fix)
        problems += found
        rows += read
    problems += _duplicate_ids(rows, fix)
    problems += _shared_persons(rows, fix)
    problems += _image_problems(folder, rows, fix)
    problems += _model_problems(folder / ORIGINAL_MODEL, fix)
    return problems


def check_competition_input(folder: Path) -> None:
    """Raise one ``EvalError`` listing every problem, one line each."""
    problems = input_problems(folder)
    if not problems:
        return
    shown = problems[:SHOWN]
    more = len(problems) - len(shown)
    kind = "mock input" if is_mock(folder) else "input folder"
    raise EvalError(
        f"The {kind} {folder} is not a competition input the notebook can read "
        f"({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n"
        + "\n".join(f"  {line}" for line in shown)
        + (f"\n  ... and {more} more." if more else "")
    )


class _OwnAdvice:
    """What to tell the owner of a folder passed with ``--data-dir``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def missing_file(self, name: str) -> str:
        if name == ORIGINAL_MODEL:
            return (
                f"copy the competition's {ORIGINAL_MODEL} into {self.folder} (a state dict saved "
                "with torch.save(model.state_dict()))"
            )
        return f"copy the competition's {name} into {self.folder}"

    def edit(self, what: str) -> str:
        return what

    def model(self) -> str:
        return (
            "save the state dict of torchvision's resnet18(num_classes=10) with "
            "torch.save(model.state_dict(), path)"
        )


class _MockAdvice(_OwnAdvice):
    """A mock is generated: the fix is to build it again, not to edit it."""

    def _rebuild(self) -> str:
        return (
            f"the mock is damaged: delete {self.folder} and run the command again, which "
            "rebuilds it (or `python -m cli mock`)"
        )

    def missing_file(self, name: str) -> str:
        return self._rebuild()

    def edit(self, what: str) -> str:
        return self._rebuild()

    def model(self) -> str:
        return self._rebuild()


def _read_csv(path: Path, fix: _OwnAdvice) -> tuple[list[str], list[Row]]:
    name = path.name
    if not path.is_file():
        return [f"{path}: missing; {fix.missing_file(name)}."], []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return [f"{path}: cannot be read as CSV ({error}); {fix.edit('save it as UTF-8 CSV')}."], []
    if not table:
        return [
            f"{path}: empty; {fix.edit('it needs the header ' + ','.join(CSV_COLUMNS) + ' and at least one row')}."
        ], []
    header = [cell.strip() for cell in table[0]]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        return [
            f"{path}:1: header {','.join(header) or '(empty)'} lacks {', '.join(missing)}; "
            f"{fix.edit('the header must be ' + ','.join(CSV_COLUMNS))}."
        ], []
    position = {column: header.index(column) for column in CSV_COLUMNS}
    problems, rows = [], []
    for line, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) < len(header):
            problems.append(
                f"{path}:{line}: {len(cells)} fields for {len(header)} columns; "
                f"{fix.edit('give every row a value in each column')}."
            )
            continue
        value = {column: cells[i].strip() for column, i in position.items()}
        problem = _row_problem(value)
        if problem:
            problems.append(f"{path}:{line}: {problem}; {fix.edit('correct or remove that row')}.")
            continue
        rows.append(Row(name, line, value["image_id"], value["person_id"]))
    if not rows and not problems:
        problems.append(
            f"{path}: no rows after the header; {fix.edit('it needs at least one image row')}."
        )
    return problems, rows


def _row_problem(value: dict[str, str]) -> str | None:
    parts = value["image_id"].split("-")
    if len(parts) != 2 or not all(parts):
        return f"image_id {value['image_id']!r} is not <person>-<number>"
    for column in ("age_group", "age", "person_id"):
        if not value[column].lstrip("-").isdigit():
            return f"{column} {value[column]!r} is not a whole number"
    if not 0 <= int(value["age_group"]) < NUM_CLASSES:
        return f"age_group {value['age_group']} is not a class 0..{NUM_CLASSES - 1}"
    return None


def _duplicate_ids(rows: list[Row], fix: _OwnAdvice) -> list[str]:
    first: dict[str, Row] = {}
    problems = []
    for row in rows:
        if row.image_id in first:
            seen = first[row.image_id]
            problems.append(
                f"{row.file}:{row.line}: image_id {row.image_id} is also at {seen.file}:{seen.line}; "
                f"{fix.edit('each image belongs to exactly one row of one file')}."
            )
        else:
            first[row.image_id] = row
    return problems


def _shared_persons(rows: list[Row], fix: _OwnAdvice) -> list[str]:
    lines: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        lines[row.file].setdefault(row.person_id, row.line)
    shared = sorted(set(lines["forget.csv"]) & set(lines["retain.csv"]), key=int)
    return [
        f"forget.csv:{lines['forget.csv'][person]}: person_id {person} is also in "
        f"retain.csv:{lines['retain.csv'][person]}; "
        f"{fix.edit('a person is forgotten whole: move all their rows to one of the two files')}."
        for person in shared
    ]


def _image_problems(folder: Path, rows: list[Row], fix: _OwnAdvice) -> list[str]:
    problems = []
    for row in rows:
        person, number = row.image_id.split("-")
        path = folder / "images" / person / f"{number}.png"
        where = f"{row.file}:{row.line}"
        if not path.is_file():
            problems.append(
                f"{where}: image {path.relative_to(folder)} is missing; "
                f"{fix.edit('add the PNG or remove the row')}."
            )
            continue
        try:
            with Image.open(path) as image:
                image.load()
                size, mode = image.size, image.mode
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError for bad files
            problems.append(
                f"{where}: image {path.relative_to(folder)} cannot be read ({type(error).__name__}: "
                f"{str(error)[:80]}); {fix.edit('replace it with a valid PNG')}."
            )
            continue
        if size != IMAGE_SIZE or mode != "RGB":
            problems.append(
                f"{where}: image {path.relative_to(folder)} is {size[0]}x{size[1]} {mode}, not "
                f"32x32 RGB; {fix.edit('save it as a 32x32 RGB PNG')}."
            )
    return problems


def _model_problems(path: Path, fix: _OwnAdvice) -> list[str]:
    if not path.is_file():
        return [f"{path}: missing; {fix.missing_file(ORIGINAL_MODEL)}."]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "the notebook cannot load it"
        first = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        return [
            f"{path}: does not load with torch.load(weights_only=True) ({type(error).__name__}: "
            f"{first}); {fix.model()}."
        ]
    if not isinstance(state, dict):
        return [f"{path}: holds a {type(state).__name__}, not a state dict; {fix.model()}."]
    model = competition_model()
    problems = []
    labels = ("missing key", "unexpected key", "wrong shape for key")
    for label, keys in zip(labels, key_mismatches(state, model)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")
            problems.append(
                f"{path}: {label}{'s' if len(keys) > 1 else ''} {shown} for "
                f"resnet18(num_classes={NUM_CLASSES}) with strict=True; {fix.model()}."
            )
    if problems:
        return problems
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:  # a non-tensor value, a dtype torch cannot copy
        return [f"{path}: does not load into resnet18(num_classes=10): {str(error)[:120]}; {fix.model()}."]
    return []


def competition_model() -> torch.nn.Module:
    """A fresh ``resnet18(num_classes=10)``: what the competition loads every checkpoint into."""
    from torchvision.models import resnet18

    return resnet18(weights=None, num_classes=NUM_CLASSES)


def key_mismatches(state: dict, model: torch.nn.Module) -> tuple[list[str], ...]:
    """The keys that make ``load_state_dict(strict=True)`` refuse ``state``, for a message that
    names them: missing from it, unexpected in it, and of the wrong shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        k
        for k in expected
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != expected[k].shape
    ]
    return missing, unexpected, wrong_shape
