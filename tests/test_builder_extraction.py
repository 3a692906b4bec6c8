"""What the extracted source contains: constants, inlined helpers, trimmed imports."""

import ast
from pathlib import Path

import pytest

from builder.discover import resolve_target
from builder.errors import BuildError
from builder.extract import extract_unlearning
from builder.hyperparameters import parse_overrides
from builder.render import DRIVER_NAMES

CORPUS = Path(__file__).parent / "method_corpus"


def extract(target, overrides=None, class_name=None):
    return extract_unlearning(resolve_target(str(target), class_name), overrides, reserved=DRIVER_NAMES)


def top_level_names(source):
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def imported_modules(source):
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module)
    return modules


def test_hyperparameters_become_constants_above_unlearning():
    source = extract("finetune").source
    assert "LR = 0.001" in source
    assert source.index("LR = 0.001") < source.index("def unlearning(")


def test_set_override_changes_the_constant():
    source = extract("finetune", parse_overrides(["lr=0.01"])).source
    assert "LR = 0.01\n" in source


def test_unknown_override_is_rejected_with_the_known_names():
    with pytest.raises(BuildError, match="no hyperparameter 'learning_rate'.*lr"):
        extract("finetune", {"learning_rate": 0.1})


def test_self_helper_methods_become_plain_functions():
    source = extract(CORPUS / "decorators_and_signatures.py").source
    names = top_level_names(source)
    assert {"_epoch", "_criterion", "unlearning"} <= names
    assert "self" not in source.split("def unlearning")[1]


def test_helpers_are_inlined_transitively_and_unused_ones_dropped():
    source = extract(CORPUS / "helper_class_and_aliases.py").source
    names = top_level_names(source)
    assert {"Momentum", "scaled", "soft_targets", "SHRINK", "unpack_batch"} <= names
    assert "unused_helper" not in names and "UNUSED_CONSTANT" not in names


def test_no_project_import_survives():
    for target in ["finetune", CORPUS / "helper_class_and_aliases.py", CORPUS / "inherited_run.py"]:
        modules = imported_modules(extract(target).source)
        assert not any(m.split(".")[0] in {"methods", "tests"} for m in modules), modules


def test_imports_are_trimmed_to_the_names_used():
    source = extract("finetune").source
    assert "import os" not in source
    assert "from torch import nn, optim" in source


def test_aliased_imports_keep_their_alias():
    source = extract(CORPUS / "helper_class_and_aliases.py").source
    assert "import torch as T" in source
    assert "import torch.nn.functional as F" in source


def test_colliding_names_are_renamed_consistently():
    source = extract(CORPUS / "name_collisions.py").source
    names = top_level_names(source)
    assert "step" in names and "LR" in names
    assert "HP_LR" in names  # the hyperparameter yields to the module constant
    assert "name_collisions_step" in names  # the method, renamed away from the function


def test_inherited_run_uses_the_subclass_hyperparameters():
    source = extract(CORPUS / "inherited_run.py").source
    assert "LR = 0.05" in source and "EPOCHS = 2" in source


def test_file_with_several_classes_needs_a_choice():
    with pytest.raises(BuildError, match="several method classes.*--class"):
        extract(Path(__file__).parent / "rejected_methods" / "two_classes.py")


def test_class_option_picks_one_of_several():
    path = Path(__file__).parent / "rejected_methods" / "two_classes.py"
    assert "net.train()" in extract(path, class_name="Second").source
