"""How each scenario's board reads: its header, its columns, its picture's title, its summary line.

Scenarios (``scoring.scenarios``) say what to compute; this module says how to
show it. A view is a function from the scenario, the preset and the prepared
scenario to a ``Board``; ``VIEWS`` holds one per scenario name, with the phrase
its results' summary lines add. A scenario without one is shown as the standard
board shows its own (its name in the title), so a new scenario is scored and
shown before anyone writes its view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from local_eval.scoring.presets import Preset
from local_eval.scoring.scenarios import COMPETITION, Prepared, Scenario
from local_eval.scoring.scenarios.federated import FORGET_CLIENT, Federated


@dataclasses.dataclass(frozen=True)
class Column:
    """A leaderboard column after rank and method: its header and how a row fills it."""

    header: str
    cell: Callable[[dict[str, Any]], str]


@dataclasses.dataclass(frozen=True)
class Board:
    """How a scenario's leaderboard reads; ``boards.leaderboard`` renders every one alike."""

    title: str
    intro: str
    explanation: str
    columns: tuple[Column, ...]
    picture_title: str
    left_out_label: str = "Registered but not scored in this mode (left out with `--methods`)"
    # The competition's own setting: the board says how its order compares with Kaggle's.
    compares_with_kaggle: bool = False


def ratio_columns(final_f: str = "F") -> tuple[Column, ...]:
    """F, the two ratios, the time fraction and the passes: the columns every board shows."""
    return (
        Column(final_f, lambda row: f"{row['forget_quality']:.4f}"),
        Column("retain ratio", lambda row: f"{row['retain_ratio']:.3f}"),
        Column("test ratio", lambda row: f"{row['test_ratio']:.3f}"),
        Column("time fraction", lambda row: f"{row['time_fraction']:.3f}"),
        Column("passes", _passes),
    )


def score_cell(row: dict[str, Any]) -> str:
    """``score [lo, hi]`` where the row has intervals, the score alone otherwise."""
    record = row.get("intervals")
    if record is None:
        return f"{row['score']:.4f}"
    low, high = record["score"]
    return f"{row['score']:.4f} [{low:.4f}, {high:.4f}]"


def _passes(row: dict[str, Any]) -> str:
    fraction = (row.get("cost") or {}).get("passes_fraction")
    return "" if fraction is None else f"{fraction:.3f}"


def _tied(row: dict[str, Any]) -> str:
    return "tied" if row.get("tied") else ""


def _versus_leader(row: dict[str, Any]) -> str:
    """The paired difference to the leader; blank for the leader itself and where none was computed."""
    found = row.get("vs_leader")
    if found is None:
        return ""
    return f"{found['estimate']:+.4f} [{found['low']:+.4f}, {found['high']:+.4f}]"


SCORE = Column("score [lo, hi]", score_cell)
# Rows whose score interval overlaps the leader's (``boards.leaderboard`` sets ``tied``),
# and each row's paired interval against the leader on the same references (``vs_leader``).
TIED = Column("tied with #1", _tied)
VS_LEADER = Column("Δ vs leader [lo, hi]", _versus_leader)
INTERVAL_COLUMNS = (SCORE, TIED, VS_LEADER)


def diagnostic_cell(name: str, digits: int) -> Callable[[dict[str, Any]], str]:
    """A ``scoring.diagnostics`` statistic with its interval; blank where the row has none."""

    def cell(row: dict[str, Any]) -> str:
        found = (row.get("intervals") or {}).get("diagnostics")
        if found is None:
            return ""
        low, high = found[name]["interval"]
        return f"{found[name]['estimate']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    return cell


# KLoM, the second metric, and what the score punishes (``scoring.diagnostics``).
DIAGNOSTIC_COLUMNS = (
    Column("KLoM [lo, hi]", diagnostic_cell("klom", 2)),
    Column("shift [lo, hi]", diagnostic_cell("mean_shift", 2)),
    Column("spread ratio [lo, hi]", diagnostic_cell("spread_ratio", 2)),
)


def board_view(scenario: Scenario, preset: Preset, prepared: Prepared, generated: str = "") -> Board:
    """The scenario's board (``generated``: the date-and-device sentence its header ends with)."""
    view = VIEWS.get(scenario.name)
    board = view.board if view else standard_view
    return board(scenario, preset, prepared, generated)


def standard_view(scenario: Scenario, preset: Preset, prepared: Prepared, generated: str) -> Board:
    data = prepared.final.data
    own = scenario.name == COMPETITION
    mode = "" if own else f", {scenario.name}"
    return Board(
        title=f"Leaderboard: preset `{preset.name}`{mode}",
        intro=(
            f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} unlearned "
            f"models per method against N retrained ones; forget set {len(data.forget)} images "
            f"({preset.forget_mode}, {preset.forget_fraction:.0%}), retain {len(data.retain)}, "
            f"validation {len(data.val)}, test {len(data.test)}. {generated}."
        ),
        explanation=(
            "Score = F x retain ratio x test ratio (the competition's metric, computed locally). "
            "The retrain ceiling scores the other N retrained models as if they were a method: "
            "the best score reachable at this N. s / run and the fastest run are wall seconds, "
            "for scale only: other jobs on the machine lengthen them. KLoM (the Easy Data "
            "Unlearning Bench's metric) is the mean over forget examples of the KL divergence "
            "between the method's and the retrained models' binned margins: 0 is retraining, "
            "lower is better, and the ceiling's is its floor at this N. *shift*: the method's "
            "mean logit-scaled confidence on a forget example minus the retrained models' "
            "(above 0: it still remembers; below 0: it over-forgot). *spread ratio*: its "
            "run-to-run spread over theirs (below 1: runs too alike). The score punishes both."
        ),
        columns=(
            *INTERVAL_COLUMNS,
            *DIAGNOSTIC_COLUMNS,
            *ratio_columns(),
            Column("s / run", lambda row: f"{row['seconds_per_run']:.2f}"),
            Column("fastest run (s)", lambda row: f"{_fastest(row):.2f}"),
        ),
        picture_title=f"Leaderboard: preset {preset.name}{mode}, N = {preset.n_models}",
        left_out_label="Registered but not scored in this run"
        if own
        else Board.left_out_label,
        compares_with_kaggle=own,
    )


def _fastest(row: dict[str, Any]) -> float:
    """The quickest run's seconds: other load on the machine only ever adds time."""
    seconds = [run["seconds"] for run in row.get("runs", ()) if "seconds" in run]
    return min(seconds) if seconds else row["seconds_per_run"]


def requests_view(scenario: Any, preset: Preset, prepared: Prepared, generated: str) -> Board:
    final = prepared.final
    sizes, grouping = prepared.record["request_sizes"], prepared.record["grouping"]
    k = scenario.k
    return Board(
        title=f"Leaderboard: preset `{preset.name}`, {k} sequential forget requests",
        intro=(
            f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} runs per "
            f"method. The forget set ({len(final.data.forget)} images, {preset.forget_mode}) is "
            f"served as {k} requests of {', '.join(str(n) for n in sizes)} images (grouped by "
            f"{grouping}); each run serves them in order on one model, starting from the "
            "original. After request j the model is scored on all forget images served so far "
            f"against models retrained without them. {generated}."
        ),
        explanation=(
            "Score = F x retain ratio x test ratio after each request; the ranking uses the last "
            "one. The retrain ceiling scores the other N retrained models of each step as if they "
            "were a method; its interval, ties and the difference to the leader are those of the "
            "final score. Time fraction and passes count all requests of one run."
        ),
        columns=(
            *(_after(j) for j in range(k - 1)),
            Column(f"after {k}", score_cell),
            TIED,
            VS_LEADER,
            *ratio_columns("F (final)"),
        ),
        picture_title=f"{k} sequential requests: preset {preset.name}, N = {preset.n_models}",
    )


def _after(j: int) -> Column:
    return Column(f"after {j + 1}", lambda row: score_cell(row["steps"][j]))


def federated_view(scenario: Federated, preset: Preset, prepared: Prepared, generated: str) -> Board:
    data = prepared.final.data
    clients = scenario.clients
    return Board(
        title=f"Leaderboard: preset `{preset.name}`, federated ({clients} clients)",
        intro=(
            f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} unlearned "
            f"models per method against N retrained ones. {clients} clients hold disjoint "
            f"shards of the {len(data.retain) + len(data.forget)} training images; client "
            f"{FORGET_CLIENT} also holds the whole forget set ({len(data.forget)} images, "
            f"{preset.forget_mode}). The original and the retrained models are trained with "
            f"FedAvg ({scenario.resolved_rounds(preset)} rounds of {scenario.local_epochs} local "
            "epoch(s)); methods run on the server, and those that ask for it (`ftsu`) get the "
            f"last {scenario.kept_rounds} rounds' aggregated updates and client {FORGET_CLIENT}'s "
            f"contributions. {generated}."
        ),
        explanation=(
            "Score = F x retain ratio x test ratio (the competition's metric) against the FedAvg "
            "retrained models; *standard* is the same method's score in the ordinary centralised "
            "setting at the same N (blank when not scored). The retrain ceiling scores the other "
            "N FedAvg retrained models as if they were a method."
        ),
        columns=(
            *INTERVAL_COLUMNS,
            *ratio_columns(),
            Column("standard score", _companion_score),
        ),
        picture_title=f"Federated ({clients} clients): preset {preset.name}, N = {preset.n_models}",
    )


def _companion_score(row: dict[str, Any]) -> str:
    other = row.get("companion")
    return "" if other is None else format(other["score"], ".4f")


def _requests_summary(result: dict[str, Any]) -> str:
    return (
        f", {result['k']} sequential requests ({result['grouping']}, sizes "
        f"{result['request_sizes']})"
    )


def _federated_summary(result: dict[str, Any]) -> str:
    fed = result["federation"]
    return (
        f", federated: {fed['clients']} clients, {fed['rounds']} FedAvg rounds of "
        f"{fed['local_epochs']} local epoch(s), forget set on client {fed['forget_client']}"
    )


@dataclasses.dataclass(frozen=True)
class View:
    """A scenario's board, and what a result's summary line adds after the preset."""

    board: Callable[[Any, Preset, Prepared, str], Board]
    summary: Callable[[dict[str, Any]], str]


VIEWS: dict[str, View] = {
    COMPETITION: View(standard_view, lambda result: ""),
    "requests": View(requests_view, _requests_summary),
    "federated": View(federated_view, _federated_summary),
}


def describe(result: dict[str, Any]) -> str:
    """The scenario's own settings for a result's summary line; a scenario without a view, by name."""
    mode = result.get("mode", COMPETITION)
    view = VIEWS.get(mode)
    return view.summary(result) if view else f", {mode}"
