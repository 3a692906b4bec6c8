"""Specification of aliases: a method that only renames another is left off full boards."""

from __future__ import annotations


def test_a_method_that_only_renames_another_leaves_full_boards_but_runs_by_name():
    from local_eval.scoring.board_scores import choose_methods

    everything, left_out = choose_methods(None)
    assert "my_method" not in everything and "my_method" not in left_out
    assert "finetune" in everything
    named, _ = choose_methods(["my_method"])
    assert list(named) == ["my_method"]


def test_a_subclass_that_changes_anything_is_not_an_alias():
    from local_eval.scoring.board_scores import is_alias
    from methods.finetune import Finetune

    class Faster(Finetune):
        name = "faster"

        def run(self, net, retain_loader, forget_loader, val_loader):
            net.eval()

    assert not is_alias(Faster, {"finetune": Finetune})
