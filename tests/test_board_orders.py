"""Specification of setting two written boards side by side: Kendall's tau over their common methods.

Boards here are written by the leaderboard's own renderers and writer (Markdown
and the data beside it) from synthetic results, so nothing is scored.
"""

from __future__ import annotations

import json
import random
import types

import pytest
import torch

from cli.main import main
from local_eval.boards import leaderboard
from local_eval.boards.board_orders import agreement_text, order_agreement, read_board
from local_eval.boards.leaderboard import board_and_data, ties_with_leader
from local_eval.boards.split_board import SplitRows, split_board_and_data
from local_eval.errors import EvalError
from local_eval.scoring.diagnostics import STATISTICS
from local_eval.scoring.presets import get_preset
from local_eval.scoring.scenarios import Prepared, Step
from local_eval.scoring.scenarios.requests import Requests
from local_eval.scoring.scenarios.standard import Standard
from local_eval.scoring.several_splits import aggregate_splits, split_presets

PRESET = get_preset("smoke")
CEILING = {"score": 0.9, "forget_quality": 0.9, "retain_ratio": 1.0, "test_ratio": 1.0}


def result(method, score, interval=(0.0, 1.0), klom=None, steps=()):
    """A method's result as the renderers get it, cut to what a board shows."""
    row = {
        "method": method,
        "device": "cpu",
        "score": score,
        "forget_quality": 0.5,
        "retain_ratio": 0.9,
        "test_ratio": 0.8,
        "time_fraction": 0.1,
        "seconds_per_run": 1.0,
        "intervals": {"score": list(interval), "level": 0.95, "num_resamples": 50},
    }
    if klom is not None:  # (estimate, low, high), given to each diagnostic
        value, low, high = klom
        each = {"estimate": value, "interval": [low, high], "resampled": [0.0, 0.0]}
        row["intervals"]["diagnostics"] = {"level": 0.95, **{name: each for name in STATISTICS}}
    if steps:
        row["steps"] = [{"score": s} for s in steps]
    return row


def prepared(steps=1, record=None):
    data = types.SimpleNamespace(
        retain=torch.arange(100), forget=torch.arange(100, 110), val=torch.arange(10), test=torch.arange(10)
    )
    refs = types.SimpleNamespace(data=data, retrain_seconds=10.0, key="k")
    return Prepared(steps=(Step(refs=refs, given=data),) * steps, record=record or {}, reuse={})


def write_rows(folder, name, rows, scenario=None, steps=1, record=None):
    """Write ``leaderboard-<name>.md`` and its data as ``make leaderboard`` does, from ``rows``."""
    text, data = board_and_data(
        scenario or Standard(), PRESET, prepared(steps, record), rows, [dict(CEILING)] * steps,
        {}, {}, ["other"],
    )  # fmt: skip
    return leaderboard.write_board(folder, f"leaderboard-{name}", text, PRESET, echo=False, data=data)


def write_board(folder, scores, name="a"):
    """A standard board of these (method, score) pairs, each scored with the interval [0, 1]."""
    return write_rows(folder, name, [result(method, score) for method, score in scores])


def write_split_board(folder, per_split, name="s", klom=None):
    """A board over len(per_split) splits; ``per_split[j]`` maps each method to its score there
    (and ``klom[j]``, where given, to its KLoM there)."""
    splits = []
    for j, (split, scores) in enumerate(zip(split_presets(PRESET, len(per_split)), per_split)):
        kloms = {} if klom is None else klom[j]
        rows = [
            result(m, score, klom=(kloms[m], 0.0, 9.0) if m in kloms else None)
            for m, score in scores.items()
        ]
        splits.append(SplitRows(split, prepared(), rows, dict(CEILING), ties_with_leader(rows)))
    summary = aggregate_splits(per_split)
    text, data = split_board_and_data(Standard(), PRESET, splits, summary, {})
    return leaderboard.write_board(folder, f"leaderboard-{name}", text, PRESET, echo=False, data=data)


TWO_SPLITS = [{"alpha": 0.2, "beta": 0.3}, {"alpha": 0.4, "beta": 0.1}]


def test_a_board_reads_as_its_ranked_methods_scores_without_the_ceiling(tmp_path):
    board = read_board(write_board(tmp_path, [("alpha", 0.3), ("beta", 0.2)]))
    assert board.scores == {"alpha": 0.3, "beta": 0.2}
    assert board.setup.startswith("Dataset `synthetic`")


def test_a_board_is_read_from_the_data_beside_its_markdown_or_from_that_data_itself(tmp_path):
    path = write_board(tmp_path, [("alpha", 0.3), ("beta", 0.2)])
    assert read_board(path.with_suffix(".json")).scores == read_board(path).scores


def test_a_board_reads_back_its_scores_unrounded(tmp_path):
    board = read_board(write_board(tmp_path, [("alpha", 0.123456789), ("beta", 0.2)]))
    assert board.scores["alpha"] == 0.123456789


def test_a_requests_board_is_read_at_its_last_request(tmp_path):
    rows = [result("alpha", 0.3, steps=(0.1, 0.3)), result("beta", 0.2, steps=(0.5, 0.2))]
    record = {"k": 2, "grouping": "persons", "request_sizes": [5, 5]}
    path = write_rows(tmp_path, "r", rows, Requests(2), steps=2, record=record)
    assert read_board(path).scores == {"alpha": 0.3, "beta": 0.2}


def test_the_same_order_on_both_boards_has_tau_one():
    found = order_agreement({"a": 3, "b": 2, "c": 1, "d": 0}, {"a": 0.9, "b": 0.5, "c": 0.4, "d": 0.1})
    assert found.tau == pytest.approx(1.0)
    assert found.chance == pytest.approx(1 / 24)


def test_a_reversed_order_has_tau_minus_one_and_every_random_order_does_as_well():
    found = order_agreement({"a": 3, "b": 2, "c": 1}, {"a": 1, "b": 2, "c": 3})
    assert found.tau == pytest.approx(-1.0)
    assert found.chance == 1.0


def test_only_methods_on_both_boards_are_compared_and_the_rest_are_named(tmp_path):
    first = read_board(write_board(tmp_path, [("a", 0.4), ("b", 0.3), ("c", 0.2), ("x", 0.1)], "a"))
    second = read_board(write_board(tmp_path, [("c", 0.4), ("b", 0.3), ("a", 0.2), ("y", 0.1)], "b"))
    text = agreement_text(first, second)
    assert "Over the 3 methods both boards scored" in text
    assert "| a | 1 | 3 | +2 |" in text
    assert "On one board only (not compared): x, y." in text


def test_tied_scores_share_a_rank_and_give_no_chance_figure():
    found = order_agreement({"a": 3, "b": 2, "c": 2}, {"a": 3, "b": 2, "c": 1})
    assert found.ranks_a == {"a": 1, "b": 2, "c": 2}
    assert found.chance is None


def test_boards_sharing_fewer_than_three_methods_are_refused():
    with pytest.raises(EvalError, match="share 2 scored method"):
        order_agreement({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2})


def test_a_markdown_file_without_board_data_beside_it_is_named_in_one_line(tmp_path, capsys):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nno table here\n")
    assert main(["agree", str(path), str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: no notes.json beside it") and error.count("\n") == 1
    assert "make leaderboard" in error


def test_a_missing_board_is_named_with_what_to_pass(tmp_path):
    with pytest.raises(EvalError, match=r"nowhere.md: cannot read it .*pass a docs/leaderboard-\*.md"):
        read_board(tmp_path / "nowhere.md")


def test_a_json_file_that_is_not_board_data_is_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"method": "finetune", "score": 0.1}))
    with pytest.raises(EvalError, match=r"other.json: not board data of format 1; rebuild"):
        read_board(path)


def test_a_method_without_a_score_where_it_is_read_is_named(tmp_path):
    path = write_split_board(tmp_path, [{"alpha": 0.2, "beta": 0.3}, {"alpha": 0.4}])  # beta failed on split 1
    with pytest.raises(EvalError, match=r"'beta' has no score on split 1; rebuild"):
        read_board(path, split=1)


def test_agree_prints_tau_and_each_methods_two_ranks(tmp_path, capsys):
    first = write_board(tmp_path, [("a", 0.4), ("b", 0.3), ("c", 0.2)], "a")
    second = write_board(tmp_path, [("a", 0.4), ("c", 0.3), ("b", 0.2)], "b")
    assert main(["agree", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "Kendall's tau = 0.33" in out
    assert "| c | 3 | 2 | -1 |" in out


def test_a_splits_board_is_read_at_its_mean_unless_a_split_is_named(tmp_path):
    path = write_split_board(tmp_path, TWO_SPLITS)
    assert read_board(path).scores == pytest.approx({"alpha": 0.3, "beta": 0.2})
    assert read_board(path, split=0).scores == {"alpha": 0.2, "beta": 0.3}


def test_a_split_the_board_does_not_have_is_refused_naming_the_ones_it_has(tmp_path):
    with pytest.raises(EvalError, match=r"no split 3 on this board \(it has split 0, split 1\)"):
        read_board(write_split_board(tmp_path, TWO_SPLITS), split=3)


def test_a_named_split_leaves_a_board_of_one_reference_set_as_it_is(tmp_path):
    path = write_board(tmp_path, [("alpha", 0.3), ("beta", 0.2)])
    assert read_board(path, split=1).scores == {"alpha": 0.3, "beta": 0.2}


def test_two_splits_set_one_boards_splits_against_each_other(tmp_path, capsys):
    path = write_split_board(
        tmp_path, [{"alpha": 0.3, "beta": 0.2, "gamma": 0.1}, {"alpha": 0.1, "beta": 0.2, "gamma": 0.3}]
    )
    assert main(["agree", str(path), str(path), "--split", "0", "--split", "1"]) == 0
    out = capsys.readouterr().out
    assert "Kendall's tau = -1.00" in out
    assert "split 0" in out and "split 1" in out


def test_more_splits_than_boards_are_refused_in_one_line(tmp_path, capsys):
    path = write_split_board(tmp_path, TWO_SPLITS)
    argv = ["agree", str(path), str(path), "--split", "0", "--split", "1", "--split", "0"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--split once (both boards) or twice" in error and error.count("\n") == 1


def test_a_boards_score_intervals_are_read_beside_its_scores(tmp_path):
    path = write_board(tmp_path, [("a", 0.4), ("b", 0.3), ("c", 0.2)])
    assert read_board(path).intervals == {m: (0.0, 1.0) for m in ("a", "b", "c")}


def test_a_mean_over_splits_has_no_interval_and_a_named_split_has_its_own(tmp_path):
    path = write_split_board(tmp_path, TWO_SPLITS)
    assert read_board(path).intervals == {}
    assert read_board(path, split=1).intervals == {"alpha": (0.0, 1.0), "beta": (0.0, 1.0)}


def test_agree_with_a_plot_writes_a_png_of_the_two_boards_scores(tmp_path, capsys):
    first = write_board(tmp_path, [("a", 0.4), ("b", 0.3), ("c", 0.2)], "a")
    second = write_board(tmp_path, [("a", 0.4), ("c", 0.3), ("b", 0.2)], "b")
    picture = tmp_path / "agree.png"
    assert main(["agree", str(first), str(second), "--plot", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {picture}" in capsys.readouterr().out


def test_klom_is_read_negated_so_that_higher_is_better_on_both_metrics(tmp_path):
    rows = [result("a", 0.20, klom=(1.5, 1.0, 2.0)), result("b", 0.10, klom=(3.0, 2.5, 3.5))]
    found = read_board(write_rows(tmp_path, "x", rows), metric="klom")
    assert found.scores == {"a": -1.5, "b": -3.0}
    assert found.intervals["a"] == (-2.0, -1.0)
    assert "KLoM" in found.title


def test_a_board_without_klom_is_refused_saying_what_to_do(tmp_path):
    path = write_board(tmp_path, [("a", 0.2), ("b", 0.1)], "old")
    with pytest.raises(EvalError, match=r"no KLoM on this board; rebuild the board with `make leaderboard`"):
        read_board(path, metric="klom")


def test_a_splits_board_shows_and_is_read_at_its_mean_klom_unless_a_split_is_named(tmp_path):
    klom = [{"alpha": 1.0, "beta": 2.0, "gamma": 3.0}, {"alpha": 3.0, "beta": 1.0, "gamma": 4.0}]
    scores = [{m: 0.1 for m in "alpha beta gamma".split()}] * 2
    path = write_split_board(tmp_path, scores, klom=klom)
    assert table(path)["alpha"]["mean KLoM"] == "2.00"
    assert read_board(path, metric="klom").scores == {"alpha": -2.0, "beta": -1.5, "gamma": -3.5}
    assert read_board(path, split=1, metric="klom").scores == {"alpha": -3.0, "beta": -1.0, "gamma": -4.0}


def test_a_splits_board_leaves_the_mean_klom_blank_where_a_split_lacks_it(tmp_path):
    klom = [{"alpha": 1.0, "beta": 2.0, "gamma": 3.0}, {"alpha": 3.0, "beta": 1.0}]
    path = write_split_board(tmp_path, [{m: 0.1 for m in "alpha beta gamma".split()}] * 2, klom=klom)
    assert table(path)["gamma"]["mean KLoM"] == ""
    with pytest.raises(EvalError, match=r"'gamma' has no mean KLoM"):
        read_board(path, metric="klom")


# The Markdown and the data are two views of one board: a reader of either sees the same order.


def table(path):
    """The Markdown table's rows, by method: each cell under its header."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]
    return {row["method"]: row for row in rows}


def shown(value, interval=None, digits=4):
    """A figure as a board's cell shows it."""
    ends = "" if interval is None else f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return f"{value:.{digits}f}" + ends


def test_a_standard_boards_data_and_markdown_show_the_same_ranks_scores_and_intervals(tmp_path):
    rnd = random.Random(3)
    rows = [
        result(f"m{i}", rnd.random(), sorted((rnd.random(), rnd.random())), klom=klom)
        for i, klom in enumerate([(rnd.random(), 0.1, 0.9) for _ in range(3)] + [None] * 3)
    ]
    path = write_rows(tmp_path, "x", rows)
    data, cells = json.loads(path.with_suffix(".json").read_text()), table(path)
    entries = data["methods"] + [data["ceiling"]]
    assert sorted(e["method"] for e in entries) == sorted(cells)
    for entry in entries:
        row = cells[entry["method"]]
        assert row["rank"] == str(entry.get("rank", ""))
        assert row["score [lo, hi]"] == shown(entry["score"], entry["score_interval"])
        assert row["retain ratio"] == f"{entry['retain_ratio']:.3f}"
        klom = entry.get("klom")
        assert row["KLoM [lo, hi]"] == ("" if klom is None else shown(klom, entry["klom_interval"], 2))


def test_a_split_boards_data_and_markdown_show_the_same_ranks_means_and_split_scores(tmp_path):
    rnd = random.Random(4)
    per_split = [{f"m{i}": rnd.random() for i in range(5)} for _ in range(3)]
    del per_split[2]["m1"]  # failed on split 2
    path = write_split_board(tmp_path, per_split)
    data, cells = json.loads(path.with_suffix(".json").read_text()), table(path)
    entries = data["methods"] + [data["ceiling"]]
    assert sorted(e["method"] for e in entries) == sorted(cells)
    for entry in entries:
        row = cells[entry["method"]]
        assert row["rank"] == str(entry.get("rank", ""))
        assert (row["mean score"], row["sd"]) == (shown(entry["mean"]), shown(entry["sd"]))
        for j, found in enumerate(entry["splits"]):
            cell = row[f"split {j} [lo, hi]"]
            if found is None:
                assert cell == ""
                continue
            mark = " †" if found.get("tied") else ""
            assert cell == shown(found["score"], found["score_interval"]) + mark
        if "rank" in entry:
            ranks = ", ".join("-" if f is None else f"{f['rank']:g}" for f in entry["splits"])
            assert (row["ranks"], row["mean rank"]) == (ranks, f"{entry['mean_rank']:.2f}")
