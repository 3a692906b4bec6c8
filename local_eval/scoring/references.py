"""The models a method is scored against: one original and 2N retrained from scratch.

The first N retrained models are the reference distribution the metric compares
against; the other N are scored as if they were a method (the *retrain ceiling*),
which shows the best score reachable at this N. Training them is the slow part of
local scoring, so every model is cached on disk, one file each, under a key that
hashes every option shaping it: an interrupted build resumes where it stopped and
raising N reuses what exists. Each missing model is one task of an executor
(:mod:`local_eval.scoring.executors`: here, or on Ray); tasks only compute, and
this process alone writes the cache. Entries are verified before they count as
present (:mod:`local_eval.cache_integrity`) and claimed, under their lock, before
their tasks are dispatched, so two processes on one cache never train or write
one model twice.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from local_eval.cache import atomic_torch_save, atomic_write_json, cache_dir, options_key
from local_eval.cache_integrity import (
    HASH_KEY,
    cache_folder,
    claim_missing,
    file_sha256,
    finish_entry,
    load_verified,
)
from local_eval.data.datasets import ImageDataset, load_dataset, load_pooled_dataset, subset_dataset
from local_eval.data.persons import film_persons
from local_eval.data.splits import (
    CompetitionSplit,
    make_person_count_split,
    make_split,
    pooled_partition,
)
from local_eval.devices import synchronize
from local_eval.scoring.executors import Executor, LocalExecutor, Task, TaskLabel, run_tasks
from local_eval.scoring.metric import logit_scaled_confidence
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import Preset, model_options
from local_eval.scoring.resume import DEFAULT_EVERY_SECONDS, EpochCheckpoint
from local_eval.scoring.training import Recipe, evaluate_accuracy, predict_logits, train_model

# Bump when the stored metrics change meaning, so old caches are not mixed in.
CACHE_FORMAT = 1
# A faithful model saves its training state about once a minute; a cpu-preset one
# (seconds in all) never does.
CHECKPOINT_EVERY_SECONDS = DEFAULT_EVERY_SECONDS
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
    """The train subset, its retain/forget split and the validation/test examples.

    With ``persons="frames"`` each training person becomes one subject filmed
    several times (:mod:`local_eval.data.persons`); the split is the same.
    """
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
    if preset.persons == "frames":
        train = film_persons(train, split.person_ids, preset.seed)
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


@dataclass(frozen=True)
class ModelSpec:
    """One reference model to make: which role it plays, its place and its seed."""

    role: str
    index: int
    seed: int


def model_specs(preset: Preset) -> list[ModelSpec]:
    """The original, then the 2N retrained models, each with its own seed."""
    return [ModelSpec("original", 0, preset.seed)] + [
        ModelSpec("retrained", i, retrained_seed(preset, i)) for i in range(2 * preset.n_models)
    ]


def build_references(
    preset: Preset,
    device: torch.device | None = None,
    data: EvalData | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> References:
    """Make whatever is missing of the original and 2N retrained models, then load all.

    Models already on disk are never retrained, so calling this again after an
    interruption, or with a larger N, only trains the missing ones. Each missing
    model is one task of ``executor`` (default: in this process on ``device``);
    this process alone writes the cache, as each task's result arrives, so a
    killed build keeps every model finished before it. Failed tasks are reported together at the end.
    """
    executor = executor or LocalExecutor(device)
    data = data or load_eval_data(preset)
    directory = references_dir(preset)
    cache_folder(directory)
    manifest = directory / "manifest.json"
    if not manifest.exists():
        atomic_write_json(manifest, {"cache_format": CACHE_FORMAT, **model_options(preset)})

    specs = model_specs(preset)
    started = time.perf_counter()
    make_models(
        preset,
        data,
        directory,
        specs,
        lambda role: train_indices(data, role),
        executor,
        progress,
        f"reference models ({preset.name})",
    )
    records = [load_record(directory, spec.role, spec.index) for spec in specs]
    return References(
        preset=preset,
        key=directory.name,
        directory=directory,
        data=data,
        original=records[0],
        retrained=tuple(records[1:]),
        seconds_this_build=time.perf_counter() - started,
    )


def make_models(
    preset: Preset,
    data: EvalData,
    directory: Path,
    specs: list[ModelSpec],
    indices_for: Callable[[str], torch.Tensor],
    executor: Executor,
    progress: bool,
    desc: str,
) -> None:
    """Make the models of ``specs`` not yet (verifiably) in ``directory``; the driver writes each.

    ``indices_for(role)`` gives the examples a role trains on. Every missing
    entry is claimed (locked) here before its task is dispatched and released
    once written, so a second process on this cache waits for it rather than
    training it again. Raises :class:`~local_eval.scoring.executors.TasksFailed`
    after the others finished if some failed.
    """
    with ExitStack() as stack:
        claims = claim_entries(directory, specs, stack)
        missing = [spec for spec in specs if spec in claims]
        tasks = reference_tasks(
            preset, data, directory, missing, indices_for,
            progress and executor.name == "local",
        )  # fmt: skip

        def write(task: Task, outputs: list[dict[str, Any]]) -> None:
            label = task.label
            for index, seed, output in zip(label.indices, label.seeds, outputs):
                spec = ModelSpec(label.role, index, seed)
                write_reference_model(directory, spec, output)
                epoch_checkpoint(directory, spec).discard()
                finish_claim(directory, spec, claims)

        run_tasks(
            executor, tasks, write, desc, progress=progress, initial=len(specs) - len(missing)
        )


def claim_entries(
    directory: Path,
    specs: list[ModelSpec],
    stack: ExitStack,
    also: Callable[[ModelSpec], bool] | None = None,
) -> dict[ModelSpec, ExitStack]:
    """The specs whose entry is missing or was broken (and set aside), each with its held lock."""
    entries = [
        (spec, metrics_path(directory, spec.role, spec.index), weights_path(directory, spec.role, spec.index))
        for spec in specs
    ]  # fmt: skip
    return claim_missing(entries, RECORD_KEYS, stack, also)


def finish_claim(directory: Path, spec: ModelSpec, claims: dict[ModelSpec, ExitStack]) -> None:
    """Check the entry just written, then release its lock for whoever waits on it."""
    finish_entry(
        metrics_path(directory, spec.role, spec.index),
        weights_path(directory, spec.role, spec.index),
        RECORD_KEYS,
    )
    claims.pop(spec).close()


def reference_tasks(
    preset: Preset,
    data: EvalData,
    directory: Path,
    missing: list[ModelSpec],
    indices_for: Callable[[str], torch.Tensor],
    progress: bool,
) -> list[Task]:
    """One task per missing model.

    A model whose weights are cached without its measurements travels with its
    weights and is only measured, never retrained.
    """
    indices = {role: indices_for(role) for role in {spec.role for spec in missing}}
    tasks = []
    for spec in missing:
        weights = weights_path(directory, spec.role, spec.index)
        state = None
        if weights.exists():
            state = torch.load(weights, map_location="cpu", weights_only=True)
        tasks.append(_task(preset, data, spec, indices[spec.role], state, progress, directory))
    return tasks


def _task(preset, data, spec, indices, state, progress, directory) -> Task:
    """One model's :func:`train_reference_task` as a Task."""
    label = TaskLabel(spec.role, (spec.index,), (spec.seed,))
    args = (preset, data, (spec,), indices, (state,), progress, str(directory))
    return Task(label, train_reference_task, args)


def train_reference_task(
    preset: Preset,
    data: EvalData,
    specs: tuple[ModelSpec, ...],
    indices: torch.Tensor,
    states: tuple[dict[str, torch.Tensor] | None, ...],
    progress: bool,
    directory: str | None = None,
    *,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Train (or, given its weights, only measure) each model; what the driver stores.

    Runs wherever the executor puts it. The weights come back as a CPU state_dict
    (None when they were given), with the seconds training took and the
    measurements; the cache itself is written by the driver. The one file a task
    writes is its model's epoch checkpoint under ``directory`` (a long training
    resumes from it after a kill; on a node that does not share the cache folder
    it is only lost work, never a wrong model, since the driver checks nothing in it).
    """
    return [
        _make_reference_model(preset, data, spec, indices, state, progress, device, directory)
        for spec, state in zip(specs, states)
    ]


def _make_reference_model(
    preset: Preset,
    data: EvalData,
    spec: ModelSpec,
    indices: torch.Tensor,
    state: dict[str, torch.Tensor] | None,
    progress: bool,
    device: torch.device,
    directory: str | None = None,
) -> dict[str, Any]:
    if state is not None:
        model = build_model(preset.arch)
        model.load_state_dict(state)
        model.to(device)
        return model_output(model, data, device, None, None)
    torch.manual_seed(spec.seed)
    model = build_model(preset.arch).to(device)
    checkpoint = epoch_checkpoint(Path(directory), spec) if directory is not None else None
    started = time.perf_counter()
    train_model(
        model,
        data.train.images,
        data.train.labels,
        indices,
        recipe_for(preset, spec.role),
        seed=spec.seed,
        device=device,
        progress=progress,
        validation=(data.heldout.images, data.heldout.labels, data.val),
        # The organisers weight classes by their counts in the whole training set
        # (retain + forget) for the original and the retrained models alike.
        weight_indices=torch.arange(len(data.train)),
        checkpoint=checkpoint,
    )
    synchronize(device)
    seconds = time.perf_counter() - started + (checkpoint.resumed_seconds if checkpoint else 0.0)
    return model_output(model, data, device, cpu_state(model), seconds)


def model_output(
    model: nn.Module,
    data: EvalData,
    device: torch.device,
    state: dict[str, torch.Tensor] | None,
    train_seconds: float | None,
    trainer: str = "single",
) -> dict[str, Any]:
    """What a reference task returns for one model (see :func:`write_reference_model`)."""
    return {
        "state": state,
        "train_seconds": train_seconds,
        "measured": measure_model(model, data, device),
        "device": str(device),
        "trainer": trainer,
    }


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def write_reference_model(directory: Path, spec: ModelSpec, output: dict[str, Any]) -> None:
    """Store one task output: timing, then weights, then measurements (the finished mark).

    Each file is written atomically and the measurements last, with the sha256 of
    the weights, so a model counts as built only once everything it needs is on
    disk and matches. The caller holds the entry's claim.
    """
    role, index = spec.role, spec.index
    weights = weights_path(directory, role, index)
    train_seconds = output["train_seconds"]
    if output["state"] is not None:
        atomic_write_json(
            _partial_path(directory, role, index),
            {"train_seconds": train_seconds, "trainer": output["trainer"]},
        )
        atomic_torch_save(output["state"], weights)
    else:
        previous = _read_json(_partial_path(directory, role, index))
        train_seconds = previous.get("train_seconds") if previous else None
    measured = output["measured"]
    atomic_write_json(
        metrics_path(directory, role, index),
        {
            "role": role,
            "index": index,
            "seed": spec.seed,
            "weights": weights.name,
            "forget_confidences": measured["forget_confidences"].tolist(),
            "retain_accuracy": measured["retain_accuracy"],
            "test_accuracy": measured["test_accuracy"],
            "forget_accuracy": measured["forget_accuracy"],
            "train_seconds": train_seconds if train_seconds is not None else float("nan"),
            "device": output["device"],
            "trainer": output["trainer"],
            HASH_KEY: file_sha256(weights),
        },
    )


def recipe_for(preset: Preset, role: str) -> Recipe:
    return preset.original_recipe if role == "original" else preset.retrain_recipe


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


def train_indices(data: EvalData, role: str) -> torch.Tensor:
    """The original sees retain + forget; a retrained model sees retain only."""
    if role == "original":
        return torch.cat([data.retain, data.forget]).sort().values
    return data.retain


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


def epoch_checkpoint(directory: Path, spec: ModelSpec) -> EpochCheckpoint:
    """Where the training of ``spec`` keeps its between-epoch state until the model is stored."""
    path = directory / "training" / f"{_stem(spec.role, spec.index)}.pt"
    return EpochCheckpoint(path, every_seconds=CHECKPOINT_EVERY_SECONDS)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing or cut short: only a timing, measured again
        return None


