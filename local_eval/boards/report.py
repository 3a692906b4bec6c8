"""What scoring a method leaves behind: a JSON of every figure, a one-screen summary, a plot.

The JSON is what the leaderboard reuses and what a researcher diffs between two
versions of a method; the summary is what they read in the terminal; the plot
shows *why* F is what it is: which forget examples still look unlike retraining.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from local_eval.boards.views import describe, score_cell
from local_eval.scoring.context import Context, make_context
from local_eval.scoring.metric import max_epsilon
from local_eval.scoring.presets import Preset
from local_eval.scoring.runner import Scored, resolve_preset, score_method
from local_eval.scoring.scenarios import COMPETITION, Scenario
from local_eval.scoring.several_splits import aggregate_splits, split_presets
from local_eval.store.files import atomic_write_figure
from methods.base import BaseMethod

PLOTTED_EXAMPLES = 4


def evaluate_method(
    method: str | type[BaseMethod],
    preset: str | Preset = "cpu",
    overrides: dict[str, Any] | None = None,
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    context: Context | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Score ``method`` in ``scenario`` (``runner.score_method``), draw its plot, print its summary.

    ``context`` (default: ``make_context()``) says where reference models and runs
    are made, one model or run per task of its executor, and B for the intervals.
    Writes ``<context.results_dir>/<folder>/<method>.json`` and ``.png``, prints the
    summary when ``context.echo``, and returns the JSON's content.
    """
    context = context or make_context()
    scored = score_method(
        method, preset, overrides, n_models, scenario=scenario, context=context, **options
    )
    present(scored, context.echo)
    return scored.result


def present(scored: Scored, echo: bool = True) -> None:
    """Draw a freshly scored method's plot beside its JSON; print its summary when ``echo``."""
    result = scored.result
    mode = "" if result["mode"] == COMPETITION else f" ({result['mode']})"
    plot_result(
        Path(result["plot_path"]),
        f"{result['method']} on {result['preset']}{mode} (N={result['n_models']}): score "
        f"{result['score']:.3f}, ceiling {result['ceiling']['score']:.3f}",
        torch.tensor(result["epsilons"]),
        torch.tensor(result["ceiling"]["epsilons"]),
        scored.unlearned[-1],
        scored.reference[-1],
    )
    if echo:
        print(format_summary(result))


def evaluate_splits(
    method: str | type[BaseMethod],
    preset: str | Preset,
    k: int,
    overrides: dict[str, Any] | None = None,
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    context: Context | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Score ``method`` on K independent reference sets (``several_splits.split_presets``).

    Split 0 is the preset itself (its results and references are reused); split j
    files its result under ``results/<preset>-split<j>/``. Prints each split's
    summary, then the mean and spread over the K. ``context`` as for
    ``evaluate_method``, split after split.
    """
    context = context or make_context()
    base = resolve_preset(preset, options, n_models)
    results = [
        evaluate_method(method, split, overrides, scenario=scenario, context=context)
        for split in split_presets(base, k)
    ]
    if context.echo:
        print(format_splits_summary(results))
    return results


def format_splits_summary(results: list[dict[str, Any]]) -> str:
    """One line per split (its score and interval), then the mean and spread over the splits."""
    name = results[0]["method"]
    summary = aggregate_splits([{name: r["score"]} for r in results])[name]
    lines = ["", f"{name} on {len(results)} splits of preset {results[0]['preset']}:"]
    for j, result in enumerate(results):
        lines.append(
            f"  split {j} ({result['preset']}): score {score_cell(result)}, "
            f"ceiling {result['ceiling']['score']:.4f}"
        )
    spread = "n/a" if math.isnan(summary.std) else f"{summary.std:.4f}"
    lines.append(f"  mean {summary.mean:.4f}, sd {spread} over the splits")
    return "\n".join(lines)


def score_table(result: dict[str, Any]) -> list[str]:
    """The method's figures over the ceiling's, then the baselines' accuracies, in aligned columns."""
    lines = [f"  {'':<18}{'score':>7}{'F':>7}{'retain':>8}{'test':>7}{'forget':>8}   accuracy / ratio"]
    for label, row in ((result["method"], result), ("retrain ceiling", result["ceiling"])):
        lines.append(
            f"  {label[:18]:<18}{row['score']:>7.4f}{row['forget_quality']:>7.3f}"
            f"{row['retain_accuracy']:>8.3f}{row['test_accuracy']:>7.3f}{row['forget_accuracy']:>8.3f}"
            f"   ratios {row['retain_ratio']:.3f} / {row['test_ratio']:.3f}"
        )
    for label, row in (("retrained (ref)", result["retrained"]), ("original", result["original"])):
        lines.append(
            f"  {label:<18}{'':>7}{'':>7}"
            f"{row['retain_accuracy']:>8.3f}{row['test_accuracy']:>7.3f}{row['forget_accuracy']:>8.3f}"
        )
    return lines


def format_summary(result: dict[str, Any]) -> str:
    """The figures a researcher compares between runs, unlearned beside the baselines.

    A result with several steps (sequential requests) gets one line per step first.
    """
    opts = result["options"]
    sizes = result["sizes"]
    lines = [
        f"{result['method']} on preset {result['preset']}{describe(result)}: "
        f"{opts['dataset']}, {opts['arch']}, N={result['n_models']}, forget {sizes['forget']} "
        f"({opts['forget_mode']}) / retain {sizes['retain']} / test {sizes['test']}, {result['device']}",
        "",
    ]
    if "steps" in result:
        lines += [*step_table(result["steps"]), ""]
    lines += score_table(result)
    lines += ["", *interval_lines(result), *cost_lines(result)]
    lines += [
        f"  score = F x retain ratio x test ratio; the ceiling is the best reachable at N={result['n_models']}",
    ]
    if result.get("json_path"):
        lines.append(f"  wrote {result['json_path']} and {result['plot_path']}")
    return "\n".join(lines)


def interval_lines(result: dict[str, Any]) -> list[str]:
    """The score's and the ceiling's bootstrap intervals, when the result has them."""
    record = result.get("intervals")
    if record is None:
        return ["  no interval: the runs kept no forget confidences"]
    lines = [
        f"  score {score_cell(result)}, "
        f"F [{record['forget_quality'][0]:.3f}, {record['forget_quality'][1]:.3f}] "
        f"({record['level']:.0%} intervals, B={record['num_resamples']})"
    ]
    if result["ceiling"].get("intervals") is not None:
        lines.append(f"  ceiling {score_cell(result['ceiling'])}")
    return lines


def cost_lines(result: dict[str, Any]) -> list[str]:
    """Time per run, the one-run time fraction with its basis, and the passes fraction."""
    cost = result.get("cost")
    if cost is None:
        return [
            f"  time per run {result['seconds_per_run']:.2f} s = {result['time_fraction']:.3f} of "
            f"one retraining ({result['retrain_seconds']:.1f} s)"
        ]
    retraining = cost["retraining"]
    basis = "process CPU time" if result.get("time_fraction_basis") == "cpu" else "calibrated time"
    return [
        f"  time per run {result['seconds_per_run']:.2f} s; time fraction {result['time_fraction']:.3f} "
        f"({basis} over one retraining timed here: {retraining['process_seconds']:.1f} s CPU, "
        f"{retraining['wall_seconds']:.1f} s wall); passes {cost['passes_fraction']:.3f} of a retraining"
    ]


def step_table(steps: list[dict[str, Any]]) -> list[str]:
    """Score, F, ratios and the ceiling after each step, on all forget data served so far."""
    lines = [
        f"  {'step':<9}{'score':>8}{'F':>7}{'retain':>8}{'test':>7}{'forget':>8}{'ceiling':>9}{'s/run':>8}"
    ]
    for number, step in enumerate(steps, 1):
        lines.append(
            f"  {number:<9}{step['score']:>8.4f}{step['forget_quality']:>7.3f}"
            f"{step['retain_ratio']:>8.3f}{step['test_ratio']:>7.3f}{step['forget_accuracy']:>8.3f}"
            f"{step['ceiling']['score']:>9.4f}{step['seconds_per_run']:>8.2f}"
        )
    return lines


def plot_result(
    path: Path,
    title: str,
    epsilons: torch.Tensor,
    ceiling_epsilons: torch.Tensor,
    unlearned_confidences: torch.Tensor,
    retrained_confidences: torch.Tensor,
) -> Path:
    """Epsilon histogram (ceiling for comparison) and a few forget examples' confidences.

    The examples are spread over the epsilon range (worst first), because the worst
    example alone hides whether the method fails broadly or on a few outliers.
    Confidences are ``[models, forget examples]``.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    grid = figure.add_gridspec(
        2, 1 + PLOTTED_EXAMPLES // 2, width_ratios=[2] + [1] * (PLOTTED_EXAMPLES // 2)
    )
    histogram = figure.add_subplot(grid[:, 0])
    finite = torch.cat([epsilons, ceiling_epsilons])
    finite = finite[torch.isfinite(finite)]
    top = float(finite.max()) if finite.numel() else 1.0
    bins = torch.linspace(0, max(top, 1e-6), 30).tolist()
    histogram.hist(epsilons.tolist(), bins=bins, alpha=0.7, label="unlearned vs retrained")
    histogram.hist(
        ceiling_epsilons.tolist(), bins=bins, histtype="step", linewidth=2, label="retrain ceiling"
    )
    no_points = max_epsilon(len(unlearned_confidences))
    histogram.axvline(
        no_points, color="grey", linestyle="--", label=f"0 points from {no_points:.0f}"
    )
    histogram.set_xlabel("per-example epsilon (lower is better)")
    histogram.set_ylabel("forget examples")
    histogram.set_title("Per-example epsilons")
    histogram.legend(loc="upper right")

    for slot, example in enumerate(_examples_to_plot(epsilons)):
        axis = figure.add_subplot(grid[slot % 2, 1 + slot // 2])
        unlearned = unlearned_confidences[:, example]
        retrained = retrained_confidences[:, example]
        both = torch.cat([unlearned, retrained])
        edges = torch.linspace(float(both.min()), float(both.max()) + 1e-6, 15).tolist()
        axis.hist(retrained.tolist(), bins=edges, alpha=0.6, label="retrained")
        axis.hist(unlearned.tolist(), bins=edges, alpha=0.6, label="unlearned")
        axis.set_title(f"forget #{example}: eps {float(epsilons[example]):.2f}", fontsize=9)
        axis.set_xlabel("logit-scaled confidence", fontsize=8)
        axis.tick_params(labelsize=7)
        if slot == 0:
            axis.legend(fontsize=7, loc="upper left")
    figure.suptitle(title)
    return atomic_write_figure(figure, path, dpi=100)


def _examples_to_plot(epsilons: torch.Tensor) -> list[int]:
    """Examples spread evenly from the worst epsilon to the best, without repeats."""
    order = torch.argsort(torch.nan_to_num(epsilons, nan=0.0, posinf=1e9), descending=True).tolist()
    if len(order) <= PLOTTED_EXAMPLES:
        return order
    picks = [round(q * (len(order) - 1)) for q in torch.linspace(0, 1, PLOTTED_EXAMPLES).tolist()]
    return [order[i] for i in dict.fromkeys(picks)]
