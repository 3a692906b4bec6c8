"""Specification of a board's agreement with the competition's order of its winners."""

from __future__ import annotations

import itertools
import math

import pytest

from local_eval.boards.kaggle_order import (
    KAGGLE_PRIVATE_PLACES,
    agreement_lines,
    chance_of_agreement,
    kaggle_agreement,
    kendall_tau,
)

WINNERS = sorted(KAGGLE_PRIVATE_PLACES, key=KAGGLE_PRIVATE_PLACES.__getitem__)


def row(method, score, resampled=None, shape=(16, 22, 16)):
    found = {"method": method, "score": score}
    if resampled is not None:
        found["intervals"] = {
            "resampled_scores": list(resampled), "num_resamples": len(resampled), "seed": 0,
            "shape": list(shape), "level": 0.95,
        }  # fmt: skip
    return found


def test_the_same_order_has_tau_one_and_the_reversed_order_minus_one():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0


def test_one_swapped_pair_of_four_gives_two_thirds():
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)


def test_tied_scores_count_in_tau_b_denominator():
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 6**0.5)


def test_only_one_ordering_in_24_matches_four_methods_exactly():
    assert chance_of_agreement(1.0, 4) == pytest.approx(1 / 24)
    assert chance_of_agreement(-1.0, 4) == 1.0


def test_a_board_ranking_the_winners_as_kaggle_did_agrees_fully():
    rows = [row(m, 1.0 - 0.1 * i) for i, m in enumerate(WINNERS)]
    found = kaggle_agreement(rows)
    assert found.tau == 1.0
    assert found.methods == tuple(WINNERS)


def test_a_board_ranking_them_in_reverse_disagrees_fully():
    rows = [row(m, 0.1 * i) for i, m in enumerate(WINNERS)]
    assert kaggle_agreement(rows).tau == -1.0


def test_fewer_than_three_winners_give_no_agreement():
    assert kaggle_agreement([row("fanchuan", 0.2), row("kookmin", 0.1), row("finetune", 0.0)]) is None


def test_winners_above_finetune_are_counted_and_clear_ones_need_a_paired_interval_above_zero():
    rows = [
        row("fanchuan", 0.30, [0.30, 0.31, 0.29, 0.32]),
        row("kookmin", 0.12, [0.05, 0.20, 0.09, 0.15]),
        row("seif", 0.05, [0.05, 0.06, 0.04, 0.05]),
        row("finetune", 0.10, [0.10, 0.10, 0.10, 0.10]),
    ]
    found = kaggle_agreement(rows)
    assert found.above_baseline == ("fanchuan", "kookmin")
    assert found.clearly_above_baseline == ("fanchuan",)


def test_tau_gets_an_interval_from_paired_resampled_scores():
    rows = [
        row("fanchuan", 0.3, [0.3, 0.1, 0.3]),
        row("kookmin", 0.2, [0.2, 0.2, 0.2]),
        row("seif", 0.1, [0.1, 0.3, 0.1]),
    ]
    found = kaggle_agreement(rows)
    assert found.interval == pytest.approx((-1.0 + 2 * 0.025 * 2, 1.0))  # quantiles of [1, -1, 1]


def test_no_interval_when_the_results_were_resampled_at_other_shapes():
    rows = [
        row("fanchuan", 0.3, [0.3, 0.2], shape=(16, 22, 16)),
        row("kookmin", 0.2, [0.2, 0.2], shape=(8, 22, 8)),
        row("seif", 0.1, [0.1, 0.1], shape=(16, 22, 16)),
    ]
    assert kaggle_agreement(rows).interval is None


def test_the_paragraph_names_tau_its_interval_and_the_places():
    rows = [row(m, 1.0 - 0.1 * i, [1.0 - 0.1 * i] * 4) for i, m in enumerate(WINNERS)]
    text = agreement_lines(kaggle_agreement(rows + [row("finetune", 0.0, [0.0] * 4)]))[1]
    assert "Kendall's tau = 1.00 [1.00, 1.00] (95%)" in text
    assert "`fanchuan` 1" in text and "`forget` 8" in text
    assert "7 of them score above `finetune` (7 with a paired interval above 0)" in text


def _drawn_against_kaggle(monkeypatch, tmp_path, rows):
    from local_eval.boards import plots

    drawn = []
    monkeypatch.setattr(plots, "_against_kaggle", lambda axes, rows, found: drawn.append(found.methods))
    for r in rows:
        r.update(time_fraction=0.1)
    plots.plot_board(tmp_path / "board.png", "board", rows, [{"score": 0.2}], None)
    assert (tmp_path / "board.png").stat().st_size > 0
    return drawn


def test_the_board_picture_draws_the_competition_entries_at_their_places(monkeypatch, tmp_path):
    rows = [row("seif", 0.1), row("fanchuan", 0.3), row("kookmin", 0.2), row("finetune", 0.05)]
    assert _drawn_against_kaggle(monkeypatch, tmp_path, rows) == [("fanchuan", "kookmin", "seif")]


def test_a_board_without_three_competition_entries_draws_no_kaggle_panel(monkeypatch, tmp_path):
    rows = [row("fanchuan", 0.3), row("finetune", 0.05), row("salun", 0.1)]
    assert _drawn_against_kaggle(monkeypatch, tmp_path, rows) == []


def test_the_table_gives_one_row_per_labelled_board():
    from local_eval.boards.kaggle_order import agreement_table

    one = kaggle_agreement([row(m, 1.0 - 0.1 * i) for i, m in enumerate(WINNERS)])
    lines = agreement_table([("split 0", one), ("split 1", None), ("split 2", one)])
    assert [line.split("|")[1].strip() for line in lines if line.startswith("| split")] == ["split 0", "split 2"]
    assert "| split 0 | 7 | 1.00 | <1% |" in "\n".join(lines)


@pytest.mark.parametrize("count", [2, 3, 5, 7])
def test_chance_of_agreement_counts_orderings_exactly_as_listing_them_does(count):
    target = list(range(count))
    taus = [kendall_tau(list(order), target) for order in itertools.permutations(target)]
    for tau in sorted(set(taus)):
        listed = sum(t >= tau - 1e-12 for t in taus) / len(taus)
        assert chance_of_agreement(tau, count) == pytest.approx(listed)


def test_chance_of_agreement_is_exact_for_thirteen_methods():
    """13! orderings cannot be listed; one with no inversion is the only one at tau = 1."""
    assert chance_of_agreement(1.0, 13) == pytest.approx(1 / math.factorial(13))
