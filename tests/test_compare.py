"""Specification of `compare`: the paired score difference of two methods on one reference set."""

from __future__ import annotations

import pytest

import methods
from local_eval.boards.compare import Comparison, compare_methods, comparison_text
from local_eval.errors import EvalError
from local_eval.scoring.context import make_context
from local_eval.scoring.presets import get_preset
from methods.base import BaseMethod
from methods.finetune import Finetune


class Untouched(BaseMethod):
    """Leaves the original as it is."""

    name = "untouched"

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        net.eval()


@pytest.fixture(scope="module", autouse=True)
def cache(smoke_references):
    return smoke_references


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    patcher = pytest.MonkeyPatch()
    patcher.setattr(methods, "all_method_handlers", lambda: {"finetune": Finetune, "untouched": Untouched})
    try:
        yield compare_methods(
            "finetune", "untouched", "smoke", n_models=3,
            context=make_context(
                results_dir=tmp_path_factory.mktemp("compare"), progress=False, echo=False
            ),
        )  # fmt: skip
    finally:
        patcher.undo()


def test_the_difference_is_a_minus_b_of_the_two_scores(compared):
    assert compared.difference["estimate"] == pytest.approx(compared.a["score"] - compared.b["score"])


def test_the_difference_carries_a_paired_interval(compared):
    d = compared.difference
    assert d["low"] <= d["high"] and d["num_resamples"] > 0


def test_the_text_gives_both_scores_and_the_difference_with_its_setup(compared):
    lines = comparison_text(compared).splitlines()
    assert lines[0].startswith("finetune: score ") and lines[1].startswith("untouched: score ")
    assert lines[2].startswith("finetune - untouched = ")
    assert "preset smoke, N = 3" in lines[2]


def _with_interval(low, high):
    return Comparison(get_preset("smoke"), "standard", {"method": "a"}, {"method": "b"},
                      {"estimate": (low + high) / 2, "low": low, "high": high, "level": 0.95,
                       "num_resamples": 10})  # fmt: skip


def test_an_interval_above_zero_puts_a_ahead_below_zero_behind_and_across_zero_tied():
    assert _with_interval(0.01, 0.05).verdict == "ahead"
    assert _with_interval(-0.05, -0.01).verdict == "behind"
    assert _with_interval(-0.01, 0.05).verdict == "tied"


def test_comparing_a_method_with_itself_is_refused():
    with pytest.raises(EvalError, match="two different methods"):
        compare_methods("finetune", "finetune", "smoke")


def test_comparing_an_unregistered_method_names_the_registered_ones():
    with pytest.raises(
        EvalError, match=r"^Cannot compare 'no_such_method': not registered\. Registered methods: .*finetune"
    ):
        compare_methods("finetune", "no_such_method", "smoke")
