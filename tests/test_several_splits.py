"""K independent reference sets from one preset, and the board's view over all K."""

from __future__ import annotations

import math

import pytest

from local_eval.data.roles import load_eval_data
from local_eval.errors import EvalError
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import references_key, retrained_seed
from local_eval.scoring.several_splits import aggregate_splits, split_presets


def test_first_split_is_the_preset_itself():
    smoke = get_preset("smoke")
    assert split_presets(smoke, 3)[0] is smoke


@pytest.mark.parametrize("name", ["smoke", "cpu", "faithful"])
def test_every_split_has_its_own_cache_key(name):
    keys = {references_key(p) for p in split_presets(get_preset(name), 4)}
    assert len(keys) == 4


def test_splits_share_no_training_seed():
    presets = split_presets(get_preset("smoke", {"n_models": 512}), 3)
    seeds = [{p.seed} | {retrained_seed(p, i) for i in range(2 * p.n_models)} for p in presets]
    assert seeds[0].isdisjoint(seeds[1]) and seeds[1].isdisjoint(seeds[2])


def test_splits_forget_other_persons_of_other_data():
    first, second = (load_eval_data(p) for p in split_presets(get_preset("smoke"), 2))
    assert not (first.train.images[first.forget].equal(second.train.images[second.forget]))


def test_zero_splits_are_refused():
    with pytest.raises(EvalError, match="at least 1"):
        split_presets(get_preset("smoke"), 0)


def test_aggregate_gives_mean_spread_and_ranks_per_split():
    results = [
        {"a": 0.30, "b": 0.10, "c": 0.15},
        {"a": 0.10, "b": 0.40, "c": 0.15},
        {"a": 0.20, "b": 0.13, "c": 0.20},
    ]
    summary = aggregate_splits(results)
    assert list(summary) == ["b", "a", "c"]
    assert summary["a"].mean == pytest.approx(0.2)
    assert summary["a"].std == pytest.approx(0.1)
    assert summary["a"].ranks == (1.0, 3.0, 1.5)
    assert summary["c"].ranks == (2.0, 2.0, 1.5)


def test_a_method_missing_from_a_split_is_ranked_where_it_was_scored():
    summary = aggregate_splits([{"a": 0.3, "b": 0.1}, {"b": 0.2}])
    assert math.isnan(summary["a"].ranks[1]) and summary["b"].ranks == (2.0, 1.0)
    assert summary["a"].mean == pytest.approx(0.3) and math.isnan(summary["a"].std)


def test_one_split_on_its_own_is_the_split_a_several_split_board_scores():
    from cli.main import _parser, _preset_and_fields

    args = _parser().parse_args(["leaderboard", "--preset", "smoke", "--split", "2"])
    preset, fields = _preset_and_fields(args)
    assert preset == split_presets(get_preset("smoke"), 3)[2] and fields == {}


def test_one_split_and_several_splits_together_are_refused():
    from cli.main import _parser, _preset_and_fields

    args = _parser().parse_args(["eval", "finetune", "--split", "1", "--splits", "2"])
    with pytest.raises(EvalError, match="give one of them"):
        _preset_and_fields(args)


def test_a_split_boards_command_names_its_preset_and_split(tmp_path):
    from local_eval.boards.leaderboard import write_board
    from local_eval.scoring.several_splits import split_preset

    path = write_board(tmp_path, "leaderboard-x", "", split_preset(get_preset("smoke"), 2), echo=False)
    assert "make leaderboard PRESET=smoke SPLIT=2`" in path.read_text()
