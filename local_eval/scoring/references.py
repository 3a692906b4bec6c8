"""The models a method is scored against: one original and 2N retrained from scratch.

The first N retrained models are the reference distribution the metric compares
against; the other N are scored as if they were a method (the *retrain ceiling*),
which shows the best score reachable at this N. Training them is the slow part of
local scoring, so every model is cached on disk, one file each, under a key that
hashes every option shaping it: an interrupted build resumes where it stopped and
raising N reuses what exists.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from local_eval.cache import atomic_torch_save, atomic_write_json, cache_dir, options_key
from local_eval.cache_integrity import (
    cache_folder,
    ensure_entry,
    load_verified,
    verified_record,
)
from local_eval.data.datasets import ImageDataset, load_dataset, load_pooled_dataset, subset_dataset
from local_eval.data.splits import (
    CompetitionSplit,
    make_person_count_split,
    make_split,
    pooled_partition,
)
from local_eval.devices import default_device, synchronize
from local_eval.scoring.metric import logit_scaled_confidence
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import Preset, model_options
from local_eval.scoring.training import evaluate_accuracy, predict_logits, train_model

# Bump when the stored metrics change meaning, so old caches are not mixed in.
CACHE_FORMAT = 1
RECORD_KEYS = ("seed", "weights", "forget_confidences", "retain_accuracy", "test_accuracy",
               "forget_accuracy", "train_seconds", "device")  # fmt: skip


@dataclass(frozen=True)
class EvalData:
    """The examples every model of a preset sees, with the competition's roles.

    ``train`` holds retain + forget (``split`` also knows the persons); ``heldout``
    comes from the dataset's test split and is cut into ``val`` (given to methods)
    and ``test`` (test accuracy only). Index sets are int64 tensors.
    """

    train: ImageDataset
    split: CompetitionSplit
    retain: torch.Tensor
    forget: torch.Tensor
    heldout: ImageDataset
    val: torch.Tensor
    test: torch.Tensor


@dataclass(frozen=True)
class ModelRecord:
    """One cached model's measurements: what scoring needs without loading its weights."""

    role: str
    index: int
    seed: int
    path: Path
    forget_confidences: torch.Tensor
    retain_accuracy: float
    test_accuracy: float
    forget_accuracy: float
    train_seconds: float
    device: str


@dataclass(frozen=True)
class References:
    """The original model and the 2N retrained ones for a preset."""

    preset: Preset
    key: str
    directory: Path
    data: EvalData
    original: ModelRecord
    retrained: tuple[ModelRecord, ...]
    seconds_this_build: float

    @property
    def reference(self) -> tuple[ModelRecord, ...]:
        """The N models the metric's reference distribution comes from."""
        return self.retrained[: self.preset.n_models]

    @property
    def ceiling(self) -> tuple[ModelRecord, ...]:
        """The other N, scored as a method: the best score reachable at this N."""
        return self.retrained[self.preset.n_models :]

    @property
    def retrain_seconds(self) -> float:
        """Median time to train one retrained model: what a method's time is compared to."""
        return statistics.median(record.train_seconds for record in self.retrained)

    def load_original(self, device: torch.device) -> nn.Module:
        """A fresh copy of the original model on ``device``, in eval mode."""
        return load_model(self.preset.arch, self.original.path, device)


def load_eval_data(preset: Preset) -> EvalData:
    """The train subset, its retain/forget split and the validation/test examples."""
    if preset.layout == "pooled":
        train, heldout, val, test = _pooled_roles(preset)
    else:
        train, heldout, val, test = _heldout_roles(preset)
    if preset.forget_persons is not None:
        split = make_person_count_split(
            train.labels, preset.seed, preset.forget_persons, preset.forget_fraction
        )
    else:
        split = make_split(
            train.labels,
            seed=preset.seed,
            forget_fraction=preset.forget_fraction,
            mode=preset.forget_mode,
        )
    return EvalData(
        train=train,
        split=split,
        retain=torch.as_tensor(split.retain, dtype=torch.int64),
        forget=torch.as_tensor(split.forget, dtype=torch.int64),
        heldout=heldout,
        val=val,
        test=test,
    )


def _heldout_roles(preset: Preset) -> tuple[ImageDataset, ImageDataset, torch.Tensor, torch.Tensor]:
    """Train from the training file; validation and test from the test file."""
    train = load_dataset(
        preset.dataset,
        split="train",
        data_root=preset.data_root,
        seed=preset.seed,
        size=preset.train_size,
    )
    heldout = load_dataset(
        preset.dataset,
        split="test",
        data_root=preset.data_root,
        seed=preset.seed,
        size=preset.val_size + preset.test_size,
    )
    order = torch.randperm(
        len(heldout.labels), generator=torch.Generator().manual_seed(preset.seed)
    )
    val_size = min(preset.val_size, len(order) // 2)
    return train, heldout, order[:val_size].sort().values, order[val_size:].sort().values


def _pooled_roles(preset: Preset) -> tuple[ImageDataset, ImageDataset, torch.Tensor, torch.Tensor]:
    """The organisers' layout: both files pooled and cut 80/10/10 (validation and test held out)."""
    pool = load_pooled_dataset(
        preset.dataset, data_root=preset.data_root, seed=preset.seed, size=preset.train_size
    )
    part = pooled_partition(len(pool), preset.seed)
    heldout = subset_dataset(pool, np.concatenate([part.val, part.test]))
    val = torch.arange(len(part.val))
    test = torch.arange(len(part.val), len(part.val) + len(part.test))
    return subset_dataset(pool, part.train), heldout, val, test


def references_key(preset: Preset) -> str:
    """The cache key: every option that shapes a reference model, hashed."""
    return options_key({"cache_format": CACHE_FORMAT, **model_options(preset)})


def references_dir(preset: Preset) -> Path:
    return Path(cache_dir()) / "references" / references_key(preset)


def retrained_seed(preset: Preset, index: int) -> int:
    """Distinct from the original's seed and from each other's."""
    return preset.seed + 1 + index


def build_references(
    preset: Preset,
    device: torch.device | None = None,
    data: EvalData | None = None,
    progress: bool = True,
) -> References:
    """Train whatever is missing of the original and 2N retrained models, then load all.

    Models already on disk are never retrained, so calling this again after an
    interruption, or with a larger N, only trains the missing ones.
    """
    device = device or default_device()
    data = data or load_eval_data(preset)
    directory = references_dir(preset)
    cache_folder(directory)
    manifest = directory / "manifest.json"
    if not manifest.exists():
        atomic_write_json(manifest, {"cache_format": CACHE_FORMAT, **model_options(preset)})

    jobs = [("original", 0, preset.seed, preset.original_recipe, _train_indices(data, "original"))]
    jobs += [
        (
            "retrained",
            i,
            retrained_seed(preset, i),
            preset.retrain_recipe,
            _train_indices(data, "retrained"),
        )
        for i in range(2 * preset.n_models)
    ]
    missing = [job for job in jobs if not entry_ready(directory, job[0], job[1])]
    started = time.perf_counter()
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(missing),
        desc=f"reference models ({preset.name})",
        unit="model",
        disable=not progress,
    )
    with bar:
        for role, index, seed, recipe, indices in missing:
            build_once(directory, role, index, partial(
                build_reference_model,
                preset, data, directory, role, index, seed, recipe, indices, device, progress,
            ))  # fmt: skip
            bar.update(1)
    records = [load_record(directory, role, index) for role, index, *_ in jobs]
    return References(
        preset=preset,
        key=directory.name,
        directory=directory,
        data=data,
        original=records[0],
        retrained=tuple(records[1:]),
        seconds_this_build=time.perf_counter() - started,
    )


def measure_model(model: nn.Module, data: EvalData, device: torch.device) -> dict[str, Any]:
    """Forget-set confidences (in forget-index order) and the three accuracies.

    Used for reference models and unlearned ones alike, so both sides of the metric
    are measured the same way.
    """
    model.eval()
    forget = data.forget
    logits = predict_logits(model, data.train.images, forget, device).float().cpu()
    targets = data.train.labels[forget]
    return {
        "forget_confidences": logit_scaled_confidence(logits, targets).float(),
        "forget_accuracy": float((logits.argmax(dim=1) == targets).float().mean()),
        "retain_accuracy": float(
            evaluate_accuracy(model, data.train.images, data.train.labels, data.retain, device)
        ),
        "test_accuracy": float(
            evaluate_accuracy(model, data.heldout.images, data.heldout.labels, data.test, device)
        ),
    }


def load_model(arch: str, path: Path, device: torch.device) -> nn.Module:
    model = build_model(arch)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def _train_indices(data: EvalData, role: str) -> torch.Tensor:
    if role == "original":
        return torch.cat([data.retain, data.forget]).sort().values
    return data.retain


def build_reference_model(
    preset: Preset,
    data: EvalData,
    directory: Path,
    role: str,
    index: int,
    seed: int,
    recipe,
    indices: torch.Tensor,
    device: torch.device,
    progress: bool,
) -> None:
    weights = weights_path(directory, role, index)
    train_seconds = None
    if weights.exists():
        model = load_model(preset.arch, weights, device)
        previous = _read_json(_partial_path(directory, role, index))
        train_seconds = previous.get("train_seconds") if previous else None
    else:
        torch.manual_seed(seed)
        model = build_model(preset.arch).to(device)
        started = time.perf_counter()
        train_model(
            model,
            data.train.images,
            data.train.labels,
            indices,
            recipe,
            seed=seed,
            device=device,
            progress=progress,
            validation=(data.heldout.images, data.heldout.labels, data.val),
            # The organisers weight classes by their counts in the whole training set
            # (retain + forget) for the original and the retrained models alike.
            weight_indices=torch.arange(len(data.train)),
        )
        synchronize(device)
        train_seconds = time.perf_counter() - started
        atomic_write_json(_partial_path(directory, role, index), {"train_seconds": train_seconds})
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    measured = measure_model(model, data, device)
    atomic_write_json(
        metrics_path(directory, role, index),
        {
            "role": role,
            "index": index,
            "seed": seed,
            "weights": weights.name,
            "forget_confidences": measured["forget_confidences"].tolist(),
            "retain_accuracy": measured["retain_accuracy"],
            "test_accuracy": measured["test_accuracy"],
            "forget_accuracy": measured["forget_accuracy"],
            "train_seconds": train_seconds if train_seconds is not None else float("nan"),
            "device": str(device),
        },
    )


def entry_ready(directory: Path, role: str, index: int) -> bool:
    """Record and weights present, and the weights are the ones the record was measured on."""
    paths = metrics_path(directory, role, index), weights_path(directory, role, index)
    return verified_record(*paths, RECORD_KEYS) is not None


def build_once(directory: Path, role: str, index: int, build) -> None:
    """Run ``build`` unless the entry is (or, after waiting for another process, becomes) ready."""
    paths = metrics_path(directory, role, index), weights_path(directory, role, index)
    ensure_entry(*paths, RECORD_KEYS, build)


def load_record(directory: Path, role: str, index: int) -> ModelRecord:
    paths = metrics_path(directory, role, index), weights_path(directory, role, index)
    stored = load_verified(*paths, RECORD_KEYS)
    return ModelRecord(
        role=role,
        index=index,
        seed=stored["seed"],
        path=directory / stored["weights"],
        forget_confidences=torch.tensor(stored["forget_confidences"], dtype=torch.float32),
        retain_accuracy=stored["retain_accuracy"],
        test_accuracy=stored["test_accuracy"],
        forget_accuracy=stored["forget_accuracy"],
        train_seconds=stored["train_seconds"],
        device=stored["device"],
    )


def _stem(role: str, index: int) -> str:
    return "original" if role == "original" else f"retrained_{index:04d}"


def weights_path(directory: Path, role: str, index: int) -> Path:
    return directory / f"{_stem(role, index)}.pt"


def metrics_path(directory: Path, role: str, index: int) -> Path:
    return directory / f"{_stem(role, index)}.json"


def _partial_path(directory: Path, role: str, index: int) -> Path:
    return directory / f"{_stem(role, index)}.timing.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing or cut short: only a timing, measured again
        return None


