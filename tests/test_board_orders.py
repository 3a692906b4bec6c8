"""Specification of setting two written boards side by side: Kendall's tau over their common methods."""

from __future__ import annotations

import pytest

from cli.main import main
from local_eval.boards.board_orders import agreement_text, order_agreement, read_board
from local_eval.errors import EvalError


def write_board(path, rows, score_header="score [lo, hi]", extra_header="tied with #1"):
    """A board in the layout the leaderboard writes: ranked rows and an unranked ceiling."""
    lines = [
        "# Leaderboard: preset `demo`",
        "",
        "Dataset `demo`, model `tiny`, N = 4 unlearned models per method against N retrained ones.",
        "",
        f"| rank | method | {score_header} | {extra_header} |",
        "|---:|---|---:|---:|",
        "|  | *retrain ceiling* | 0.9000 [0.8000, 0.9500] |  |",
    ]
    for rank, (method, score) in enumerate(rows, start=1):
        lines.append(f"| {rank} | {method} | {score:.4f} [0.0000, 1.0000] |  |")
    lines += ["", "Registered but not scored in this run: `other`."]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_board_reads_as_its_ranked_methods_scores_without_the_ceiling(tmp_path):
    board = read_board(write_board(tmp_path / "a.md", [("alpha", 0.3), ("beta", 0.2)]))
    assert board.scores == {"alpha": 0.3, "beta": 0.2}
    assert board.setup.startswith("Dataset `demo`")


def test_a_requests_board_is_read_at_its_last_request(tmp_path):
    path = tmp_path / "r.md"
    path.write_text(
        "| rank | method | after 1 | after 2 | tied with #1 |\n|---:|---|---:|---:|---:|\n"
        "| 1 | alpha | 0.1000 [0, 1] | 0.3000 [0, 1] | |\n| 2 | beta | 0.5000 [0, 1] | 0.2000 [0, 1] | |\n"
    )
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
    first = read_board(write_board(tmp_path / "a.md", [("a", 0.4), ("b", 0.3), ("c", 0.2), ("x", 0.1)]))
    second = read_board(write_board(tmp_path / "b.md", [("c", 0.4), ("b", 0.3), ("a", 0.2), ("y", 0.1)]))
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


def test_a_file_without_a_board_table_is_named_in_one_line(tmp_path, capsys):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nno table here\n")
    assert main(["agree", str(path), str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: no '| rank | method") and error.count("\n") == 1


def test_a_row_without_a_score_names_its_line(tmp_path):
    path = tmp_path / "broken.md"
    path.write_text("| rank | method | score [lo, hi] |\n|---:|---|---:|\n| 1 | alpha | failed |\n")
    with pytest.raises(EvalError, match=r"broken.md, line 3: 'alpha' has no number"):
        read_board(path)


def test_agree_prints_tau_and_each_methods_two_ranks(tmp_path, capsys):
    first = write_board(tmp_path / "a.md", [("a", 0.4), ("b", 0.3), ("c", 0.2)])
    second = write_board(tmp_path / "b.md", [("a", 0.4), ("c", 0.3), ("b", 0.2)])
    assert main(["agree", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "Kendall's tau = 0.33" in out
    assert "| c | 3 | 2 | -1 |" in out


def write_split_board(path):
    path.write_text(
        "| rank | method | mean score | sd | split 0 [lo, hi] | split 1 [lo, hi] | ranks |\n"
        "|---:|---|---:|---:|---:|---:|---:|\n"
        "|  | *retrain ceiling* | 0.5 | 0.1 | 0.4 [0, 1] | 0.6 [0, 1] |  |\n"
        "| 1 | alpha | 0.3 | 0.1 | 0.2 [0, 1] † | 0.4 [0, 1] † | 2, 1 |\n"
        "| 2 | beta | 0.2 | 0.1 | 0.3 [0, 1] † | 0.1 [0, 1] | 1, 2 |\n"
    )
    return path


def test_a_splits_board_is_read_at_its_mean_unless_a_split_is_named(tmp_path):
    path = write_split_board(tmp_path / "s.md")
    assert read_board(path).scores == {"alpha": 0.3, "beta": 0.2}
    assert read_board(path, split=0).scores == {"alpha": 0.2, "beta": 0.3}


def test_a_split_the_board_does_not_have_is_refused_naming_the_ones_it_has(tmp_path):
    with pytest.raises(EvalError, match=r"no split 3 on this board \(it has split 0, split 1\)"):
        read_board(write_split_board(tmp_path / "s.md"), split=3)


def test_a_named_split_leaves_a_board_of_one_reference_set_as_it_is(tmp_path):
    path = write_board(tmp_path / "a.md", [("alpha", 0.3), ("beta", 0.2)])
    assert read_board(path, split=1).scores == {"alpha": 0.3, "beta": 0.2}


def test_two_splits_set_one_boards_splits_against_each_other(tmp_path, capsys):
    path = tmp_path / "s.md"
    path.write_text(
        "| rank | method | mean score | sd | split 0 [lo, hi] | split 1 [lo, hi] | ranks |\n"
        "|---:|---|---:|---:|---:|---:|---:|\n"
        "| 1 | alpha | 0.3 | 0.1 | 0.3 [0, 1] | 0.1 [0, 1] | 1, 3 |\n"
        "| 2 | beta | 0.2 | 0.1 | 0.2 [0, 1] | 0.2 [0, 1] | 2, 2 |\n"
        "| 3 | gamma | 0.2 | 0.1 | 0.1 [0, 1] | 0.3 [0, 1] | 3, 1 |\n"
    )
    assert main(["agree", str(path), str(path), "--split", "0", "--split", "1"]) == 0
    out = capsys.readouterr().out
    assert "Kendall's tau = -1.00" in out
    assert "split 0" in out and "split 1" in out


def test_more_splits_than_boards_are_refused_in_one_line(tmp_path, capsys):
    path = write_split_board(tmp_path / "s.md")
    argv = ["agree", str(path), str(path), "--split", "0", "--split", "1", "--split", "0"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--split once (both boards) or twice" in error and error.count("\n") == 1


def test_a_boards_score_intervals_are_read_beside_its_scores(tmp_path):
    path = write_board(tmp_path / "a.md", [("a", 0.4), ("b", 0.3), ("c", 0.2)])
    assert read_board(path).intervals == {m: (0.0, 1.0) for m in ("a", "b", "c")}


def test_a_mean_over_splits_has_no_interval_and_a_named_split_has_its_own(tmp_path):
    path = write_split_board(tmp_path / "s.md")
    assert read_board(path).intervals == {}
    assert read_board(path, split=1).intervals == {"alpha": (0.0, 1.0), "beta": (0.0, 1.0)}


def test_agree_with_a_plot_writes_a_png_of_the_two_boards_scores(tmp_path, capsys):
    first = write_board(tmp_path / "a.md", [("a", 0.4), ("b", 0.3), ("c", 0.2)])
    second = write_board(tmp_path / "b.md", [("a", 0.4), ("c", 0.3), ("b", 0.2)])
    picture = tmp_path / "agree.png"
    assert main(["agree", str(first), str(second), "--plot", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {picture}" in capsys.readouterr().out


def test_klom_is_read_negated_so_that_higher_is_better_on_both_metrics(tmp_path):
    board = tmp_path / "leaderboard-x.md"
    board.write_text(
        "# Leaderboard: preset `x`\n\n"
        "| rank | method | score [lo, hi] | KLoM [lo, hi] |\n|---:|---|---:|---:|\n"
        "| 1 | a | 0.20 [0.10, 0.30] | 1.50 [1.00, 2.00] |\n"
        "| 2 | b | 0.10 [0.05, 0.15] | 3.00 [2.50, 3.50] |\n"
    )
    found = read_board(board, metric="klom")
    assert found.scores == {"a": -1.5, "b": -3.0}
    assert found.intervals["a"] == (-2.0, -1.0)
    assert "KLoM" in found.title


def test_a_board_without_klom_is_refused_with_the_column_named(tmp_path):
    board = tmp_path / "leaderboard-old.md"
    board.write_text("| rank | method | score [lo, hi] |\n|---:|---|---:|\n| 1 | a | 0.2 |\n")
    with pytest.raises(EvalError, match="no 'KLoM \\[lo, hi\\]' column"):
        read_board(board, metric="klom")
