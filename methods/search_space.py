"""Search-space declarations a method keeps beside its hyperparameters.

A method says which values of its hyperparameters are worth trying in a class
attribute, ``search_space = {"lr": LogUniform(1e-4, 1e-1), ...}``, so the range
lives next to the default it brackets and travels with the method's file. The
tuner (``make tune``) reads it; the builder never does, since ``run()`` does not
refer to it, so it is neither a hyperparameter nor a notebook constant. Standard
library only: this module is importable wherever a method is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LogUniform:
    """A positive float drawn uniformly in log space: learning rates, weight decays."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high and math.isfinite(self.high)):
            raise ValueError(
                f"LogUniform({self.low!r}, {self.high!r}): needs 0 < low < high, both finite"
            )


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly between ``low`` and ``high``: fractions, scales."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low < self.high and math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"Uniform({self.low!r}, {self.high!r}): needs low < high, both finite")


@dataclass(frozen=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive (in log space with ``log=True``)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and self.low < self.high):
            raise ValueError(f"IntRange({self.low!r}, {self.high!r}): needs integers, low < high")
        if self.log and self.low < 1:
            raise ValueError(f"IntRange({self.low!r}, {self.high!r}, log=True): needs low >= 1")


@dataclass(frozen=True)
class Choice:
    """One of a few literal values (numbers, strings, booleans, None)."""

    options: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.options, tuple) or not self.options:
            raise ValueError(f"Choice({self.options!r}): needs a non-empty tuple of values")
        literal = (bool, int, float, str, type(None))
        if not all(isinstance(option, literal) for option in self.options):
            raise ValueError(
                f"Choice({self.options!r}): options must be numbers, strings, booleans or None"
            )


Dimension = LogUniform | Uniform | IntRange | Choice

__all__ = ["Choice", "Dimension", "IntRange", "LogUniform", "Uniform"]
