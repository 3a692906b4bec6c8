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

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from local_eval.devices import default_device
from local_eval.scoring.cost import cost_summary, timed_retraining
from local_eval.scoring.intervals import with_intervals
from local_eval.scoring.method_calls import (
    assets_folder,
    call_method,
    method_identity,
    method_loaders,
    provenance,
    resolve_hyperparameters,
    resolve_method,
)
from local_eval.scoring.metric import epsilon_points, example_epsilons, final_score
from local_eval.scoring.presets import Preset, apply_overrides, get_preset
from local_eval.scoring.references import ModelRecord, References, measure_model
from local_eval.scoring.results import RESULT_FORMAT, result_paths, write_result
from local_eval.scoring.scenarios import Prepared, Scenario
from local_eval.scoring.scenarios.standard import Standard
from methods.base import BaseMethod

# What a call costs (method_calls.call_method); a run's is the sum over its calls.
COST_KEYS = ("seconds", "cpu_seconds", "calibrated_seconds", "forward", "backward")

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
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    progress: bool = True,
    bootstrap: int | None = None,
    **options: Any,
) -> Scored:
    """Run ``method`` N times in ``scenario`` (the competition's by default), score it, write the JSON.

    ``overrides`` are the method's hyperparameters (the CLI's ``--set``; strings
    are read as the default's type); ``options`` are preset fields (``data_root``,
    ``batch_format``, ``forget_mode``, ...). Builds (or resumes) the scenario's
    reference models first. ``bootstrap`` is B, the resamples of the result's
    intervals (``scoring.intervals``; None: its default for the forget set's size).
    """
    scenario = scenario or Standard()
    method_cls = resolve_method(method)
    preset = resolve_preset(preset, options, n_models)
    device = torch.device(device) if device is not None else default_device()
    params = resolve_hyperparameters(method_cls, overrides)
    started = time.perf_counter()

    prepared = scenario.prepare(preset, device, progress)
    # Timed first, in this process: the denominator of every time fraction below.
    retraining = timed_retraining(prepared.final, device)
    runs, confidences = serve(method_cls, params, preset, prepared, device, progress)
    steps, references = [], []
    for j, step in enumerate(prepared.steps):
        references.append(stack_confidences(step.refs.reference))
        row = score_runs(
            confidences[j],
            references[-1],
            [run["steps"][j]["retain_accuracy"] for run in runs],
            [run["steps"][j]["test_accuracy"] for run in runs],
            [run["steps"][j]["forget_accuracy"] for run in runs],
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
    json_path, plot_path = result_paths(results_dir, preset.name, method_cls.name, scenario.name)
    result = {
        "format": RESULT_FORMAT,
        "mode": scenario.name,
        **method_identity(method_cls, params, preset),
        **prepared.record,
        "references_key": refs.key,
        "n_models": preset.n_models,
        "sizes": {
            "retain": len(refs.data.retain),
            "forget": len(refs.data.forget),
            "val": len(refs.data.val),
            "test": len(refs.data.test),
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
        "retrained": mean_accuracies(refs.reference),
        "original": record_accuracies(refs.original),
        "runs": runs,
        **provenance(device, started),
        "json_path": str(json_path),
        "plot_path": str(plot_path),
    }
    result = with_intervals(result, refs, bootstrap)
    write_result(result, json_path)
    return Scored(result=result, unlearned=confidences, reference=references)


def serve(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    preset: Preset,
    prepared: Prepared,
    device: torch.device,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
    """Per run: its seed, total seconds, final accuracies and each step's; per step: confidences.

    Runs are the outer loop, so one run's calls follow each other without another
    run's in between, as they would in a deployment.
    """
    steps = prepared.steps
    runs, confidences = [], [[] for _ in steps]
    with assets_folder(method_cls):
        for i in tqdm(
            range(preset.n_models), desc=f"{method_cls.name} runs", unit="run", disable=not progress
        ):
            seed = preset.seed + i
            net = prepared.final.load_original(device)
            torch.manual_seed(seed)
            measured_steps = []
            for j, step in enumerate(steps):
                spent = call_method(
                    method_cls,
                    params,
                    net,
                    method_loaders(preset, step.given, seed * len(steps) + j),
                    device,
                    f"run {i + 1} of {preset.n_models}{step.label}, preset {preset.name}",
                    prepared.keep_net_because,
                    step.offered,
                )
                measured = measure_model(net, step.refs.data, device)
                confidences[j].append(measured.pop("forget_confidences"))
                measured_steps.append({**step.record, **spent, **measured})
            last = measured_steps[-1]
            runs.append(
                {
                    "seed": seed,
                    **{key: sum(s[key] for s in measured_steps) for key in COST_KEYS},
                    **{key: last[key] for key in measured},
                    # The final step's forget confidences: what intervals resample.
                    "forget_confidences": confidences[-1][-1].tolist(),
                    "steps": measured_steps,
                }
            )
    return runs, [torch.stack(c) for c in confidences]


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
        [r.retain_accuracy for r in records],
        [r.test_accuracy for r in records],
        [r.forget_accuracy for r in records],
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


def record_accuracies(record: ModelRecord) -> dict[str, float]:
    return {
        "retain_accuracy": record.retain_accuracy,
        "test_accuracy": record.test_accuracy,
        "forget_accuracy": record.forget_accuracy,
    }


def mean_accuracies(records: tuple[ModelRecord, ...]) -> dict[str, float]:
    return {
        key: _mean([getattr(r, key) for r in records])
        for key in ("retain_accuracy", "test_accuracy", "forget_accuracy")
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


__all__ = ["score_method", "score_models", "resolve_preset", "Scored"]
