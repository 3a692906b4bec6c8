"""Method files written for the competition's starter kit build as they are written.

The kit's ``BaseMethod`` takes the method's name in its constructor and its
``main.py`` builds methods as ``all_method_handlers()[name](name)``; ``name`` is
the method's identity, so it never becomes a notebook constant or a ``--set`` target.
"""

import re
from pathlib import Path

import pytest

import main as starter_main
from builder.discover import resolve_target
from builder.errors import BuildError
from builder.extract import extract_unlearning
from builder.hyperparameters import instantiate
from methods import all_method_handlers
from methods.base import BaseMethod, new_method
from tests.test_cli import cli

CORPUS = Path(__file__).parent / "method_corpus"
REJECTED = Path(__file__).parent / "rejected_methods"


@pytest.mark.parametrize("name", sorted(all_method_handlers()))
def test_every_registered_method_answers_its_registered_name(name):
    method = new_method(all_method_handlers()[name])
    assert method.get_name() == name
    assert "name" not in method.hyperparameters()


def test_the_method_base_is_a_plain_class():
    assert type(BaseMethod) is type


def test_name_is_not_emitted_as_a_constant():
    extracted = extract_unlearning(resolve_target(str(CORPUS / "name_with_default.py")))
    assert "name" not in extracted.hyperparameters
    assert not re.search(r"^NAME\b", extracted.source, re.M)
    assert "'corpus_named'" in extracted.source


def test_name_cannot_be_overridden_with_set():
    target = resolve_target(str(CORPUS / "name_with_default.py"))
    with pytest.raises(BuildError, match=r"--set name: `name` is NameWithDefault's identity"):
        extract_unlearning(target, {"name": "other"})


def test_init_without_a_name_default_is_built_with_the_registered_name():
    target = resolve_target(str(CORPUS / "only_name.py"))
    assert instantiate(target.cls, {}).get_name() == "corpus_only_name"


def test_class_without_a_name_attribute_is_named_by_its_init_default():
    assert resolve_target(str(CORPUS / "name_with_default.py")).method_name == "corpus_named"


def test_methods_command_does_not_list_name_as_a_hyperparameter():
    result = cli("methods")
    assert result.returncode == 0
    assert "name=" not in result.stdout


@pytest.mark.parametrize(
    "phase, preset", [("debug", "smoke"), ("dev", "faithful_quick"), ("test", "faithful_small_full")]
)
def test_main_py_phases_run_their_presets(phase, preset, monkeypatch):
    forwarded = []
    monkeypatch.setattr(starter_main, "cli_main", lambda argv: forwarded.extend(argv) or 0)
    assert starter_main.main(["-m", "finetune", "-p", phase]) == 0
    assert forwarded[:4] == ["eval", "finetune", "--preset", preset]


def test_main_py_still_takes_preset_names(monkeypatch):
    forwarded = []
    monkeypatch.setattr(starter_main, "cli_main", lambda argv: forwarded.extend(argv) or 0)
    starter_main.main(["-m", "finetune", "-p", "smoke"])
    assert forwarded[:4] == ["eval", "finetune", "--preset", "smoke"]


def test_starter_kits_my_method_gets_every_refusal_in_one_report():
    path = REJECTED / "starter_kit_my_method.py"
    lines = path.read_text().splitlines()
    with pytest.raises(BuildError) as caught:
        extract_unlearning(resolve_target(str(path)))
    report = str(caught.value).splitlines()
    expected = {
        "def run": r"run\(\) must take exactly .*got \(.*phase\)",
        "net = copy.deepcopy": r"run\(\) rebinds `net`",
        "return net": r"run\(\) returns a value",
    }
    assert len(report) == len(expected), report
    for marker, pattern in expected.items():
        number = next(i for i, line in enumerate(lines, start=1) if marker in line)
        assert any(f"{path.name}:{number}:" in line and re.search(pattern, line) for line in report), (
            marker,
            report,
        )


def test_a_hyperparameter_init_sets_without_taking_is_set_on_the_instance_not_passed():
    cls = resolve_target(str(CORPUS / "name_with_default.py")).cls
    method = new_method(cls, **{**new_method(cls).hyperparameters(), "steps": 5, "lr": 0.1})
    assert (method.steps, method.lr, method.get_name()) == (5, 0.1, "corpus_named")
