"""Which code a stored result depends on: a method's files and the helpers it calls, not the shared contract."""

from __future__ import annotations

import methods
from local_eval.scoring.method_calls import method_source_files
from methods import all_method_handlers


def names(method_cls) -> set[str]:
    return {path.name for path in method_source_files(method_cls)}


def test_a_method_depends_on_its_own_file_and_the_helpers_it_imports():
    assert {"ftsu.py", "recovery.py", "saliency.py", "common.py"} <= names(methods.Ftsu)


def test_helpers_are_followed_through_other_helpers():
    # ftsu imports recovery, which takes best_scale from reset_recalibrate
    assert "reset_recalibrate.py" in names(methods.Ftsu)


def test_a_subclass_depends_on_its_parents_file():
    assert names(methods.finetune.MyMethod) == names(methods.Finetune)


def test_no_method_depends_on_the_shared_contract_the_registry_or_the_search_spaces():
    for method_cls in all_method_handlers().values():
        assert not names(method_cls) & {"base.py", "__init__.py", "search_space.py"}


def test_a_method_does_not_depend_on_helpers_it_never_imports():
    assert "recovery.py" not in names(methods.Sebastian)
