"""What every registered competition method promises the notebook that calls it.

Each method runs once per batch format on a tiny torchvision-named ResNet and tiny
random data (with hyperparameters shrunk so the suite stays fast); the tests below
check the contract on those runs.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.models.resnet import BasicBlock, ResNet

from methods import all_method_handlers
from methods.amnesiacs import Amnesiacs
from methods.fanchuan import Fanchuan
from methods.forget import Forget
from methods.kookmin import Kookmin
from methods.salun import SalUn
from methods.scrub import Scrub
from methods.sebastian import Sebastian
from methods.seif import Seif
from methods.sun import Sun

NUM_CLASSES = 4
BATCH_SIZE = 16

# The shortest run of each method that still exercises every phase.
SHORT_RUNS = {
    Fanchuan: {"epochs": 1},
    Kookmin: {"lr_factors": (1.0,)},
    Seif: {"epochs": 1},
    Sebastian: {"epochs": 1.0},
    Amnesiacs: {"warmup_epochs": 1, "epochs": 1},
    Sun: {"partial_epochs": 2, "final_lrs": (1e-3,)},
    Forget: {"cycle_epochs": (1,)},
    SalUn: {"epochs": 1},
    Scrub: {"epochs": 1, "max_epochs": 1},
}
METHODS = list(SHORT_RUNS)
PLAIN_LITERALS = (int, float, str, bool, type(None), tuple, list, dict)


class DictDataset(Dataset):
    """Yields examples the way the competition's dataset does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "age_group": self.labels[index]}


def tiny_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES).eval()


def make_loader(size: int, seed: int, batch_format: str) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, 3, 32, 32, generator=generator) * 255
    labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)
    dataset = (
        DictDataset(images, labels) if batch_format == "dict" else TensorDataset(images, labels)
    )
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, generator=generator)


def make_loaders(
    batch_format: str, retain: int = 2 * BATCH_SIZE, forget: int = BATCH_SIZE, val: int = BATCH_SIZE
):
    return (
        make_loader(retain, 1, batch_format),
        make_loader(forget, 2, batch_format),
        make_loader(val, 3, batch_format),
    )


def run_method(method_class, loaders) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """(net before, net after, what run returned)."""
    torch.manual_seed(0)
    net = tiny_resnet()
    before = copy.deepcopy(net)
    returned = method_class(**SHORT_RUNS[method_class]).run(net, *loaders)
    return before, net, returned


@pytest.fixture(scope="module")
def runs() -> dict:
    """Each method run once per batch format, shared by the tests below."""
    results = {}
    for batch_format in ("dict", "tuple"):
        loaders = make_loaders(batch_format)
        for method_class in METHODS:
            results[method_class, batch_format] = run_method(method_class, loaders)
    return results


def weights_changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(
        not torch.equal(before.state_dict()[key], value)
        for key, value in after.state_dict().items()
        if value.is_floating_point()
    )


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_is_registered_under_its_name(method_class):
    assert all_method_handlers()[method_class.name] is method_class


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_hyperparameters_are_keyword_only_with_literal_defaults(method_class):
    parameters = list(inspect.signature(method_class.__init__).parameters.values())[1:]
    assert parameters, "a competition method has tunable hyperparameters"
    for parameter in parameters:
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, parameter.name
        assert isinstance(parameter.default, PLAIN_LITERALS), parameter.name
    assert method_class().hyperparameters() == {p.name: p.default for p in parameters}


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_docstring_states_cost_in_retain_epochs(method_class):
    module_doc = inspect.getmodule(method_class).__doc__
    assert "Cost: about" in module_doc and "retain epochs" in module_doc


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_returns_none(runs, method_class):
    _, _, returned = runs[method_class, "dict"]
    assert returned is None


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_leaves_net_in_eval_mode(runs, method_class):
    _, after, _ = runs[method_class, "dict"]
    assert not any(module.training for module in after.modules())


@pytest.mark.parametrize("batch_format", ["dict", "tuple"])
@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_changes_weights_with_either_batch_format(runs, method_class, batch_format):
    before, after, _ = runs[method_class, batch_format]
    assert weights_changed(before, after)


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_keeps_parameter_names_shapes_and_trainability(runs, method_class):
    before, after, _ = runs[method_class, "dict"]
    assert {k: v.shape for k, v in after.state_dict().items()} == {
        k: v.shape for k, v in before.state_dict().items()
    }
    assert [(n, p.requires_grad) for n, p in after.named_parameters()] == [
        (n, p.requires_grad) for n, p in before.named_parameters()
    ]


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_leaves_weights_finite(runs, method_class):
    _, after, _ = runs[method_class, "dict"]
    assert all(torch.isfinite(value).all() for value in after.state_dict().values())


@pytest.mark.parametrize("method_class", METHODS, ids=lambda cls: cls.name)
def test_tolerates_one_example_batches(method_class):
    """BatchNorm cannot train on one example; a loader's last batch may hold just one."""
    loaders = make_loaders(
        "tuple", retain=BATCH_SIZE + 1, forget=BATCH_SIZE + 1, val=BATCH_SIZE + 1
    )
    before, after, _ = run_method(method_class, loaders)
    assert weights_changed(before, after)
