"""Specification of the boards under docs/: what a reader takes from them at a glance holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# The current boards, and the records kept under docs/history/.
BOARDS = sorted(DOCS.glob("**/leaderboard-*.json"))


def estimates_with_intervals(node: Any) -> Iterator[tuple[str, float, list[float]]]:
    """Every ``x`` beside an ``x_interval`` anywhere in a board's data, with the row's name."""
    if isinstance(node, dict):
        for key, value in node.items():
            figure = key.removesuffix("_interval")
            if figure != key and value and figure in node:
                yield f"{node.get('method', '?')}: {figure}", node[figure], value
        for value in node.values():
            yield from estimates_with_intervals(value)
    elif isinstance(node, list):
        for value in node:
            yield from estimates_with_intervals(value)


def test_there_are_committed_boards_to_check():
    assert len(BOARDS) >= 10


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_interval_on_a_committed_board_contains_its_estimate(path):
    data = json.loads(path.read_text())
    outside = [
        f"{where} {x} [{low}, {high}]"
        for where, x, (low, high) in estimates_with_intervals(data)
        if not low <= x <= high
    ]
    assert not outside, f"{path.name}: {outside}"


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: str(p.relative_to(DOCS)))
def test_a_board_without_intervals_says_why(path):
    data = json.loads(path.read_text())
    if not any(True for _ in estimates_with_intervals(data)):
        assert "No intervals" in data.get("intervals_withdrawn", "")
        assert "No intervals" in path.with_suffix(".md").read_text()
