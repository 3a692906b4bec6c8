"""The search space of a tuning run: the method's declaration, ``--space`` on top.

A method declares ``search_space`` beside its hyperparameters (see
``methods/search_space.py``); ``--space "lr=log:1e-4:1e-1 epochs=int:1:5"``
replaces or adds dimensions by name, and pinning one (``mode=choice:a``) takes it
out of the search. Everything here fails with one line naming the token or the
method's file.
"""

from __future__ import annotations

import ast
from typing import Any

import optuna

from local_eval.errors import EvalError
from local_eval.scoring.method_calls import method_location
from methods.base import BaseMethod
from methods.search_space import Choice, Dimension, IntRange, LogUniform, Uniform

SPACE_GRAMMAR = (
    "NAME=log:LOW:HIGH, NAME=float:LOW:HIGH, NAME=int:LOW:HIGH, NAME=logint:LOW:HIGH "
    "or NAME=choice:A,B,C"
)


def declared_space(method_cls: type[BaseMethod]) -> dict[str, Dimension]:
    """The method's ``search_space`` class attribute, checked; empty when it has none."""
    declared = getattr(method_cls, "search_space", None)
    if declared is None:
        return {}
    where = method_location(method_cls)
    if not isinstance(declared, dict):
        raise EvalError(
            f"{where}: search_space must be a dict from hyperparameter name to LogUniform, "
            f"Uniform, IntRange or Choice (methods/search_space.py), not {type(declared).__name__}."
        )
    for name, dimension in declared.items():
        if not isinstance(dimension, LogUniform | Uniform | IntRange | Choice):
            raise EvalError(
                f"{where}: search_space[{name!r}] is {dimension!r}: use LogUniform, Uniform, "
                "IntRange or Choice from methods/search_space.py."
            )
    return dict(declared)


def parse_space(
    tokens: list[str], hyperparameters: set[str] | None = None, method: str = ""
) -> dict[str, Dimension]:
    """``["lr=log:1e-4:1e-1", "epochs=int:1:5"]`` as dimensions; a bad token is named.

    With ``hyperparameters``, a token naming none of them is refused too.
    """
    space: dict[str, Dimension] = {}
    for token in (t for text in tokens for t in text.split()):
        name, sep, spec = token.partition("=")
        kind, _, rest = spec.partition(":")
        if not sep or not name.isidentifier() or not rest:
            raise EvalError(f"--space token {token!r}: expected {SPACE_GRAMMAR}.")
        try:
            space[name] = _dimension(kind, rest)
        except (ValueError, SyntaxError) as exc:
            raise EvalError(f"--space token {token!r}: {exc}; expected {SPACE_GRAMMAR}.") from None
        if hyperparameters is not None and name not in hyperparameters:
            raise EvalError(
                f"--space token {token!r}: method {method!r} has no hyperparameter {name!r}; its "
                f"hyperparameters are {', '.join(sorted(hyperparameters)) or '(none)'}."
            )
    return space


def _dimension(kind: str, rest: str) -> Dimension:
    if kind == "choice":
        return Choice(tuple(_literal(part) for part in rest.split(",")))
    low_text, sep, high_text = rest.partition(":")
    if not sep or ":" in high_text:
        raise ValueError(f"{kind} needs exactly LOW:HIGH")
    if kind in ("int", "logint"):
        return IntRange(int(low_text), int(high_text), log=kind == "logint")
    if kind == "log":
        return LogUniform(float(low_text), float(high_text))
    if kind == "float":
        return Uniform(float(low_text), float(high_text))
    raise ValueError(f"unknown kind {kind!r}")


def _literal(text: str) -> Any:
    """Numbers, booleans and None as Python reads them; anything else is a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def search_space(
    method_cls: type[BaseMethod], defaults: dict[str, Any], tokens: list[str]
) -> dict[str, Dimension]:
    """The declared space with ``--space`` applied; refused when empty or naming unknown names."""
    space = declared_space(method_cls)
    for name in space:
        if name not in defaults:
            raise EvalError(
                f"{method_location(method_cls)}: search_space names {name!r}, which is not a "
                f"hyperparameter of {method_cls.__name__}; its hyperparameters are "
                f"{', '.join(sorted(defaults)) or '(none)'}."
            )
    space.update(parse_space(tokens, set(defaults), method_cls.name))
    searched = {name: d for name, d in space.items() if not _pinned(d)}
    if not searched:
        raise EvalError(
            f"{method_location(method_cls)}: method {method_cls.name!r} declares no search_space "
            "to tune: add e.g. `search_space = {\"lr\": LogUniform(1e-4, 1e-1)}` beside its "
            "hyperparameters (methods/search_space.py), or pass --space \"lr=log:1e-4:1e-1\"."
        )
    return space


def _pinned(dimension: Dimension) -> bool:
    return isinstance(dimension, Choice) and len(dimension.options) == 1


def suggest(trial: optuna.Trial, space: dict[str, Dimension]) -> dict[str, Any]:
    """One value per dimension, drawn by the study's sampler."""
    params: dict[str, Any] = {}
    for name, d in space.items():
        if isinstance(d, LogUniform):
            params[name] = trial.suggest_float(name, d.low, d.high, log=True)
        elif isinstance(d, Uniform):
            params[name] = trial.suggest_float(name, d.low, d.high)
        elif isinstance(d, IntRange):
            params[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            params[name] = trial.suggest_categorical(name, d.options)
    return params


def contains(dimension: Dimension, value: Any) -> bool:
    """Whether ``value`` (a default) is one the dimension can produce."""
    if isinstance(dimension, Choice):
        return value in dimension.options
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(dimension, IntRange) and not float(value).is_integer():
        return False
    return dimension.low <= value <= dimension.high


def describe(dimension: Dimension) -> str:
    """The ``--space`` spelling of a dimension, for reports and stored study settings."""
    if isinstance(dimension, LogUniform):
        return f"log:{dimension.low!r}:{dimension.high!r}"
    if isinstance(dimension, Uniform):
        return f"float:{dimension.low!r}:{dimension.high!r}"
    if isinstance(dimension, IntRange):
        return f"{'logint' if dimension.log else 'int'}:{dimension.low}:{dimension.high}"
    return "choice:" + ",".join(repr(option) for option in dimension.options)


def set_line(params: dict[str, Any]) -> str:
    """``SET="lr=0.0123 epochs=3"``: what ``make notebook`` / ``make submission`` take."""
    return 'SET="' + " ".join(f"{name}={value!r}" for name, value in params.items()) + '"'
