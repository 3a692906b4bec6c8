"""Do two boards order the same methods alike? Kendall's tau between two written boards.

A narrow network, a smaller preset or another split is worth using in place of
the dearer set-up only if it ranks methods as that set-up does; this reads two
boards the kit wrote (``docs/leaderboard-*.md``) and says how alike their orders
of the methods both scored are, with the chance that a random order agrees as
well. It reads the committed boards rather than cached results so that boards
built on different machines and sessions (the faithful board on a cluster, the
cpu board on a laptop) can be set side by side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from local_eval.boards.kaggle_order import (
    MIN_METHODS,
    chance_of_agreement,
    kendall_tau,
    share_text,
)
from local_eval.errors import EvalError

_HEADER = re.compile(r"^\|\s*rank\s*\|\s*method\s*\|")
_AFTER = re.compile(r"^after (\d+)$")
_SETUP = re.compile(r"^Dataset `")
_INTERVAL = re.compile(r"\[\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\]")


@dataclass(frozen=True)
class Board:
    """A written board's scores and the line that says what set-up produced them."""

    path: Path
    title: str  # "Leaderboard: preset `cpu`", with ", split J" where one split was read
    setup: str
    scores: dict[str, float]
    # The score's bootstrap interval where its cell has one (a mean over splits has none).
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderAgreement:
    methods: tuple[str, ...]  # scored on both boards, in the first board's order
    tau: float
    chance: float | None  # None where a board has tied scores (the count assumes no ties)
    ranks_a: dict[str, int]
    ranks_b: dict[str, int]


METRICS = ("score", "klom")
_KLOM_COLUMN = "KLoM [lo, hi]"


def read_board(path: str | Path, split: int | None = None, metric: str = "score") -> Board:
    """The ranked rows of a board written by ``make leaderboard`` (the retrain ceiling left out).

    The score read is what the board ranks by: ``score`` on a standard board, the
    last request's on a requests board, the mean over splits on a ``-splitsK`` one,
    or with ``split`` set, that split's score on a ``-splitsK`` board (a board of
    one reference set ignores it). ``metric="klom"`` reads the KLoM column
    instead, negated (and its interval with it) so that higher is better on
    both metrics and two orders compare directly.
    """
    if metric not in METRICS:
        raise EvalError(f"metric {metric!r} is not one a board shows: use one of {', '.join(METRICS)}.")
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise EvalError(f"{path}: cannot read it ({error.strerror}); pass a docs/leaderboard-*.md file.") from None
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if header is None:
        raise EvalError(
            f"{path}: no '| rank | method | ... |' table; pass a board written by `make leaderboard`."
        )
    columns = _cells(lines[header])
    column = _score_column(columns)
    if metric == "klom":
        if _KLOM_COLUMN not in columns:
            raise EvalError(
                f"{path}, line {header + 1}: no '{_KLOM_COLUMN}' column; rebuild the board with "
                "`make leaderboard` (boards written before KLoM lack it)."
            )
        column = columns.index(_KLOM_COLUMN)
    if split is not None and "mean score" in columns and metric == "score":
        name = f"split {split} [lo, hi]"
        if name not in columns:
            have = [c.split(" [")[0] for c in columns if c.startswith("split ")]
            raise EvalError(
                f"{path}: no split {split} on this board (it has {', '.join(have)}); pass one of those."
            )
        column = columns.index(name)
    if column is None:
        raise EvalError(
            f"{path}, line {header + 1}: no score column ('score [lo, hi]', 'mean score' or "
            "'after K'); pass a board written by `make leaderboard`."
        )
    scores: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for number, line in enumerate(lines[header + 2 :], start=header + 3):
        if not line.startswith("|"):
            break
        cells = _cells(line)
        if not cells[0]:
            continue  # the retrain ceiling has no rank
        method = cells[1]
        try:
            score = float(cells[column].split()[0])
        except (IndexError, ValueError):
            raise EvalError(
                f"{path}, line {number}: {method!r} has no number under {columns[column]!r}; "
                "rebuild the board with `make leaderboard`."
            ) from None
        if method in scores:
            raise EvalError(f"{path}, line {number}: {method!r} appears twice; rebuild the board.")
        sign = -1.0 if metric == "klom" else 1.0
        scores[method] = sign * score
        if bracket := _INTERVAL.search(cells[column]):
            ends = sorted(sign * float(bracket.group(k)) for k in (1, 2))
            intervals[method] = (ends[0], ends[1])
    title = next((line.lstrip("# ").strip() for line in lines if line.startswith("# ")), path.name)
    if split is not None and "mean score" in columns:
        title += f", split {split}"
    if metric == "klom":
        title += ", KLoM (negated: higher is better)"
    setup = next((line.strip() for line in lines if _SETUP.match(line)), "")
    return Board(path, title, setup, scores, intervals)


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


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _score_column(columns: list[str]) -> int | None:
    for name in ("score [lo, hi]", "mean score"):
        if name in columns:
            return columns.index(name)
    steps = [(int(m.group(1)), i) for i, c in enumerate(columns) if (m := _AFTER.match(c))]
    return max(steps)[1] if steps else None
