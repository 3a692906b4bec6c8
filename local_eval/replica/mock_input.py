"""A local stand-in for the competition's input folder, built from any dataset.

The competition notebook reads ``retain.csv``, ``forget.csv`` and
``validation.csv`` (``image_id,age_group,age,person_id``), the images under
``images/<person>/<n>.png`` and ``original_model.pth``; its public mock is a
folder holding only ``empty.txt``. This module writes both, so a notebook can be
dry-run end to end without Kaggle. A build trains a ResNet-18, so it is cached
under a key of its options and rebuilt only when they change.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from local_eval.data.datasets import DATASETS, load_dataset
from local_eval.data.splits import assign_persons, make_split
from local_eval.errors import EvalError
from local_eval.replica.input_validation import (
    CSV_COLUMNS,
    EMPTY_MARKER,
    MOCK_MARKER,
    ORIGINAL_MODEL,
)
from local_eval.scoring.models import ARCHITECTURES, build_model
from local_eval.scoring.training import Recipe, evaluate_accuracy, train_model
from local_eval.store.files import atomic_directory, atomic_write_text, cache_dir, options_key

LAYOUT_VERSION = 1


def mock_recipe(epochs: int) -> Recipe:
    """Short training that still fits the data.

    With 2 epochs on 2000 Fashion-MNIST images a ResNet-18 reached 74 % validation
    accuracy this way, against 69 % with augmentation and 51 % at lr 0.1.

    No augmentation also lets the model memorise its training images a little, which
    gives unlearning something to undo.
    """
    return Recipe(epochs=epochs, lr=0.05, batch_size=64, augment=False)


def mock_options(
    *,
    dataset: str = "fashion_mnist",
    n_train: int = 2000,
    n_val: int = 500,
    seed: int = 0,
    forget_fraction: float = 0.02,
    epochs: int = 2,
    arch: str = "resnet18",
    data_root: str | None = None,
) -> dict:
    """Everything that determines a mock's content: its cache key is the hash of this dict."""
    recipe = mock_recipe(epochs)
    return {
        "layout_version": LAYOUT_VERSION,
        "dataset": dataset,
        "n_train": n_train,
        "n_val": n_val,
        "seed": seed,
        "forget_fraction": forget_fraction,
        "arch": arch,
        "data_root": None if data_root is None else str(data_root),
        "recipe": vars(recipe),
    }


def build_mock_input(
    out_dir: Path | None = None,
    *,
    dataset: str = "fashion_mnist",
    n_train: int = 2000,
    n_val: int = 500,
    seed: int = 0,
    forget_fraction: float = 0.02,
    epochs: int = 2,
    arch: str = "resnet18",
    data_root: str | None = None,
    progress: bool = True,
) -> Path:
    """The mock folder for these options, built only if ``out_dir`` does not already hold it.

    ``arch`` other than ``"resnet18"`` gives an ``original_model.pth`` that the
    competition notebook cannot load; it exists for quick experiments only.
    """
    options = mock_options(
        dataset=dataset,
        n_train=n_train,
        n_val=n_val,
        seed=seed,
        forget_fraction=forget_fraction,
        epochs=epochs,
        arch=arch,
        data_root=data_root,
    )
    _check_options(options)
    out = Path(out_dir) if out_dir is not None else cache_dir() / "mock" / options_key(options)
    if read_mock_options(out) == options:
        return out
    _refuse_foreign_folder(out)
    with atomic_directory(out) as tmp:
        _write_mock(tmp, options, progress)
    return out


def read_mock_options(folder: Path) -> dict | None:
    """The options a finished mock was built with, or None when ``folder`` is not one."""
    try:
        return json.loads((Path(folder) / MOCK_MARKER).read_text())["options"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_empty_mock(out_dir: Path | None = None) -> Path:
    """The competition's public mock: a folder with only ``empty.txt``.

    Notebooks detect it and write an empty ``submission.zip``, which is how
    Kaggle validates a submission before scoring it on the hidden data.
    """
    out = Path(out_dir) if out_dir is not None else cache_dir() / "mock" / "empty"
    if out.is_dir() and sorted(p.name for p in out.iterdir()) == [EMPTY_MARKER]:
        return out
    _refuse_foreign_folder(out)
    with atomic_directory(out) as tmp:
        (tmp / EMPTY_MARKER).write_text("")
    return out


def _check_options(options: dict) -> None:
    if options["dataset"] not in DATASETS:
        raise EvalError(
            f"Unknown mock dataset {options['dataset']!r}: choose one of {', '.join(DATASETS)}."
        )
    if options["arch"] not in ARCHITECTURES:
        raise EvalError(
            f"Unknown mock architecture {options['arch']!r}: choose one of {', '.join(ARCHITECTURES)}."
        )
    if options["n_train"] < 20 or options["n_val"] < 1:
        raise EvalError(
            f"A mock needs at least 20 training and 1 validation image, got n_train="
            f"{options['n_train']} and n_val={options['n_val']}."
        )


def _refuse_foreign_folder(out: Path) -> None:
    """Never replace a folder that is not ours: ``--out ~/data`` must not wipe user files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise EvalError(f"Mock output {out} exists and is not a folder: choose another --out path.")
    is_ours = (out / MOCK_MARKER).is_file() or (out / EMPTY_MARKER).is_file()
    if not is_ours and any(out.iterdir()):
        raise EvalError(
            f"Mock output folder {out} already holds files that are not a mock input "
            f"(no {MOCK_MARKER} or {EMPTY_MARKER}); it would be replaced, so choose an empty "
            "or new --out folder."
        )


def _write_mock(folder: Path, options: dict, progress: bool) -> None:
    seed, data_root = options["seed"], options["data_root"]
    started = time.time()
    train = load_dataset(options["dataset"], "train", data_root, seed, options["n_train"])
    val = load_dataset(options["dataset"], "test", data_root, seed, options["n_val"])
    split = make_split(train.labels, seed, options["forget_fraction"], mode="persons")
    first_val_person = int(split.person_ids.max()) + 1
    val_persons = assign_persons(val.labels, seed + 1, first_id=first_val_person)

    train_ids = _write_images(folder / "images", train.images, split.person_ids)
    val_ids = _write_images(folder / "images", val.images, val_persons)
    labels, persons = train.labels.numpy(), split.person_ids
    _write_csv(folder / "retain.csv", train_ids, labels, persons, split.retain)
    _write_csv(folder / "forget.csv", train_ids, labels, persons, split.forget)
    _write_csv(folder / "validation.csv", val_ids, val.labels.numpy(), val_persons, None)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(options["arch"], num_classes=len(train.classes))
    trained_on = np.concatenate([split.retain, split.forget])
    recipe = Recipe(**options["recipe"])
    train_model(model, train.images, train.labels, trained_on, recipe, seed, device, progress)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, folder / ORIGINAL_MODEL)  # the folder itself is renamed into place atomically

    stats = {
        "n_retain": len(split.retain),
        "n_forget": len(split.forget),
        "n_validation": len(val),
        "n_forget_persons": len(split.forget_persons),
        "classes": list(train.classes),
        "device": str(device),
        "retain_accuracy": evaluate_accuracy(
            model, train.images, train.labels, split.retain, device
        ),
        "forget_accuracy": evaluate_accuracy(
            model, train.images, train.labels, split.forget, device
        ),
        "validation_accuracy": evaluate_accuracy(
            model, val.images, val.labels, np.arange(len(val)), device
        ),
        "build_seconds": round(time.time() - started, 1),
    }
    atomic_write_text(
        folder / MOCK_MARKER, json.dumps({"options": options, "stats": stats}, indent=2) + "\n"
    )


def _write_images(images_dir: Path, images: torch.Tensor, person_ids: np.ndarray) -> list[str]:
    """PNG per image at ``images/<person>/<n>.png``; returns each image's ``<person>-<n>`` id."""
    counters: dict[int, int] = {}
    ids = []
    pixels = images.permute(0, 2, 3, 1).contiguous().numpy()
    for person, array in zip(person_ids.tolist(), pixels):
        n = counters.get(person, 0)
        counters[person] = n + 1
        person_dir = images_dir / str(person)
        person_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(person_dir / f"{n}.png")
        ids.append(f"{person}-{n}")
    return ids


def _write_csv(
    path: Path,
    image_ids: list[str],
    labels: np.ndarray,
    person_ids: np.ndarray,
    rows: np.ndarray | None,
) -> None:
    """Rows ordered by person, then image number, like a listing of the images folder."""
    selected = np.arange(len(image_ids)) if rows is None else rows
    ordered = sorted(selected.tolist(), key=lambda i: (int(person_ids[i]), i))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i in ordered:
        group, person = int(labels[i]), int(person_ids[i])
        writer.writerow([image_ids[i], group, _age(group, person), person])
    atomic_write_text(path, buffer.getvalue())


def _age(age_group: int, person: int) -> int:
    """A person's age, constant across their images and inside an 8-year band of their group."""
    return 8 * age_group + 1 + person % 8
