"""Each unsupported construct fails with one message naming file:line and the construct."""

import re
from pathlib import Path

import pytest

from builder.discover import resolve_target
from builder.errors import BuildError
from builder.extract import extract_unlearning

REJECTED = Path(__file__).parent / "rejected_methods"

CASES = {
    "extra_parameter": ("def run", r"run\(\) must take exactly \(self, net, retain_loader, forget_loader, val_loader\), got \(.*phase\)"),
    "super_in_run": ("super()", r"super\(\) is not supported in run\(\)"),
    "super_in_helper": ("super()", r"super\(\) is not supported"),
    "unresolvable_self": ("self.learning_rate", r"cannot resolve self\.learning_rate"),
    "getattr_self": ("getattr(self", r"getattr\(self, \.\.\.\) is not supported"),
    "star_import": ("import *", r"star import `from torch\.nn\.functional import \*`"),
    "rebind_net": ("net = copy", r"run\(\) rebinds `net`"),
    "return_value": ("return net", r"run\(\) returns a value"),
    "global_statement": ("global CALLS", r"`global CALLS` is not supported"),
    "assigns_self": ("self.lr = self", r"assigning self\.lr outside __init__"),
    "self_as_value": ("describe(self)", r"`self` used as a value"),
    "non_literal_hyperparameter": ("print(self.mask)", r"self\.mask = tensor.*cannot be written into the notebook"),
}


def line_of(path, text):
    """The 1-based line of ``text`` in ``path``: where the error must point."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@pytest.mark.parametrize("stem", sorted(CASES))
def test_unsupported_construct_is_reported_with_file_and_line(stem):
    marker, pattern = CASES[stem]
    path = REJECTED / f"{stem}.py"
    line = line_of(path, marker)
    with pytest.raises(BuildError) as caught:
        extract_unlearning(resolve_target(str(path)))
    message = str(caught.value)
    assert f"{path.name}:{line}" in message
    assert re.search(pattern, message), message
    assert "\n" not in message


def test_syntax_error_names_file_and_line():
    line = line_of(REJECTED / "syntax_error.py", "def run")
    with pytest.raises(BuildError, match=rf"syntax_error\.py:{line}:\d+: syntax error"):
        resolve_target(str(REJECTED / "syntax_error.py"))


def test_file_without_method_class_is_reported():
    with pytest.raises(BuildError, match="no method class found"):
        resolve_target(str(REJECTED / "no_method_class.py"))


def test_unknown_method_name_lists_the_registered_ones():
    with pytest.raises(BuildError, match="unknown method 'nope'.*finetune"):
        resolve_target("nope")


EXITING_METHOD = '''
import sys

from methods.base import BaseMethod
{module_exit}

class Exiting(BaseMethod):
    name = "exiting"

    def __init__(self, lr: float = 0.1):
        {init_exit}
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.eval()
'''


@pytest.mark.parametrize(
    "module_exit, init_exit",
    [("sys.exit(3)", "pass"), ("", "raise SystemExit(3)")],
    ids=["on-import", "in-init"],
)
def test_method_file_that_calls_exit_is_refused_in_one_line(tmp_path, module_exit, init_exit):
    path = tmp_path / "exiting.py"
    path.write_text(EXITING_METHOD.format(module_exit=module_exit, init_exit=init_exit))
    with pytest.raises(BuildError) as caught:
        extract_unlearning(resolve_target(str(path)))
    message = str(caught.value)
    assert "SystemExit (exit(3) was called)" in message
    assert "\n" not in message
