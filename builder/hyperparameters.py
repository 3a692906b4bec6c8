"""Hyperparameters: instantiate the class with overrides and render values as literals.

Values are read from a real instance, so ``__init__`` can compute them (lists of
learning-rate factors, derived sizes); they reach the notebook through ``repr``,
so only values that ``repr`` round-trips are accepted.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping

from builder.errors import USER_CODE_ERRORS, BuildError, describe

_LITERAL_TYPES = (bool, int, float, complex, str, bytes, type(None))


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["lr=0.01", "mode=abc"]`` -> ``{"lr": 0.01, "mode": "abc"}`` (bare words stay strings)."""
    overrides: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise BuildError(f"--set {pair!r}: expected NAME=VALUE, for example --set lr=0.01")
        try:
            overrides[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            overrides[name] = text.strip()
    return overrides


def instantiate(cls: type, overrides: Mapping[str, object]) -> object:
    """An instance with ``overrides`` passed to ``__init__`` (or set, for plain attributes)."""
    from methods.base import NAME, new_method

    if NAME in overrides:
        raise BuildError(
            f"--set {NAME}: `{NAME}` is {cls.__name__}'s identity (the name it is registered and "
            "built under), not a hyperparameter; change the class attribute `name` instead."
        )
    signature = inspect.signature(cls.__init__)
    accepted = {
        name
        for name, p in signature.parameters.items()
        if name not in ("self", NAME) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    init_args = {k: v for k, v in overrides.items() if k in accepted}
    try:
        instance = new_method(cls, **init_args)
    except USER_CODE_ERRORS as exc:
        raise BuildError(
            f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in init_args.items())}) failed with "
            f"{describe(exc)}. Hyperparameters need defaults so the class can be "
            "built without arguments."
        ) from None
    for name, value in overrides.items():
        if name in init_args:
            continue
        if name not in vars(instance):
            known = ", ".join(sorted(accepted | set(vars(instance)) - {NAME})) or "none"
            raise BuildError(
                f"--set {name}: {cls.__name__} has no hyperparameter {name!r} (known: {known})"
            )
        setattr(instance, name, value)
    return instance


def render_value(value: object, where: str) -> str:
    """``repr(value)``, accepted only when evaluating it gives the value back."""
    text = repr(value)
    if not _is_literal(value):
        raise BuildError(
            f"{where} = {text[:60]} ({type(value).__name__}) cannot be written into the notebook: "
            "hyperparameters must be literals (numbers, strings, booleans, None, or "
            "lists/tuples/dicts of them). Build other objects inside run()."
        )
    return text


def _is_literal(value: object) -> bool:
    if isinstance(value, _LITERAL_TYPES):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            return False
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return type(value) in (list, tuple, set) and all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return type(value) is dict and all(_is_literal(k) and _is_literal(v) for k, v in value.items())
    return False
