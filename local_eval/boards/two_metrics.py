"""The competition's score beside KLoM on one board: how many methods each tells from its leader.

F gives each forget example one of a few point values, so on a small board most
methods tie with the leader; KLoM is continuous. Whether the second metric
separates more methods, and whether it orders them alike, is read here from the
results' stored resamples (the paired differences use the same draws for both
metrics), never by rescoring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from local_eval.boards.kaggle_order import chance_of_agreement, kendall_tau, share_text
from local_eval.scoring.diagnostics import paired_difference


def _diagnostics(row: Mapping[str, Any]) -> dict[str, Any] | None:
    return (row.get("intervals") or {}).get("diagnostics")


def separated_by_klom(rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]] | None:
    """KLoM's leader (lowest) and the methods whose paired KLoM difference to it lies above 0."""
    rows = [row for row in rows if _diagnostics(row) is not None]
    if len(rows) < 2:
        return None
    leader = min(rows, key=lambda row: _diagnostics(row)["klom"]["estimate"])
    separated = []
    for row in rows:
        if row is leader:
            continue
        found = paired_difference(_diagnostics(row), _diagnostics(leader), "klom")
        if found is not None and found["low"] > 0:
            separated.append(row["method"])
    return leader["method"], separated


def two_metric_lines(
    rows: Sequence[Mapping[str, Any]], differences: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """A paragraph: each metric's separations from its leader and the two orders' Kendall tau."""
    klom = separated_by_klom(rows)
    if klom is None:
        return []
    klom_leader, klom_separated = klom
    scored = [row for row in rows if _diagnostics(row) is not None]
    score_leader = max(scored, key=lambda row: row["score"])["method"]
    score_separated = [
        row["method"]
        for row in scored
        if (found := differences.get(row["method"])) is not None and found["high"] < 0
    ]
    tau = kendall_tau(
        [row["score"] for row in scored], [-_diagnostics(row)["klom"]["estimate"] for row in scored]
    )
    return [
        "",
        f"**Two metrics.** Of {len(scored)} methods, the score tells {len(score_separated)} "
        f"from its leader `{score_leader}` (paired interval below 0); KLoM tells "
        f"{len(klom_separated)} from its leader `{klom_leader}` (lowest KLoM; paired interval "
        f"above 0). The two orders agree at Kendall's tau = {tau:.2f}; a random order does at "
        f"least as well {share_text(chance_of_agreement(tau, len(scored)))} of the time.",
    ]
