"""Do two boards order the same methods alike? Kendall's tau between two written boards.

A narrow network, a smaller preset or another split is worth using in place of
the dearer set-up only if it ranks methods as that set-up does; this reads two
boards the kit wrote (``docs/leaderboard-*.json``, the data beside each ``.md``)
and says how alike their orders of the methods both scored are, with the chance
that a random order agrees as well. It reads the committed boards rather than
cached results so that boards built on different machines and sessions (the faithful board on a cluster, the
cpu board on a laptop) can be set side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_eval.boards.board_data import FORMAT
from local_eval.boards.kaggle_order import (
    MIN_METHODS,
    chance_of_agreement,
    kendall_tau,
    share_text,
)
from local_eval.errors import EvalError


@dataclass(frozen=True)
class Board:
    """A written board's scores and the line that says what set-up produced them."""

    path: Path
    title: str  # "Leaderboard: preset `cpu`", with ", split J" where one split was read
    setup: str
    scores: dict[str, float]
    # The score's bootstrap interval where the board has one (a mean over splits has none).
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderAgreement:
    methods: tuple[str, ...]  # scored on both boards, in the first board's order
    tau: float
    chance: float | None  # None where a board has tied scores (the count assumes no ties)
    ranks_a: dict[str, int]
    ranks_b: dict[str, int]


METRICS = ("score", "klom")


def read_board(path: str | Path, split: int | None = None, metric: str = "score") -> Board:
    """The ranked methods of a board written by ``make leaderboard`` (the retrain ceiling left out).

    ``path`` is the board's ``.md`` (the ``.json`` beside it is read: the board
    as data, ``boards.board_data``) or that ``.json``. The score read is what the
    board ranks by: ``score`` on a standard board, the last request's on a
    requests board, the mean over splits on a ``-splitsK`` one, or with ``split``
    set, that split's score on a ``-splitsK`` board (a board of one reference set
    ignores it). ``metric="klom"`` reads KLoM (or its mean over splits) instead, negated (and its interval
    with it) so that higher is better on both metrics and two orders compare directly.
    """
    if metric not in METRICS:
        raise EvalError(f"metric {metric!r} is not one a board shows: use one of {', '.join(METRICS)}.")
    path = Path(path)
    data = _board_data(path)
    count = data.get("splits") or 0  # K on a board over K splits
    if count and split is not None and not 0 <= split < count:
        have = ", ".join(f"split {j}" for j in range(count))
        raise EvalError(f"{path}: no split {split} on this board (it has {have}); pass one of those.")
    key, sign, what = ("klom", -1.0, "KLoM") if metric == "klom" else ("score", 1.0, "score")
    if count:
        what = f"mean {what}" if split is None else f"{what} on split {split}"
    entries = [(entry["method"], _shown(entry, count, split)) for entry in data["methods"]]
    if metric == "klom" and all(found.get("klom") is None for _, found in entries):
        raise EvalError(
            f"{path}: no KLoM on this board; rebuild the board with `make leaderboard` "
            "(boards written before KLoM lack it)."
        )
    scores: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for method, found in entries:
        if found.get(key) is None:
            raise EvalError(f"{path}: {method!r} has no {what}; rebuild the board with `make leaderboard`.")
        if method in scores:
            raise EvalError(f"{path}: {method!r} appears twice; rebuild the board.")
        scores[method] = sign * found[key]
        if found.get(f"{key}_interval") is not None:
            low, high = sorted(sign * end for end in found[f"{key}_interval"])
            intervals[method] = (low, high)
    title = data["title"] + (f", split {split}" if count and split is not None else "")
    if metric == "klom":
        title += ", KLoM (negated: higher is better)"
    return Board(path, title, data["setup"], scores, intervals)


def _shown(entry: dict[str, Any], count: int, split: int | None) -> dict[str, Any]:
    """A method's figures as read: on a board over splits, its means (which have no
    interval) or one split's figures (null where it failed on that split)."""
    if not count:
        return entry
    if split is None:
        return {"score": entry["mean"], "klom": entry.get("mean_klom")}
    return entry["splits"][split] or {}


def _board_data(path: Path) -> dict[str, Any]:
    """The board data ``path`` names: a ``.md`` board's is the ``.json`` beside it."""
    source = path.with_suffix(".json")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        if source != path and path.is_file():
            raise EvalError(
                f"{path}: no {source.name} beside it (the board as data, which this reads); rebuild "
                "the board with `make leaderboard` (boards written before board data lack it)."
            ) from None
        raise EvalError(f"{path}: cannot read it ({error.strerror}); pass a docs/leaderboard-*.md file.") from None
    except ValueError as error:
        raise EvalError(f"{source}: not JSON ({error}); rebuild the board with `make leaderboard`.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EvalError(
            f"{source}: not board data of format {FORMAT}; rebuild the board with `make leaderboard`."
        )
    return data


def short_title(board: Board) -> str:
    """The title without its "Leaderboard: " prefix and backquotes, for an axis label."""
    return board.title.removeprefix("Leaderboard: ").replace("`", "")


def order_agreement(a: Mapping[str, float], b: Mapping[str, float]) -> OrderAgreement:
    """Tau between two boards' scores over the methods both scored."""
    common = [m for m in sorted(a, key=lambda m: (-a[m], m)) if m in b]
    if len(common) < MIN_METHODS:
        raise EvalError(
            f"The two boards share {len(common)} scored method(s) ({', '.join(common) or 'none'}); "
            f"an order needs at least {MIN_METHODS}: score the same methods on both."
        )
    tau = kendall_tau([a[m] for m in common], [b[m] for m in common])
    untied = all(len({s[m] for m in common}) == len(common) for s in (a, b))
    chance = chance_of_agreement(tau, len(common)) if untied else None
    return OrderAgreement(tuple(common), tau, chance, _ranks(a, common), _ranks(b, common))


def agreement_text(first: Board, second: Board, found: OrderAgreement | None = None) -> str:
    """What a researcher reads: both set-ups, tau with its chance, and each method's two ranks.

    ``found`` is the boards' ``order_agreement`` where the caller has it already.
    """
    found = found or order_agreement(first.scores, second.scores)
    chance = (
        f"; a random order does at least as well {share_text(found.chance)} of the time"
        if found.chance is not None
        else " (a board has tied scores, so no chance figure)"
    )
    lines = [
        f"A: {first.path} ({first.title}). {first.setup}".rstrip(),
        f"B: {second.path} ({second.title}). {second.setup}".rstrip(),
        "",
        f"Over the {len(found.methods)} methods both boards scored, Kendall's tau = {found.tau:.2f} "
        f"(1: the same order, 0: unrelated){chance}. Ranks are among these methods only.",
        "",
        "| method | rank on A | rank on B | B - A |",
        "|---|---:|---:|---:|",
    ]
    for method in found.methods:
        shift = found.ranks_b[method] - found.ranks_a[method]
        lines.append(f"| {method} | {found.ranks_a[method]} | {found.ranks_b[method]} | {shift:+d} |")
    left_out = sorted(set(first.scores) ^ set(second.scores))
    if left_out:
        lines += ["", f"On one board only (not compared): {', '.join(left_out)}."]
    return "\n".join(lines)


def _ranks(scores: Mapping[str, float], methods: list[str]) -> dict[str, int]:
    """1 + the number of these methods scoring strictly higher: tied scores share a rank."""
    return {m: 1 + sum(scores[o] > scores[m] for o in methods) for m in methods}
