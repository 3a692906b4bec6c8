"""Specification of merged rows: a method that is another's computation in a setting is scored once there."""

from __future__ import annotations

from local_eval.boards.leaderboard import board_notes, choose_methods, merge_same_computations


def test_a_method_declaring_itself_another_chosen_methods_computation_is_scored_once():
    chosen, _ = choose_methods(["ams_unlearn", "ftsu", "finetune"])
    kept, merged = merge_same_computations(chosen, "standard")
    assert set(kept) == {"finetune", "ftsu"}
    assert merged == {"ams_unlearn": "ftsu"}


def test_a_declared_twin_is_kept_where_its_twin_is_not_on_the_board():
    chosen, _ = choose_methods(["ams_unlearn", "finetune"])
    kept, merged = merge_same_computations(chosen, "standard")
    assert "ams_unlearn" in kept and merged == {}


def test_a_declared_twin_is_kept_in_the_scenarios_where_it_differs():
    chosen, _ = choose_methods(["ams_unlearn", "ftsu"])
    kept, merged = merge_same_computations(chosen, "requests")
    assert set(kept) == {"ams_unlearn", "ftsu"} and merged == {}


def test_the_board_names_what_it_scored_once():
    lines = board_notes({}, None, "Not scored", {"ams_unlearn": "ftsu"})
    assert any("`ams_unlearn` is `ftsu`'s computation" in line for line in lines)


def test_a_method_that_only_renames_another_leaves_full_boards_but_runs_by_name():
    from local_eval.boards.leaderboard import choose_methods

    everything, left_out = choose_methods(None)
    assert "my_method" not in everything and "my_method" not in left_out
    assert "finetune" in everything
    named, _ = choose_methods(["my_method"])
    assert list(named) == ["my_method"]


def test_a_subclass_that_changes_anything_is_not_an_alias():
    from local_eval.boards.leaderboard import is_alias
    from methods.finetune import Finetune

    class Faster(Finetune):
        name = "faster"

        def run(self, net, retain_loader, forget_loader, val_loader):
            net.eval()

    assert not is_alias(Faster, {"finetune": Finetune})
