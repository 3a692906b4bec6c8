"""The generated unlearning() behaves exactly like the method class it came from."""

from pathlib import Path

import pytest

from methods import all_method_handlers
from tests.equivalence import differing_tensors, run_class_and_generated, tiny_model

CORPUS = sorted(
    p for p in (Path(__file__).parent / "method_corpus").glob("*.py")
    if p.name not in {"__init__.py", "corpus_helpers.py"}
)

# Methods whose full default schedule is long even on a tiny model: fewer epochs keep
# the suite fast and still exercise every code path of run() and its helpers.
SHORTER = {
    "fanchuan": {"epochs": 2},
    "salun": {"epochs": 2},
    "sun": {"partial_epochs": 2, "final_lrs": (2e-4, 1e-3)},
}


@pytest.mark.parametrize("name", sorted(all_method_handlers()))
def test_registered_method_and_its_notebook_code_give_identical_weights(name, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_ASSETS_DIR", str(tmp_path / "assets"))  # restored afterwards
    by_class, by_notebook, _ = run_class_and_generated(
        name, SHORTER.get(name), assets_dir=tmp_path / "assets"
    )
    assert differing_tensors(by_class, by_notebook) == []


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_tricky_method_file_and_its_notebook_code_give_identical_weights(path):
    by_class, by_notebook, _ = run_class_and_generated(path)
    assert differing_tensors(by_class, by_notebook) == []


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_tricky_method_changes_the_weights(path):
    by_class, _, _ = run_class_and_generated(path)
    original = tiny_model().state_dict()
    assert differing_tensors(original, by_class) != []


def test_tuple_batches_give_identical_weights_too():
    by_class, by_notebook, _ = run_class_and_generated("finetune", as_dict=False)
    assert differing_tensors(by_class, by_notebook) == []


def test_equivalence_check_detects_a_changed_hyperparameter():
    """The comparison is sharp enough to see a different learning rate."""
    by_class, _, _ = run_class_and_generated("finetune")
    by_other, _, _ = run_class_and_generated("finetune", {"lr": 0.01})
    assert differing_tensors(by_class, by_other) != []
