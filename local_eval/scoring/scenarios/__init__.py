"""The scenario protocol: what differs between ways of scoring an unlearning method.

A scenario answers three questions, and the one runner (``scoring.runner``) does
the rest for every scenario alike:

- *which reference sets*: ``prepare()`` builds (or loads) the models a method is
  scored against, one ``Step`` per call the method gets in a run, each missing
  model a task of its context's executor (``scoring.context``, ``scoring.executors``);
- *how the method is served*: each ``Step`` says what the loaders hold, what the
  call is scored on and what it is offered beyond the loaders (through
  ``methods.common.scenario_context()``); the runner calls the method once per
  step on one model, so state carries over from step to step;
- *what is reported*: the scenario's own fields in the result (``Prepared.record``),
  what a stored result must match to be reused (``Prepared.reuse``) and how its
  leaderboard reads (``board()``).

A new scenario is one module in this package defining a frozen dataclass with
those members and ``SCENARIO = <that class>``; ``scenario_names()`` finds it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Protocol

from local_eval.data.roles import EvalData
from local_eval.errors import EvalError
from local_eval.scoring.context import Context
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import References

COMPETITION = "standard"


@dataclasses.dataclass(frozen=True)
class Step:
    """One call of the method within a run.

    ``given`` is what the retain/forget/validation loaders hold, ``refs`` what the
    model is measured on (``refs.data``) and compared with afterwards; ``offered``
    is what ``methods.common.scenario_context()`` returns during the call;
    ``files`` are the keys of ``offered`` whose values are paths of files the call
    may read: the runner ships their content with each run, since a worker of
    another machine sees none of this one's files.
    """

    refs: References
    given: EvalData
    offered: dict[str, Any] | None = None
    label: str = ""
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A scenario made concrete for one preset: its steps and what its results record."""

    steps: tuple[Step, ...]
    record: dict[str, Any]
    reuse: dict[str, Any]
    keep_net_because: str = (
        "the competition notebook saves the `net` it passed in, so modify `net` in place "
        "(e.g. net.load_state_dict(other.state_dict()))"
    )

    @property
    def final(self) -> References:
        """The references of the last step: what a run is finally scored against."""
        return self.steps[-1].refs


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
    doing: str
    left_out_label: str = "Registered but not scored in this mode (left out with `--methods`)"
    # The competition's own setting: the board says how its order compares with Kaggle's.
    compares_with_kaggle: bool = False


class Scenario(Protocol):
    """``name`` is the result's ``mode`` and folder suffix; ``make_argument`` goes into
    the board's command (``REQUESTS=3``); ``companion`` names a scenario whose score a
    board shows beside this one's."""

    name: str
    make_argument: str
    companion: str | None

    def prepare(self, preset: Preset, context: Context) -> Prepared: ...

    def board(self, preset: Preset, prepared: Prepared, generated: str) -> Board: ...

    @staticmethod
    def describe(result: dict[str, Any]) -> str: ...


def scenario_names() -> dict[str, type]:
    """Every scenario module of this package, by the name its results carry."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "SCENARIO", None)
        if cls is not None:
            found[cls.name] = cls
    return found


def get_scenario(name: str, **options: Any) -> Scenario:
    """The scenario called ``name`` with ``options`` (e.g. ``k=3``), or a clear error."""
    known = scenario_names()
    if name not in known:
        raise EvalError(f"No scenario named {name!r}: choose one of {', '.join(sorted(known))}.")
    try:
        return known[name](**options)
    except TypeError as exc:
        raise EvalError(f"Scenario {name!r}: {exc}.") from None


def scenario_of(result: dict[str, Any]) -> type:
    """The scenario class a stored result was made in (results without ``mode`` are standard)."""
    return scenario_names()[result.get("mode", COMPETITION)]


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
