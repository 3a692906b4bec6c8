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
- *what is recorded*: the scenario's own fields in the result (``Prepared.record``)
  and what a stored result must match to be reused (``Prepared.reuse``).

How a scenario's board reads is the boards' business (``boards.views``).

A new scenario is one module in this package defining a frozen dataclass with
those members and ``SCENARIO = <that class>``; ``scenario_names()`` finds it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
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


class Scenario(Protocol):
    """``name`` is the result's ``mode`` and folder suffix; ``make_argument`` goes into
    the board's command (``REQUESTS=3``); ``companion`` names a scenario whose score a
    board shows beside this one's."""

    name: str
    make_argument: str
    companion: str | None

    def prepare(self, preset: Preset, context: Context) -> Prepared: ...


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
