"""What a tuning run found, told so that it cannot flatter: held-out scores, cost, importances.

The best trial was chosen on the tuning split, so its tuning score is biased
upwards; it and the method's defaults are scored again on the held-out split no
trial saw, and the gap between the two is the first thing the report shows.
Held-out scores are kept in the study (keyed by the parameters), so reprinting
a report costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from local_eval.errors import EvalError
from local_eval.store.files import atomic_write_figure, atomic_write_text, repo_root
from local_eval.tuning.importance import param_importances
from local_eval.tuning.scorer import ScoreTrial
from local_eval.tuning.space import describe, set_line
from local_eval.tuning.study import HELDOUT_SPLIT, TUNING_SPLIT, params_text, trial_label
from methods.base import BaseMethod
from methods.search_space import Dimension


def cached_score(
    study: optuna.Study,
    score_trial: ScoreTrial,
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    split: int,
    n_models: int,
    label: str,
) -> dict[str, Any]:
    """A score with its interval, kept in the study's attributes, computed the first time asked.

    ``label`` names where the run is filed: a trial's own label reuses its runs
    and only adds the interval.
    """
    canonical = json.dumps(params, sort_keys=True, default=repr)
    key = f"score:{split}:{n_models}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
    if key not in study.user_attrs:
        result = dict(
            score_trial(method_cls, params, split, n_models, label=label, intervals=True)
        )
        study.set_user_attr(key, {**result, "params": params})
    return {k: v for k, v in study.user_attrs[key].items() if k != "params"}


def summarise(
    study: optuna.Study,
    method_cls: type[BaseMethod],
    space: dict[str, Dimension],
    defaults: dict[str, Any],
    score_trial: ScoreTrial,
    n_models: int,
) -> dict[str, Any]:
    """Counts, best trial and defaults on both splits, Pareto front and importances."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise EvalError(
            f"No trial of study {study.study_name!r} completed "
            f"({len(trials)} trials: see the failures above); nothing to report."
        )
    best = max(complete, key=lambda t: (t.value, -t.number))
    default_params = {name: defaults[name] for name in space}
    defaults_trial = next((t for t in complete if t.params == default_params), None)

    def scored(params: dict[str, Any], split: int, label: str) -> dict[str, Any]:
        return cached_score(study, score_trial, method_cls, params, split, n_models, label)

    best_tuning = scored(dict(best.params), TUNING_SPLIT, trial_label(best.number))
    defaults_tuning = scored(
        default_params,
        TUNING_SPLIT,
        trial_label(defaults_trial.number) if defaults_trial is not None else "defaults",
    )
    best_heldout = scored(best.params, HELDOUT_SPLIT, f"heldout-trial-{best.number:04d}")
    defaults_heldout = scored({}, HELDOUT_SPLIT, "heldout-defaults")
    evaluator, importances, directions = param_importances(study, space)
    return {
        "method": method_cls.name,
        "n_models": n_models,
        "space": {name: describe(d) for name, d in space.items()},
        "counts": {
            state.name.lower(): sum(t.state == state for t in trials)
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
        "best": {
            "trial": best.number,
            "params": dict(best.params),
            "tuning": best_tuning,
            "heldout": best_heldout,
        },
        "defaults": {
            "trial": defaults_trial.number if defaults_trial is not None else None,
            "params": default_params,
            "tuning": defaults_tuning,
            "heldout": defaults_heldout,
        },
        "pareto": [_front_row(t) for t in pareto_front(complete)],
        "importance": {"evaluator": evaluator, "values": importances, "directions": directions},
        "set_line": set_line(dict(best.params)),
    }


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials no other beats on score without costing more (time fraction; passes when counted).

    Passes join the costs only when every trial has them, so trials compare on the same terms.
    """
    rows = [t for t in trials if "full" in t.user_attrs]
    with_passes = all(t.user_attrs["full"].get("passes") is not None for t in rows)

    def costs(t: FrozenTrial) -> tuple[float, ...]:
        full = t.user_attrs["full"]
        return (-full["score"], full["time_fraction"]) + ((full["passes"],) if with_passes else ())

    def dominated(t: FrozenTrial) -> bool:
        mine = costs(t)
        return any(
            all(a <= b for a, b in zip(costs(o), mine)) and costs(o) != mine for o in rows
        )

    front = [t for t in rows if not dominated(t)]
    return sorted(front, key=lambda t: t.user_attrs["full"]["time_fraction"])


def _front_row(trial: FrozenTrial) -> dict[str, Any]:
    full = trial.user_attrs["full"]
    return {
        "trial": trial.number,
        "score": full["score"],
        "time_fraction": full["time_fraction"],
        "passes": full.get("passes"),
        "params": dict(trial.params),
    }


def interval_text(score: dict[str, Any]) -> str:
    interval = score.get("interval")
    return "n/a" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _passes_text(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def summary_lines(summary: dict[str, Any], study_file: Path, report_file: Path | None) -> list[str]:
    """What the command prints: both splits for the best trial and the defaults, then SET=."""
    counts, best, defaults = summary["counts"], summary["best"], summary["defaults"]
    lines = [
        f"{summary['method']}: {sum(counts.values())} trials ({counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed), N={summary['n_models']}; "
        f"study {study_file}",
        f"  {'':<16}{'tuning':>9}{'held-out':>10}{'gap':>9}   interval (tuning / held-out)",
    ]
    for title, row in ((f"best (#{best['trial']})", best), ("defaults", defaults)):
        tuning, heldout = row["tuning"]["score"], row["heldout"]["score"]
        lines.append(
            f"  {title:<16}{tuning:>9.4f}{heldout:>10.4f}{heldout - tuning:>+9.4f}   "
            f"{interval_text(row['tuning'])} / {interval_text(row['heldout'])}"
        )
    if best["tuning"].get("interval") is None:
        lines.append("  (intervals n/a: the scorer gives none yet)")
    front = ", ".join(
        f"#{row['trial']} {row['score']:.3f} at {row['time_fraction']:.3f}" for row in summary["pareto"]
    )
    lines.append(f"  Pareto front (score at time fraction): {front}")
    if report_file is not None:
        lines.append(f"  report: {report_file}")
    lines.append(summary["set_line"])
    return lines


def report_paths(docs_dir: Path, method: str, preset: str) -> dict[str, Path]:
    """``docs/tuning/<method>.md`` for the cpu preset, ``<method>-<preset>.md`` for others."""
    stem = method if preset == "cpu" else f"{method}-{preset}"
    folder = Path(docs_dir)
    return {
        "markdown": folder / f"{stem}.md",
        "history": folder / f"{stem}-history.png",
        "importance": folder / f"{stem}-importance.png",
        "pareto": folder / f"{stem}-pareto.png",
    }


def write_report(
    study: optuna.Study,
    summary: dict[str, Any],
    paths: dict[str, Path],
    *,
    preset: str,
    study_file: Path,
    prune_at: int,
    seed: int,
) -> Path:
    """The Markdown report and its three PNGs, each written whole or not at all."""
    atomic_write_figure(plot_history(study, summary), paths["history"], dpi=110)
    atomic_write_figure(plot_importance(summary), paths["importance"], dpi=110)
    atomic_write_figure(plot_pareto(study, summary), paths["pareto"], dpi=110)
    counts, best, defaults = summary["counts"], summary["best"], summary["defaults"]
    importance = summary["importance"]
    pruning = (
        f"trials scored first on {prune_at} runs and pruned below the median of completed trials' "
        f"first stages (after 5 completed trials), survivors on all {summary['n_models']}"
        if prune_at
        else "none (N too small for a first stage)"
    )
    lines = [
        f"# Tuning `{summary['method']}` on the {preset} preset",
        "",
        f"Optuna study `{_shown_path(study_file)}` (TPE, seed {seed}); {sum(counts.values())} trials: "
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed. "
        f"N = {summary['n_models']} runs and references per score. Pruning: {pruning}.",
        "",
        "Trials are scored on the tuning split; the best trial and the defaults are scored again "
        "on a held-out split (other data, other forget persons, other reference models) that no "
        "trial saw. The gap is held-out minus tuning.",
        "",
        "| | tuning | held-out | gap | interval tuning | interval held-out | time fraction (held-out) |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for title, row in ((f"best (trial {best['trial']})", best), ("defaults", defaults)):
        tuning, heldout = row["tuning"]["score"], row["heldout"]["score"]
        lines.append(
            f"| {title} | {tuning:.4f} | {heldout:.4f} | {heldout - tuning:+.4f} | "
            f"{interval_text(row['tuning'])} | {interval_text(row['heldout'])} | "
            f"{row['heldout']['time_fraction']:.3f} |"
        )
    if best["tuning"].get("interval") is None:
        lines += ["", "Intervals: n/a, the scorer gives none yet."]
    lines += [
        "",
        f"Best hyperparameters: {params_text(best['params'], ', ')}",
        "",
        "```",
        f"make submission METHOD={summary['method']} {summary['set_line']}",
        "```",
        "",
        "## Search space",
        "",
        "| hyperparameter | range | default |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{name}` | `{spelling}` | `{defaults['params'][name]!r}` |"
        for name, spelling in summary["space"].items()
    ]
    lines += [
        "",
        "## Cost: Pareto front of score against time fraction",
        "",
        "Trials no other trial beats on score at a lower cost. Costs are the time fraction (the "
        "method's process CPU time over one retraining's, both timed in the trial's run) and, "
        "where every trial has them, the counted example passes over one retraining's.",
        "",
        "| trial | score | time fraction | passes | hyperparameters |",
        "|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {row['trial']} | {row['score']:.4f} | {row['time_fraction']:.3f} | "
        f"{_passes_text(row['passes'])} | {params_text(row['params'], ', ')} |"
        for row in summary["pareto"]
    ]
    lines += [
        "",
        f"![Pareto front]({paths['pareto'].name})",
        "",
        "## Optimisation history",
        "",
        f"![history]({paths['history'].name})",
        "",
        f"## Parameter importances ({importance['evaluator']})",
        "",
    ]
    if importance["values"]:
        lines += ["| hyperparameter | importance | Spearman rho |", "|---|---:|---:|"]
        for name, value in importance["values"].items():
            rho = importance["directions"].get(name)
            lines.append(f"| `{name}` | {value:.3f} | {'n/a' if rho is None else f'{rho:+.3f}'} |")
        lines += ["", f"![importances]({paths['importance'].name})"]
    else:
        lines.append("Not computed: it needs two completed trials whose values differ.")
    return atomic_write_text(paths["markdown"], "\n".join(lines) + "\n")


def plot_history(study: optuna.Study, summary: dict[str, Any]) -> Figure:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.scatter([t.number for t in complete], [t.value for t in complete], label="complete (all runs)")
    if pruned:
        ax.scatter(
            [t.number for t in pruned],
            [next(iter(t.intermediate_values.values())) for t in pruned],
            marker="x", color="grey", label="pruned (first stage)",
        )
    best_so_far, running = [], float("-inf")
    for t in sorted(complete, key=lambda t: t.number):
        running = max(running, t.value)
        best_so_far.append((t.number, running))
    ax.step(*zip(*best_so_far), where="post", color="C1", label="best so far")
    ax.axhline(summary["best"]["heldout"]["score"], color="C2", linestyle="--", label="best, held-out")
    ax.axhline(summary["defaults"]["tuning"]["score"], color="C3", linestyle=":", label="defaults, tuning")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("score")
    ax.set_title(f"{summary['method']}: optimisation history")
    ax.legend(fontsize="small")
    return fig


def plot_importance(summary: dict[str, Any]) -> Figure:
    values = summary["importance"]["values"]
    fig = Figure(figsize=(6, 1.2 + 0.4 * max(len(values), 1)))
    ax = fig.subplots()
    if values:
        names = list(values)[::-1]
        ax.barh(names, [values[n] for n in names])
        ax.set_xlabel(summary["importance"]["evaluator"])
    else:
        ax.text(0.5, 0.5, "needs two completed trials", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"{summary['method']}: parameter importances")
    fig.tight_layout()
    return fig


def plot_pareto(study: optuna.Study, summary: dict[str, Any]) -> Figure:
    complete = [
        t for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE and "full" in t.user_attrs
    ]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.scatter(
        [t.user_attrs["full"]["time_fraction"] for t in complete], [t.value for t in complete],
        color="lightgrey", label="trials",
    )
    front = summary["pareto"]
    ax.plot([r["time_fraction"] for r in front], [r["score"] for r in front], "o-", color="C0",
            label="Pareto front")
    ax.set_xlabel("time fraction (of one retraining)")
    ax.set_ylabel("score (tuning split)")
    ax.set_title(f"{summary['method']}: score against cost")
    ax.legend(fontsize="small")
    return fig


def _shown_path(path: Path) -> str:
    """Relative to the checkout when inside it, so committed reports name no one's home folder."""
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)
