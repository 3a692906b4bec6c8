"""The one runner: score a method in any scenario the way the competition scores it.

Each of N runs starts from a fresh copy of the original model with its own seed
and makes the scenario's calls in order on that one model (one call in the
competition's setting), each with freshly shuffled competition-style loaders;
after every call the model is measured, and the N measurements of a step are
compared with that step's N retrained models. The other N retrained models are
scored the same way (the retrain ceiling), so a score can be read against the
best one reachable with this many models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from local_eval.data.roles import EvalData
from local_eval.scoring.context import Context, make_context
from local_eval.scoring.cost import cost_summary, timed_retraining
from local_eval.scoring.executors import Task, TaskLabel, run_tasks
from local_eval.scoring.intervals import with_intervals
from local_eval.scoring.method_calls import (
    asset_files,
    call_method,
    installed_assets,
    installed_files,
    method_identity,
    method_loaders,
    provenance,
    resolve_hyperparameters,
    resolve_method,
)
from local_eval.scoring.metric import epsilon_points, example_epsilons, final_score
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import Preset, apply_overrides, get_preset
from local_eval.scoring.references import (
    ModelRecord,
    References,
    cpu_state,
    measure_model,
)
from local_eval.scoring.results import RESULT_FORMAT, result_paths
from local_eval.scoring.scenarios import Prepared, Scenario
from local_eval.scoring.scenarios.standard import Standard
from local_eval.store.files import atomic_write_json
from local_eval.store.runs import RunCache, run_cache
from methods.base import BaseMethod

# What a call costs (method_calls.call_method); a run's is the sum over its calls.
# ``bootstrap=NO_INTERVALS``: score without intervals (B = 0 resamples).
NO_INTERVALS = 0
COST_KEYS = ("seconds", "cpu_seconds", "calibrated_seconds", "forward", "backward")
# A model's accuracies, in the order score_runs() takes them.
ACCURACIES = ("retain_accuracy", "test_accuracy", "forget_accuracy")

# What score_runs() reports; a result holds its final step's at the top level.
FIGURES = (
    "score",
    "forget_quality",
    "retain_ratio",
    "test_ratio",
    "retain_accuracy",
    "test_accuracy",
    "forget_accuracy",
    "epsilons",
)


@dataclasses.dataclass(frozen=True)
class Scored:
    """A written result and, per step, the forget confidences behind it ``[models, examples]``."""

    result: dict[str, Any]
    unlearned: list[torch.Tensor]
    reference: list[torch.Tensor]


def score_method(
    method: str | type[BaseMethod],
    preset: str | Preset = "cpu",
    overrides: dict[str, Any] | None = None,
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    context: Context | None = None,
    **options: Any,
) -> Scored:
    """Run ``method`` N times in ``scenario`` (the competition's by default), score it, write the JSON.

    ``overrides`` are the method's hyperparameters (the CLI's ``--set``; strings
    are read as the default's type); ``options`` are preset fields (``data_root``,
    ``batch_format``, ``forget_mode``, ...). Builds (or resumes) the scenario's
    reference models first. Reference models and runs are tasks of ``context.executor``
    (``make_context()``'s default: one after the other in this process), one model or
    run per task; the JSON goes under ``context.results_dir``. ``context.bootstrap`` is
    B, the resamples of the result's intervals (``scoring.intervals``; None: its
    default for the forget set's size; ``NO_INTERVALS`` (0): none, for callers that
    compare point scores many times, like the tuner's trials, and add intervals later
    from the stored confidences).
    """
    scenario = scenario or Standard()
    context = context or make_context()
    method_cls = resolve_method(method)
    preset = resolve_preset(preset, options, n_models)
    device = context.device
    params = resolve_hyperparameters(method_cls, overrides)
    started = time.perf_counter()

    prepared = scenario.prepare(preset, context)
    # Timed first, where the runs are timed: the denominator of every time fraction below.
    retraining = timed_retraining(prepared.final, device, executor=context.executor)
    stored_runs = run_cache(
        method_identity(method_cls, params, preset),
        prepared.record,
        [step.refs.key for step in prepared.steps],
        device,
    )
    runs, confidences, resumed = serve(method_cls, params, preset, prepared, context, stored_runs)
    steps, references = [], []
    for j, step in enumerate(prepared.steps):
        references.append(stack_confidences(step.refs.reference))
        row = score_runs(
            confidences[j],
            references[-1],
            *([run["steps"][j][key] for run in runs] for key in ACCURACIES),
            step.refs,
        )
        steps.append(
            {
                **step.record,
                **row,
                "seconds_per_run": _mean([run["steps"][j]["seconds"] for run in runs]),
                "ceiling": score_models(step.refs.ceiling, step.refs),
                "references_key": step.refs.key,
            }
        )
    final, refs = steps[-1], prepared.final
    if len(steps) == 1:
        for run in runs:
            del run["steps"]
    seconds_per_run = _mean([run["seconds"] for run in runs])
    cost = cost_summary([{key: run[key] for key in COST_KEYS} for run in runs], refs, retraining)
    json_path, plot_path = result_paths(
        context.results_dir, preset.name, method_cls.name, scenario.name
    )
    result = {
        "format": RESULT_FORMAT,
        "mode": scenario.name,
        **method_identity(method_cls, params, preset),
        **prepared.record,
        "references_key": refs.key,
        "n_models": preset.n_models,
        "sizes": {
            role: len(getattr(refs.data, role)) for role in ("retain", "forget", "val", "test")
        },
        **{key: final[key] for key in FIGURES},
        **({"steps": steps} if len(steps) > 1 else {}),
        "seconds_per_run": seconds_per_run,
        "retrain_seconds": refs.retrain_seconds,
        # One-run ratio: process CPU time on a CPU, calibrated wall time on a GPU (whose
        # work the CPU clock does not see); both sides timed in this process.
        "time_fraction": cost["time_fraction_cpu"]
        if device.type == "cpu" or cost["time_fraction_calibrated"] is None
        else cost["time_fraction_calibrated"],
        "time_fraction_basis": "cpu" if device.type == "cpu" else "calibrated",
        "cost": cost,
        "ceiling": final["ceiling"],
        "retrained": {key: _mean([getattr(r, key) for r in refs.reference]) for key in ACCURACIES},
        "original": {key: getattr(refs.original, key) for key in ACCURACIES},
        "runs": runs,
        # Runs kept from an interrupted scoring: their costs were measured in that earlier process.
        **({"resumed_runs": resumed} if resumed else {}),
        **provenance(device, started),
        "json_path": str(json_path),
        "plot_path": str(plot_path),
    }
    if context.bootstrap != NO_INTERVALS:
        result = with_intervals(result, refs, context.bootstrap)
    atomic_write_json(json_path, result)
    stored_runs.discard()
    return Scored(result=result, unlearned=confidences, reference=references)


def serve(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    preset: Preset,
    prepared: Prepared,
    context: Context,
    stored: RunCache | None = None,
) -> tuple[list[dict[str, Any]], list[torch.Tensor], list[int]]:
    """Per run: its seed, total cost, final accuracies and each step's; per step: confidences;
    and the indices of the runs ``stored`` already held.

    Each run is one task of ``context.executor`` making the
    scenario's calls in order on one model, so one run's calls follow each other
    without another run's in between, as they would in a deployment. Runs come
    back in index order whatever order they finished in; if some fail,
    ``executors.TasksFailed`` names them after the others finished. With
    ``stored``, each run is kept there as it finishes and the runs it already
    holds are not run again (``run_cache``), so a killed scoring resumes.
    """
    done = stored.finished(preset.n_models) if stored is not None else {}
    resumed = sorted(done)
    plan = run_plan(method_cls, params, preset, prepared)
    tasks = [
        Task(
            TaskLabel(f"{method_cls.name} run", (i,), (preset.seed + i,)),
            unlearning_run_task,
            (plan, i, False),
            unit="run",
        )
        for i in range(preset.n_models)
        if i not in done
    ]

    def finished(task: Task, run: dict[str, Any]) -> None:
        index = task.label.indices[0]
        if stored is not None:
            stored.save(index, run)
        done[index] = run

    run_tasks(
        context.executor, tasks, finished, f"{method_cls.name} runs",
        progress=context.progress, initial=len(resumed),
    )  # fmt: skip
    runs = [done[i] for i in range(preset.n_models)]
    per_run = [run.pop("step_confidences") for run in runs]
    steps = range(len(prepared.steps))
    return runs, [torch.stack([c[j] for c in per_run]) for j in steps], resumed


@dataclasses.dataclass(frozen=True)
class RunStep:
    """One call of a run as a task sees it: a ``Step`` without its reference models.

    ``files`` holds the content of the files ``offered`` names (by its key), so a
    worker without this machine's disk can give the method a copy.
    """

    given: EvalData
    measured_on: EvalData
    offered: dict[str, Any] | None
    label: str
    record: dict[str, Any]
    files: dict[str, bytes]


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Everything every run of a method needs, made once on the driver and shipped once."""

    method_cls: type[BaseMethod]
    params: dict[str, Any]
    preset: Preset
    original: dict[str, torch.Tensor]
    assets: dict[str, bytes]
    steps: tuple[RunStep, ...]
    keep_net_because: str


def run_plan(
    method_cls: type[BaseMethod], params: dict[str, Any], preset: Preset, prepared: Prepared
) -> RunPlan:
    return RunPlan(
        method_cls=method_cls,
        params=params,
        preset=preset,
        original=torch.load(prepared.final.original.path, map_location="cpu", weights_only=True),
        assets=asset_files(method_cls),
        steps=tuple(
            RunStep(
                given=step.given,
                measured_on=step.refs.data,
                offered=step.offered,
                label=step.label,
                record=step.record,
                files={key: Path(step.offered[key]).read_bytes() for key in step.files},
            )
            for step in prepared.steps
        ),
        keep_net_because=prepared.keep_net_because,
    )


def unlearning_run_task(
    plan: RunPlan, index: int, keep_state: bool, *, device: torch.device
) -> dict[str, Any]:
    """Run ``index`` of a method: a fresh copy of the original, its seed, the steps' calls in order.

    Everything comes in ``plan`` (assets and offered files as bytes) and no file
    is left behind, so the run is the same in this process or on a worker. Returns
    the run's row (seed, summed cost, final accuracies, final forget confidences,
    per-step rows under ``steps``), the confidences of every step under
    ``step_confidences`` and, with ``keep_state``, the unlearned weights on the CPU
    under ``state``.
    """
    preset, steps = plan.preset, plan.steps
    seed = preset.seed + index
    net = build_model(preset.arch)
    net.load_state_dict(plan.original)
    net.to(device).eval()
    torch.manual_seed(seed)
    measured_steps, confidences = [], []
    with installed_assets(plan.assets):
        for j, step in enumerate(steps):
            with _offered_files(step) as offered:
                spent = call_method(
                    plan.method_cls,
                    plan.params,
                    net,
                    method_loaders(preset, step.given, seed * len(steps) + j),
                    device,
                    f"run {index + 1} of {preset.n_models}{step.label}, preset {preset.name}",
                    plan.keep_net_because,
                    offered,
                )
            measured = measure_model(net, step.measured_on, device)
            confidences.append(measured.pop("forget_confidences"))
            measured_steps.append({**step.record, **spent, **measured})
    last = measured_steps[-1]
    run = {
        "seed": seed,
        **{key: sum(s[key] for s in measured_steps) for key in COST_KEYS},
        **{key: last[key] for key in measured},
        # The final step's forget confidences: what intervals resample.
        "forget_confidences": confidences[-1].tolist(),
        "steps": measured_steps,
        "step_confidences": confidences,
    }
    if keep_state:
        run["state"] = cpu_state(net)
    return run


@contextlib.contextmanager
def _offered_files(step: RunStep) -> Iterator[dict[str, Any] | None]:
    """``step.offered`` with each file it names copied to a temporary folder, for the call."""
    if not step.files:
        yield step.offered
        return
    contents = {Path(step.offered[key]).name: content for key, content in step.files.items()}
    with installed_files(contents, "unlearnkit-offered-") as folder:
        yield {
            **step.offered,
            **{key: str(folder / Path(step.offered[key]).name) for key in step.files},
        }


def resolve_preset(
    preset: str | Preset, overrides: dict[str, Any] | None, n_models: int | None
) -> Preset:
    overrides = dict(overrides or {})
    if n_models is not None:
        overrides["n_models"] = n_models
    if isinstance(preset, Preset):
        return apply_overrides(preset, overrides)
    return get_preset(preset, overrides)


def score_models(records: tuple[ModelRecord, ...], refs: References) -> dict[str, Any]:
    """Score already-measured models (the retrain ceiling) as if a method had produced them."""
    return score_runs(
        stack_confidences(records),
        stack_confidences(refs.reference),
        *([getattr(r, key) for r in records] for key in ACCURACIES),
        refs,
    )


def score_runs(
    confidences: torch.Tensor,
    reference: torch.Tensor,
    retain: list[float],
    test: list[float],
    forget: list[float],
    refs: References,
) -> dict[str, Any]:
    ra_u, ta_u, fa_u = _mean(retain), _mean(test), _mean(forget)
    ra_r = _mean([r.retain_accuracy for r in refs.reference])
    ta_r = _mean([r.test_accuracy for r in refs.reference])
    # forget_quality() is the mean of these points; computing the epsilons once halves the cost.
    epsilons = torch.as_tensor(example_epsilons(confidences, reference))
    quality = float(epsilon_points(epsilons.numpy(), len(confidences)).mean())
    return {
        "score": float(final_score(quality, ra_u, ra_r, ta_u, ta_r)),
        "forget_quality": quality,
        "retain_ratio": ra_u / ra_r,
        "test_ratio": ta_u / ta_r,
        "retain_accuracy": ra_u,
        "test_accuracy": ta_u,
        "forget_accuracy": fa_u,
        "epsilons": epsilons.tolist(),
    }


def stack_confidences(records: tuple[ModelRecord, ...]) -> torch.Tensor:
    return torch.stack([r.forget_confidences for r in records])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
