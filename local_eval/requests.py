"""Sequential forget requests: the forget set arrives in K parts and the model carries over.

A deployment does not unlearn once: requests arrive one after another and each
is served on the model the previous one produced. Here the forget set is cut
into K requests (whole persons when there are at least K of them, otherwise
examples), each of N runs serves them in order on one model, and after request
j the model is scored on everything served so far against models retrained
without it (the training set minus requests 1..j). After the last request those
are the preset's ordinary reference models, so only the intermediate ones are
trained here, cached like the others.

At request j the method gets, as the competition interface would: the retain
loader over the data still held (the retain set plus requests not yet served),
the forget loader over request j alone, and the usual validation loader. Retain
accuracy is always measured on the retain set proper, so the K scores compare.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from local_eval import evaluate as scoring
from local_eval.cache import atomic_write_json, cache_dir, options_key, repo_root
from local_eval.cache_integrity import cache_folder
from local_eval.devices import default_device
from local_eval.errors import EvalError
from local_eval.evaluate import (
    resolve_hyperparameters,
    resolve_method,
    resolve_preset,
    score_models,
)
from local_eval.leaderboard import (
    CEILING_LABEL,
    board_notes,
    choose_methods,
    gather_results,
    stored_if_current,
    write_board,
)
from local_eval.leaderboard_plots import plot_requests_leaderboard
from local_eval.presets import Preset, model_options
from local_eval.references import (
    CACHE_FORMAT,
    EvalData,
    ModelRecord,
    References,
    build_once,
    build_reference_model,
    build_references,
    entry_ready,
    load_eval_data,
    load_record,
    measure_model,
    retrained_seed,
)
from methods.base import BaseMethod

MODE = "requests"
RESULT_FORMAT = 1
DEFAULT_REQUESTS = 3


@dataclasses.dataclass(frozen=True)
class RequestPlan:
    """Which forget examples each request carries, and how they were grouped."""

    requests: tuple[torch.Tensor, ...]
    grouping: str

    def served(self, j: int) -> torch.Tensor:
        """Training indices of requests 0..j, sorted: the columns scored after request j."""
        return torch.cat(self.requests[: j + 1]).sort().values

    def unserved(self, j: int) -> torch.Tensor:
        """Forget examples still held after request j (part of the retain data until requested)."""
        rest = self.requests[j + 1 :]
        return torch.cat(rest).sort().values if rest else torch.zeros(0, dtype=torch.int64)


def plan_requests(data: EvalData, k: int, seed: int) -> RequestPlan:
    """Cut the forget set into ``k`` requests of similar size, whole persons when possible.

    Persons are shuffled with ``seed`` and each goes to the request with the
    fewest examples so far, since a deletion request is usually one person's.
    With fewer forget persons than requests the examples themselves are shuffled
    and dealt out.
    """
    forget = data.forget
    if k < 1:
        raise EvalError(f"--requests {k}: the number of requests must be at least 1.")
    if k > len(forget):
        raise EvalError(
            f"--requests {k}: the forget set has only {len(forget)} examples, so it cannot be "
            f"served as {k} requests; choose at most {len(forget)}."
        )
    generator = torch.Generator().manual_seed(seed)
    persons = np.asarray(data.split.person_ids)[forget.numpy()]
    unique = np.unique(persons)
    if len(unique) >= k:
        order = torch.randperm(len(unique), generator=generator).tolist()
        buckets: list[list[int]] = [[] for _ in range(k)]
        for position in order:
            members = forget[torch.as_tensor(persons == unique[position])].tolist()
            smallest = min(range(k), key=lambda b: (len(buckets[b]), b))
            buckets[smallest].extend(members)
        grouping = "persons"
    else:
        shuffled = forget[torch.randperm(len(forget), generator=generator)].tolist()
        buckets = [shuffled[b::k] for b in range(k)]
        grouping = "examples"
    requests = tuple(torch.as_tensor(sorted(b), dtype=torch.int64) for b in buckets)
    return RequestPlan(requests=requests, grouping=grouping)


def request_references(
    preset: Preset,
    k: int,
    device: torch.device | None = None,
    data: EvalData | None = None,
    progress: bool = True,
) -> tuple[RequestPlan, list[References]]:
    """The reference models after each request, training whatever is missing.

    ``References`` number j holds models retrained without requests 0..j, whose
    forget confidences are on ``plan.served(j)`` in that order. The last one is
    the preset's standard references, reordered to those columns.
    """
    device = device or default_device()
    data = data or load_eval_data(preset)
    plan = plan_requests(data, k, preset.seed)
    standard = build_references(preset, device=device, data=data, progress=progress)
    result = []
    for j in range(k - 1):
        result.append(_intermediate_references(preset, data, plan, j, standard, device, progress))
    result.append(_reordered(standard, plan.served(k - 1)))
    return plan, result


def evaluate_requests(
    method: str | type[BaseMethod],
    preset: str | Preset = "cpu",
    k: int = DEFAULT_REQUESTS,
    overrides: dict[str, Any] | None = None,
    *,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    progress: bool = True,
    echo: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Serve the forget set as ``k`` sequential requests in each of N runs and score every step.

    ``overrides`` are the method's hyperparameters (the CLI's ``--set``);
    ``options`` are preset fields (``n_models``, ``forget_mode``, ...). Writes
    ``results/<preset>-requests/<method>.json`` and returns its content.
    """
    method_cls = resolve_method(method)
    preset = resolve_preset(preset, options, None)
    device = torch.device(device) if device is not None else default_device()
    params = resolve_hyperparameters(method_cls, overrides)
    started = time.perf_counter()
    plan, refs = request_references(preset, k, device=device, progress=progress)
    runs = _run_requests(method_cls, params, plan, refs, device, progress)
    steps = []
    for j, step_refs in enumerate(refs):
        confidences = torch.stack([run[j].pop("forget_confidences") for run in runs])
        row = scoring.score_runs(
            confidences,
            scoring.stack_confidences(step_refs.reference),
            [run[j]["retain_accuracy"] for run in runs],
            [run[j]["test_accuracy"] for run in runs],
            [run[j]["forget_accuracy"] for run in runs],
            step_refs,
        )
        steps.append(
            {
                "request": j + 1,
                "request_size": len(plan.requests[j]),
                "served": len(plan.served(j)),
                **row,
                "seconds_per_run": _mean([run[j]["seconds"] for run in runs]),
                "ceiling": score_models(step_refs.ceiling, step_refs),
                "references_key": step_refs.key,
            }
        )
    final = steps[-1]
    seconds_per_run = sum(step["seconds_per_run"] for step in steps)
    retrain_seconds = refs[-1].retrain_seconds
    json_path = result_path(results_dir, preset.name, method_cls.name)
    result = {
        "format": RESULT_FORMAT,
        "mode": MODE,
        **scoring.method_identity(method_cls, params, preset),
        "k": k,
        "grouping": plan.grouping,
        "request_sizes": [len(r) for r in plan.requests],
        "references_keys": [r.key for r in refs],
        "n_models": preset.n_models,
        "steps": steps,
        "score": final["score"],
        "forget_quality": final["forget_quality"],
        "retain_ratio": final["retain_ratio"],
        "test_ratio": final["test_ratio"],
        "ceiling": final["ceiling"],
        "seconds_per_run": seconds_per_run,
        "retrain_seconds": retrain_seconds,
        "time_fraction": seconds_per_run / retrain_seconds,
        "runs": [[{key: v for key, v in step.items()} for step in run] for run in runs],
        **scoring.provenance(device, started),
        "json_path": str(json_path),
    }
    atomic_write_json(json_path, result)
    if echo:
        print(format_requests_summary(result))
    return result


def result_path(results_dir: Path | str | None, preset: str, method: str) -> Path:
    """``results/<preset>-requests/<method>.json``."""
    folder = Path(results_dir) if results_dir is not None else scoring.default_results_dir()
    return folder / f"{preset}-{MODE}" / f"{method}.json"


def format_requests_summary(result: dict[str, Any]) -> str:
    """One line per request: the method's figures beside the retrain ceiling's."""
    opts = result["options"]
    lines = [
        f"{result['method']} on preset {result['preset']}, {result['k']} sequential requests "
        f"({result['grouping']}, sizes {result['request_sizes']}): {opts['dataset']}, {opts['arch']}, "
        f"N={result['n_models']}, {result['device']}",
        "",
        f"  {'request':<9}{'served':>7}{'score':>8}{'F':>7}{'retain':>8}{'test':>7}{'forget':>8}"
        f"{'ceiling':>9}{'s/run':>8}",
    ]
    for step in result["steps"]:
        lines.append(
            f"  {step['request']:<9}{step['served']:>7}{step['score']:>8.4f}{step['forget_quality']:>7.3f}"
            f"{step['retain_ratio']:>8.3f}{step['test_ratio']:>7.3f}{step['forget_accuracy']:>8.3f}"
            f"{step['ceiling']['score']:>9.4f}{step['seconds_per_run']:>8.2f}"
        )
    lines += [
        "",
        f"  final score {result['score']:.4f} (ceiling {result['ceiling']['score']:.4f}); all "
        f"{result['k']} requests take {result['seconds_per_run']:.2f} s per run = "
        f"{result['time_fraction']:.3f} of one retraining",
        "  retain/test are ratios to the retrained models of the same step; F and score on all "
        "forget data served so far",
        f"  wrote {result['json_path']}",
    ]
    return "\n".join(lines)


def leaderboard_requests(
    preset: str | Preset = "cpu",
    k: int = DEFAULT_REQUESTS,
    *,
    method_names: list[str] | None = None,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    docs_dir: Path | str | None = None,
    rerun: bool = False,
    progress: bool = True,
    echo: bool = True,
    **options: Any,
) -> Path:
    """Score (or reuse) methods in the requests mode and write ``docs/leaderboard-<preset>-requests.md``.

    ``method_names`` defaults to every registered method; ``options`` are preset
    fields (e.g. ``n_models=8``). A method that fails gets a line saying so.
    """
    preset = resolve_preset(preset, options, None)
    device = torch.device(device) if device is not None else default_device()
    chosen, left_out = choose_methods(method_names)
    plan, refs = request_references(preset, k, device=device, progress=progress)
    rows, failures = gather_results(
        chosen,
        lambda method_cls: (
            None if rerun else reusable_requests_result(method_cls, preset, k, refs, results_dir)
        ),
        lambda method_cls: evaluate_requests(
            method_cls, preset, k, device=device, results_dir=results_dir, progress=progress, echo=echo
        ),
        lambda name: result_path(results_dir, preset.name, name),
        f"serving {k} requests on preset {preset.name} (N={preset.n_models})",
        echo,
    )
    ceilings = [score_models(r.ceiling, r) for r in refs]
    text = render_requests_leaderboard(
        preset, k, plan, rows, ceilings, failures, refs[-1], left_out
    )
    docs = Path(docs_dir) if docs_dir is not None else repo_root() / "docs"
    stem = f"leaderboard-{preset.name}-{MODE}"
    plot_requests_leaderboard(
        docs / f"{stem}.png",
        f"{k} sequential requests: preset {preset.name}, N = {preset.n_models}",
        rows,
        ceilings,
    )
    return write_board(
        docs, stem, text, preset, f"REQUESTS={k}", list(chosen) if left_out else None, echo
    )


def reusable_requests_result(
    method_cls: type[BaseMethod],
    preset: Preset,
    k: int,
    refs: list[References],
    results_dir: Path | str | None,
) -> dict[str, Any] | None:
    """A stored result computed exactly as a fresh run would be, else None."""
    return stored_if_current(
        result_path(results_dir, preset.name, method_cls.name),
        method_cls,
        preset,
        format=RESULT_FORMAT,
        k=k,
        references_keys=[r.key for r in refs],
    )


def render_requests_leaderboard(
    preset: Preset,
    k: int,
    plan: RequestPlan,
    results: list[dict[str, Any]],
    ceilings: list[dict[str, Any]],
    failures: dict[str, str],
    final_refs: References,
    left_out: list[str] | None = None,
) -> str:
    """Markdown: what the numbers stand for, then methods by final score with every step's score."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    data = final_refs.data
    devices = sorted({row["device"] for row in results}) or ["(no method scored)"]
    step_headers = " | ".join(f"after {j + 1}" for j in range(k))
    lines = [
        f"# Leaderboard: preset `{preset.name}`, {k} sequential forget requests",
        "",
        f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} runs per method. "
        f"The forget set ({len(data.forget)} images, {preset.forget_mode}) is served as {k} requests "
        f"of {', '.join(str(len(r)) for r in plan.requests)} images (grouped by {plan.grouping}); each "
        "run serves them in order on one model, starting from the original. After request j the "
        "model is scored on all forget images served so far against models retrained without them. "
        f"Generated {today} on {', '.join(devices)}; one retraining takes "
        f"{final_refs.retrain_seconds:.1f} s.",
        "",
        "Score = F x retain ratio x test ratio after each request; the ranking uses the last one. "
        "The retrain ceiling scores the other N retrained models of each step as if they were a "
        "method. Time fraction is the time of all requests of one run over one retraining.",
        "",
        f"| rank | method | {step_headers} | F (final) | retain ratio | test ratio | time fraction |",
        "|---:|---|" + "---:|" * k + "---:|---:|---:|---:|",
    ]
    ceiling_row = {
        "method": CEILING_LABEL,
        "steps": ceilings,
        "score": ceilings[-1]["score"],
        "forget_quality": ceilings[-1]["forget_quality"],
        "retain_ratio": ceilings[-1]["retain_ratio"],
        "test_ratio": ceilings[-1]["test_ratio"],
        "time_fraction": 1.0,
    }
    rank = 0
    for row in sorted([*results, ceiling_row], key=lambda r: r["score"], reverse=True):
        is_ceiling = row["method"] == CEILING_LABEL
        rank += 0 if is_ceiling else 1
        scores = " | ".join(f"{step['score']:.4f}" for step in row["steps"])
        lines.append(
            f"| {'' if is_ceiling else rank} | {row['method']} | {scores} | "
            f"{row['forget_quality']:.4f} | {row['retain_ratio']:.3f} | {row['test_ratio']:.3f} | "
            f"{row['time_fraction']:.3f} |"
        )
    lines += board_notes(
        failures, left_out, "Registered but not scored in this mode (left out with `--methods`)"
    )
    return "\n".join(lines) + "\n"


def _run_requests(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    plan: RequestPlan,
    refs: list[References],
    device: torch.device,
    progress: bool,
) -> list[list[dict[str, Any]]]:
    """Per run, per request: seconds, accuracies and confidences on the forget data served so far.

    Runs are the outer loop, so one run's requests follow each other without
    another run's calls in between, as they would in a deployment.
    """
    preset, data = refs[-1].preset, refs[-1].data
    k = len(plan.requests)
    runs = []
    with scoring.assets_folder(method_cls):
        for i in tqdm(
            range(preset.n_models), desc=f"{method_cls.name} runs", unit="run", disable=not progress
        ):
            seed = preset.seed + i
            net = refs[-1].load_original(device)
            torch.manual_seed(seed)
            steps = []
            for j in range(k):
                held = torch.cat([data.retain, plan.unserved(j)]).sort().values
                step_data = dataclasses.replace(data, retain=held, forget=plan.requests[j])
                loaders = scoring.method_loaders(preset, step_data, seed * k + j)
                seconds = scoring.call_method(
                    method_cls,
                    params,
                    net,
                    loaders,
                    device,
                    f"run {i + 1} of {preset.n_models}, request {j + 1} of {k}, preset {preset.name}",
                    "requests carry the `net` they passed in over to the next one, so modify `net` "
                    "in place",
                )
                measured = measure_model(net, refs[j].data, device)
                steps.append({"request": j + 1, "seconds": seconds, **measured})
            runs.append(steps)
    return runs


def _intermediate_references(
    preset: Preset,
    data: EvalData,
    plan: RequestPlan,
    j: int,
    standard: References,
    device: torch.device,
    progress: bool,
) -> References:
    served = plan.served(j)
    train_indices = torch.cat([data.retain, plan.unserved(j)]).sort().values
    options = {
        "cache_format": CACHE_FORMAT,
        **model_options(preset),
        "mode": MODE,
        "served": served.tolist(),
    }
    directory = Path(cache_dir()) / MODE / options_key(options)
    cache_folder(directory)
    manifest = directory / "manifest.json"
    if not manifest.exists():
        atomic_write_json(manifest, options)
    step_data = dataclasses.replace(data, forget=served)
    count = 2 * preset.n_models
    missing = [i for i in range(count) if not entry_ready(directory, "retrained", i)]
    started = time.perf_counter()
    bar = tqdm(
        total=count,
        initial=count - len(missing),
        desc=f"request {j + 1} references ({preset.name})",
        unit="model",
        disable=not progress,
    )
    with bar:
        for i in missing:
            build_once(directory, "retrained", i, partial(
                build_reference_model,
                preset, step_data, directory, "retrained", i, retrained_seed(preset, i),
                preset.retrain_recipe, train_indices, device, progress,
            ))  # fmt: skip
            bar.update(1)
    return References(
        preset=preset,
        key=directory.name,
        directory=directory,
        data=step_data,
        original=standard.original,
        retrained=tuple(load_record(directory, "retrained", i) for i in range(count)),
        seconds_this_build=time.perf_counter() - started,
    )


def _reordered(refs: References, served: torch.Tensor) -> References:
    """The standard references with forget confidences in ``served`` order (all of the forget set)."""
    position = {int(index): p for p, index in enumerate(refs.data.forget.tolist())}
    columns = torch.as_tensor(
        [position[int(index)] for index in served.tolist()], dtype=torch.int64
    )

    def pick(record: ModelRecord) -> ModelRecord:
        return dataclasses.replace(record, forget_confidences=record.forget_confidences[columns])

    return dataclasses.replace(
        refs,
        data=dataclasses.replace(refs.data, forget=served),
        original=pick(refs.original),
        retrained=tuple(pick(r) for r in refs.retrained),
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)

