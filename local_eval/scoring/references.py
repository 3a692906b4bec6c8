"""The models a method is scored against: one original and 2N retrained from scratch.

The first N retrained models are the reference distribution the metric compares
against; the other N are scored as if they were a method (the *retrain ceiling*),
which shows the best score reachable at this N. Training them is the slow part of
local scoring, so every model is cached on disk, one file each, under a key that
hashes every option shaping it: an interrupted build resumes where it stopped and
raising N reuses what exists. Each missing model is one task of an executor
(:mod:`local_eval.scoring.executors`: here, or on Ray); tasks only compute, and
this process alone writes the cache, claiming each entry first
(:func:`build_reference_set` says how).

A faithful build is hours of compute, run in pieces or on a cluster, so
:func:`reference_status` says how far it got and what a model cost, reading the
cache without changing it: an entry counts as finished only when its record
verifies against its weights, and a half-trained model is one whose epoch
checkpoint belongs to its recipe and seed.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from local_eval.data.roles import EvalData, load_eval_data, train_indices
from local_eval.devices import synchronize
from local_eval.scoring.executors import Executor, LocalExecutor, Task, TaskLabel, run_tasks
from local_eval.scoring.metric import logit_scaled_confidence
from local_eval.scoring.models import build_model, model_from_state
from local_eval.scoring.presets import Preset, model_options
from local_eval.scoring.training import Recipe, evaluate_accuracy, predict_logits, train_model
from local_eval.store.checkpoints import DEFAULT_EVERY_SECONDS, EpochCheckpoint
from local_eval.store.entries import (
    HASH_KEY,
    cache_folder,
    claim_missing,
    file_sha256,
    finish_entry,
    load_verified,
    verified_record,
)
from local_eval.store.files import atomic_torch_save, atomic_write_json, cache_dir, options_key

# Bump when the stored metrics change meaning, so old caches are not mixed in.
CACHE_FORMAT = 1
# The standard reference sets' folder under the cache; scenarios keep theirs beside it.
STANDARD_KIND = "references"
# A faithful model saves its training state about once a minute; a cpu-preset one
# (seconds in all) never does.
CHECKPOINT_EVERY_SECONDS = DEFAULT_EVERY_SECONDS
RECORD_KEYS = ("seed", "weights", "forget_confidences", "retain_accuracy", "test_accuracy",
               "forget_accuracy", "train_seconds", "device")  # fmt: skip


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


def reference_options(preset: Preset) -> dict[str, Any]:
    """Every option that shapes a preset's standard reference model (its manifest)."""
    return {"cache_format": CACHE_FORMAT, **model_options(preset)}


def references_key(preset: Preset) -> str:
    return options_key(reference_options(preset))


def reference_set_dir(kind: str, options: dict[str, Any]) -> Path:
    """``<cache>/<kind>/<key of options>``: one folder per reference set, its manifest inside."""
    return Path(cache_dir()) / kind / options_key(options)


def references_dir(preset: Preset) -> Path:
    return reference_set_dir(STANDARD_KIND, reference_options(preset))


def retrained_seed(preset: Preset, index: int) -> int:
    """Distinct from the original's seed and from each other's."""
    return preset.seed + 1 + index


@dataclass(frozen=True)
class ModelSpec:
    role: str
    index: int
    seed: int


def model_specs(preset: Preset, original: bool = True) -> list[ModelSpec]:
    """The original (unless ``original`` is False), then the 2N retrained models, each with its own seed."""
    retrained = [ModelSpec("retrained", i, retrained_seed(preset, i)) for i in range(2 * preset.n_models)]
    return ([ModelSpec("original", 0, preset.seed)] if original else []) + retrained


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
    model is one task of ``executor`` (default: in this process on ``device``).
    """
    executor = executor or LocalExecutor(device)
    data = data or load_eval_data(preset)
    indices = {role: train_indices(data, role) for role in ("original", "retrained")}
    return build_reference_set(
        preset,
        data,
        STANDARD_KIND,
        reference_options(preset),
        model_specs(preset),
        lambda directory, spec: reference_task(
            preset, data, spec, indices[spec.role], directory, progress and executor.name == "local"
        ),
        f"reference models ({preset.name})",
        executor,
        progress,
    )


def build_reference_set(
    preset: Preset,
    data: EvalData,
    kind: str,
    options: dict[str, Any],
    specs: list[ModelSpec],
    make_task: Callable[[Path, ModelSpec], Task],
    desc: str,
    executor: Executor,
    progress: bool,
    original: ModelRecord | None = None,
    rebuild: Callable[[ModelSpec], bool] | None = None,
    on_output: Callable[[ModelSpec, dict[str, Any]], None] | None = None,
) -> References:
    """The one builder of a cached reference set: standard, per request, or federated.

    The set lives in ``reference_set_dir(kind, options)`` with ``options`` as its
    manifest. Every entry of ``specs`` that is missing, broken (entries are
    verified: :mod:`local_eval.store.entries`), or asked for by ``rebuild`` is
    claimed (locked) here before its task (``make_task``) is dispatched, and
    written by this process alone as its output arrives (``on_output`` first, for
    what a scenario keeps beside the model), then released: a second process on
    this cache waits instead of training it again, and a killed build keeps every
    model finished before it. Failed tasks are reported together at the end
    (:class:`~local_eval.scoring.executors.TasksFailed`). Without ``original`` the
    first spec is the original.
    """
    directory = reference_set_dir(kind, options)
    cache_folder(directory)
    if not (directory / "manifest.json").exists():
        atomic_write_json(directory / "manifest.json", options)
    started = time.perf_counter()
    with ExitStack() as stack:
        entries = [(spec, metrics_path(directory, spec), weights_path(directory, spec)) for spec in specs]
        claims = claim_missing(entries, RECORD_KEYS, stack, rebuild)
        tasks = {}
        for spec in (spec for spec in specs if spec in claims):
            task = make_task(directory, spec)
            tasks[task.label] = (task, spec)

        def write(task: Task, output: dict[str, Any]) -> None:
            spec = tasks[task.label][1]
            if on_output is not None:
                on_output(spec, output)
            write_reference_model(directory, spec, output)
            epoch_checkpoint(directory, spec).discard()
            finish_entry(metrics_path(directory, spec), weights_path(directory, spec), RECORD_KEYS)
            claims.pop(spec).close()

        run_tasks(
            executor,
            [task for task, _ in tasks.values()],
            write,
            desc,
            progress=progress,
            initial=len(specs) - len(tasks),
        )
    records = [load_record(directory, spec) for spec in specs]
    if original is None:
        original, records = records[0], records[1:]
    return References(
        preset=preset,
        key=directory.name,
        directory=directory,
        data=data,
        original=original,
        retrained=tuple(records),
        seconds_this_build=time.perf_counter() - started,
    )


def cached_state(directory: Path, spec: ModelSpec) -> dict[str, torch.Tensor] | None:
    """The weights of ``spec`` already on disk (its measurements were not): they travel with its task."""
    weights = weights_path(directory, spec)
    if not weights.exists():
        return None
    return torch.load(weights, map_location="cpu", weights_only=True)


def reference_task(
    preset: Preset,
    data: EvalData,
    spec: ModelSpec,
    indices: torch.Tensor,
    directory: Path,
    progress: bool,
) -> Task:
    """One model's :func:`train_reference_task`: trained on ``indices``, or only measured if its weights exist."""
    label = TaskLabel(spec.role, (spec.index,), (spec.seed,))
    state = cached_state(directory, spec)
    return Task(label, train_reference_task, (preset, data, spec, indices, state, progress, str(directory)))


def train_reference_task(
    preset: Preset,
    data: EvalData,
    spec: ModelSpec,
    indices: torch.Tensor,
    state: dict[str, torch.Tensor] | None,
    progress: bool,
    directory: str | None = None,
    *,
    device: torch.device,
) -> dict[str, Any]:
    """Train (or, given its weights, only measure) one model; what the driver stores.

    Runs wherever the executor puts it. The weights come back as a CPU state_dict
    (None when they were given), with the seconds training took and the
    measurements; the cache itself is written by the driver. The one file a task
    writes is its model's epoch checkpoint under ``directory`` (a long training
    resumes from it after a kill; on a node that does not share the cache folder
    it is only lost work, never a wrong model, since the driver checks nothing in it).
    """
    if state is not None:
        return model_output(model_from_state(preset.arch, state, device), data, device, None, None)
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
    weights = weights_path(directory, spec)
    train_seconds = output["train_seconds"]
    if output["state"] is not None:
        atomic_write_json(
            _partial_path(directory, spec),
            {"train_seconds": train_seconds, "trainer": output["trainer"]},
        )
        atomic_torch_save(output["state"], weights)
    else:
        previous = _read_json(_partial_path(directory, spec))
        train_seconds = previous.get("train_seconds") if previous else None
    measured = output["measured"]
    atomic_write_json(
        metrics_path(directory, spec),
        {
            "role": spec.role,
            "index": spec.index,
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


def load_record(directory: Path, spec: ModelSpec) -> ModelRecord:
    paths = metrics_path(directory, spec), weights_path(directory, spec)
    stored = load_verified(*paths, RECORD_KEYS)
    return ModelRecord(
        role=spec.role,
        index=spec.index,
        seed=stored["seed"],
        path=directory / stored["weights"],
        forget_confidences=torch.tensor(stored["forget_confidences"], dtype=torch.float32),
        retain_accuracy=stored["retain_accuracy"],
        test_accuracy=stored["test_accuracy"],
        forget_accuracy=stored["forget_accuracy"],
        train_seconds=stored["train_seconds"],
        device=stored["device"],
    )


def _stem(spec: ModelSpec) -> str:
    return "original" if spec.role == "original" else f"retrained_{spec.index:04d}"


def weights_path(directory: Path, spec: ModelSpec) -> Path:
    return directory / f"{_stem(spec)}.pt"


def metrics_path(directory: Path, spec: ModelSpec) -> Path:
    return directory / f"{_stem(spec)}.json"


def _partial_path(directory: Path, spec: ModelSpec) -> Path:
    return directory / f"{_stem(spec)}.timing.json"


def epoch_checkpoint(directory: Path, spec: ModelSpec) -> EpochCheckpoint:
    """Where the training of ``spec`` keeps its between-epoch state until the model is stored."""
    path = directory / "training" / f"{_stem(spec)}.pt"
    return EpochCheckpoint(path, every_seconds=CHECKPOINT_EVERY_SECONDS)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing or cut short: only a timing, measured again
        return None


@dataclass(frozen=True)
class ReferenceStatus:
    """How far a preset's 1 + 2N reference models are, and what the finished ones cost."""

    preset: Preset
    directory: str
    total: int
    finished: int
    half_trained: dict[str, int]  # model stem -> epochs saved
    train_seconds: tuple[float, ...]  # of the finished models that recorded it
    devices: tuple[str, ...]


def reference_status(preset: Preset) -> ReferenceStatus:
    """Count the finished models and read the epoch checkpoints of the others (nothing is written)."""
    directory, specs = references_dir(preset), model_specs(preset)
    finished, seconds, devices, half = 0, [], set(), {}
    for spec in specs:
        record = verified_record(
            metrics_path(directory, spec),
            weights_path(directory, spec),
            RECORD_KEYS,
        )
        if record is not None:
            finished += 1
            devices.add(record["device"])
            if record["train_seconds"] == record["train_seconds"]:  # not NaN
                seconds.append(float(record["train_seconds"]))
            continue
        checkpoint = epoch_checkpoint(directory, spec)
        saved = checkpoint.saved_epochs(asdict(recipe_for(preset, spec.role)), spec.seed)
        if saved:
            half[checkpoint.path.stem] = saved
    return ReferenceStatus(
        preset, str(directory), len(specs), finished, half, tuple(seconds),
        tuple(sorted(devices)),
    )  # fmt: skip


def status_text(status: ReferenceStatus) -> str:
    """A few lines for the terminal: progress, half-trained models, cost per model."""
    preset = status.preset
    lines = [
        f"preset {preset.name} (N = {preset.n_models}): {status.finished} of {status.total} "
        f"reference models finished, in {status.directory}"
    ]
    if status.half_trained:
        epochs = preset.retrain_recipe.epochs
        parts = ", ".join(f"{stem} {saved}/{epochs}" for stem, saved in sorted(status.half_trained.items()))
        lines.append(f"half-trained (epochs saved, resumed by the next build): {parts}")
    if status.train_seconds:
        median = statistics.median(status.train_seconds)
        left = status.total - status.finished
        line = (
            f"training time per finished model: median {median:.0f} s on {', '.join(status.devices)} "
            f"(range {min(status.train_seconds):.0f}-{max(status.train_seconds):.0f} s)"
        )
        if left:
            line += f"; the {left} left are about {left * median / 3600:.1f} hours of one such worker"
        lines.append(line)
    return "\n".join(lines)
