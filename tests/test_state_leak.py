"""The dry-run finds state a method leaves on the network the competition's notebook reuses.

Unit tests compare a network after a method's run() with a fresh one; the dry-run
tests execute built notebooks whose driver reuses one network, as the official one does.
"""

import json
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from builder.notebook import build_notebook
from builder.render import NotebookParameters
from local_eval.replica.dryrun import DryRunFailed, dry_run
from local_eval.replica.state_leak import find_leaks, leak_report
from methods.base import new_method
from tests.equivalence import _loaders, tiny_model

LEAKING = Path(__file__).parent / "leaking_methods"


def leaks_of(stem):
    from builder.discover import resolve_target

    net = tiny_model()
    new_method(resolve_target(str(LEAKING / f"{stem}.py")).cls).run(net, *_loaders(7, True))
    return [(leak.path, leak.kind) for leak in find_leaks(net, tiny_model())]


def test_hook_registered_on_every_call_is_found_with_its_module():
    assert leaks_of("hook_every_call") == [("fc", "hook registered")]


def test_conv1_left_frozen_is_found_as_requires_grad_changed():
    assert leaks_of("freezes_conv1") == [("conv1.weight", "requires_grad changed")]


def test_method_that_restores_what_it_changed_has_no_leak():
    assert leaks_of("clean_freeze") == []


def test_replaced_module_is_reported_once_not_per_child():
    net = resnet18(num_classes=10)
    net.fc = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Linear(512, 10))
    assert [(leak.path, leak.kind) for leak in find_leaks(net, resnet18(num_classes=10))] == [
        ("fc", "module replaced")
    ]


def test_changed_batchnorm_momentum_and_added_attribute_are_found():
    net = resnet18(num_classes=10)
    net.layer1[0].bn1.momentum = 0.5
    net.saliency = {"conv1": 1.0}
    kinds = [(leak.path, leak.kind) for leak in find_leaks(net, resnet18(num_classes=10))]
    assert kinds == [("net", "attribute added"), ("layer1.0.bn1", "attribute changed")]


def test_global_module_hook_is_found():
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        leaks = find_leaks(resnet18(num_classes=10), resnet18(num_classes=10))
    finally:
        handle.remove()
    assert [leak.kind for leak in leaks] == ["hook registered"]


def test_report_names_file_module_kind_and_fix_on_one_line_each():
    net = resnet18(num_classes=10)
    net.conv1.weight.requires_grad_(False)
    net.fc.register_forward_hook(lambda *args: None)
    lines = leak_report(find_leaks(net, resnet18(num_classes=10)), "methods/x.py").splitlines()
    assert lines[0].startswith("methods/x.py: conv1.weight: requires_grad changed (True -> False); fix: restore")
    assert lines[1].startswith("methods/x.py: fc: hook registered (1 forward hook); fix: keep the handle")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak_notebooks")

    def build(stem):
        return build_notebook(str(LEAKING / f"{stem}.py"), parameters=NotebookParameters(), out_root=root).path

    return build


@pytest.mark.slow
@pytest.mark.parametrize(
    "stem, where",
    [
        ("hook_every_call", "hook_every_call.py: fc: hook registered (2 forward hooks)"),
        ("freezes_conv1", "freezes_conv1.py: conv1.weight: requires_grad changed (True -> False)"),
    ],
)
def test_dry_run_fails_a_method_that_leaves_state_on_the_reused_net(stem, where, built, dryrun_mock):
    with pytest.raises(DryRunFailed) as caught:
        dry_run(built(stem), data_dir=dryrun_mock, n_checkpoints=2)
    assert "reuses that network for its next call" in str(caught.value)
    assert where in str(caught.value)


@pytest.fixture(scope="module")
def clean_run(built, dryrun_mock):
    result = dry_run(built("clean_freeze"), data_dir=dryrun_mock, n_checkpoints=2)
    return result, json.loads(result.report.read_text())


@pytest.mark.slow
def test_dry_run_passes_a_method_that_restores_what_it_changed(clean_run):
    result, record = clean_run
    assert result.ok and record["error"] is None


@pytest.mark.slow
def test_dry_run_records_a_kaggle_projection_for_both_gpus(clean_run):
    _, record = clean_run
    projection = record["kaggle_projection"]
    assert sorted(projection["seconds_per_call"]) == ["P100", "T4"]
    assert projection["flops_by_split"]["retain"] > 0
