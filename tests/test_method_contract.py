"""What every registered method promises the notebook that calls it.

Each method runs on a tiny torchvision-named ResNet and tiny random data, with
hyperparameters shrunk (``SHORT_RUNS``) so the suite stays fast; the runs are
shared by the checks below, which are parametrised over the registry.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.models.resnet import BasicBlock, ResNet

from methods import all_method_handlers

NUM_CLASSES = 10
BATCH_SIZE = 16
# The shortest run of each method that still exercises every phase (by name; absent: defaults).
SHORT_RUNS = {
    "fanchuan": {"epochs": 1},
    "kookmin": {"lr_factors": (1.0,)},
    "seif": {"epochs": 1},
    "sebastian": {"epochs": 1.0},
    "amnesiacs": {"warmup_epochs": 1, "epochs": 1},
    "sun": {"partial_epochs": 2, "final_lrs": (1e-3,)},
    "forget": {"cycle_epochs": (1,)},
    "salun": {"epochs": 1},
    "scrub": {"epochs": 1, "max_epochs": 1},
    "progressive_saliency": {"max_rounds": 2},
    "ams_unlearn": {"rounds": 1},
    "hirs": {"repair_epochs": 1},
    "reset_recalibrate": {"epochs": 1.0},
}
# Kept as their sources wrote them: the starter kit's finetune (and its alias) and Bad
# Teacher train on every batch as it comes, so a one-example batch stops them, as it
# would on Kaggle.
AS_WRITTEN = {"finetune", "my_method", "bad_teacher"}
REGISTRY = all_method_handlers()
NAMES = sorted(REGISTRY)
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


def run_method(name: str, loaders) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """(net before, net after, what run returned)."""
    torch.manual_seed(0)
    net = tiny_resnet()
    before = copy.deepcopy(net)
    returned = REGISTRY[name](**SHORT_RUNS.get(name, {})).run(net, *loaders)
    return before, net, returned


@pytest.fixture(scope="module", autouse=True)
def assets(tmp_path_factory):
    """The files methods declare in ``assets``, written where the evaluator would put them."""
    folder = tmp_path_factory.mktemp("assets")
    for method_class in REGISTRY.values():
        if method_class.assets:
            method_class.build_assets(str(folder))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNLEARNKIT_ASSETS_DIR", str(folder))
        yield folder


class _RunOnFirstUse(dict):
    def __missing__(self, key: tuple[str, str]):
        name, batch_format = key
        self[key] = run_method(name, make_loaders(batch_format))
        return self[key]


@pytest.fixture(scope="module")
def runs() -> dict:
    """Each method run once per batch format, on first use, shared by the checks below: a
    test worker given part of this module runs only what its checks read."""
    return _RunOnFirstUse()


def weights_changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(
        not torch.equal(before.state_dict()[key], value)
        for key, value in after.state_dict().items()
        if value.is_floating_point()
    )


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(
        torch.equal(value, second.state_dict()[key]) for key, value in first.state_dict().items()
    )


def test_every_short_run_names_a_registered_method_and_its_hyperparameters():
    for name, hyperparameters in SHORT_RUNS.items():
        assert set(hyperparameters) <= set(REGISTRY[name]().hyperparameters()), name


@pytest.mark.parametrize("name", NAMES)
def test_is_registered_under_its_name(name):
    assert REGISTRY[name].name == name


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_have_literal_defaults(name):
    parameters = [
        p
        for p in list(inspect.signature(REGISTRY[name].__init__).parameters.values())[1:]
        if p.name != "name" and p.kind is not p.VAR_KEYWORD
    ]
    for parameter in parameters:
        assert isinstance(parameter.default, PLAIN_LITERALS), parameter.name
    assert REGISTRY[name]().hyperparameters() == {p.name: p.default for p in parameters}


@pytest.mark.parametrize("name", NAMES)
def test_returns_none_and_leaves_eval_mode(runs, name):
    _, after, returned = runs[name, "dict"]
    assert returned is None
    assert not any(module.training for module in after.modules())


@pytest.mark.parametrize("batch_format", ["dict", "tuple"])
@pytest.mark.parametrize("name", NAMES)
def test_changes_weights_with_either_batch_format(runs, name, batch_format):
    before, after, _ = runs[name, batch_format]
    assert weights_changed(before, after)


@pytest.mark.parametrize("name", NAMES)
def test_keeps_parameter_names_shapes_and_trainability(runs, name):
    before, after, _ = runs[name, "dict"]
    assert {k: v.shape for k, v in after.state_dict().items()} == {
        k: v.shape for k, v in before.state_dict().items()
    }
    assert [(n, p.requires_grad) for n, p in after.named_parameters()] == [
        (n, p.requires_grad) for n, p in before.named_parameters()
    ]


@pytest.mark.parametrize("name", NAMES)
def test_leaves_weights_finite_even_from_an_untrained_model(runs, name):
    """An untrained model on 0..255 inputs has huge logits: no loss may explode."""
    _, after, _ = runs[name, "dict"]
    assert all(torch.isfinite(value).all() for value in after.state_dict().values())


def one_example_last_batches():
    return make_loaders("tuple", retain=BATCH_SIZE + 1, forget=BATCH_SIZE + 1, val=BATCH_SIZE + 1)


@pytest.mark.parametrize("name", sorted(set(NAMES) - AS_WRITTEN))
def test_tolerates_one_example_batches(name):
    """BatchNorm cannot train on one example; a loader's last batch may hold just one."""
    before, after, _ = run_method(name, one_example_last_batches())
    assert weights_changed(before, after)


@pytest.mark.parametrize("name", sorted(AS_WRITTEN))
def test_a_method_kept_as_written_stops_on_a_one_example_batch_as_its_source_would(name):
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        run_method(name, one_example_last_batches())


@pytest.mark.parametrize("name", NAMES)
def test_is_reproducible_under_the_same_seed(runs, name):
    _, first, _ = runs[name, "dict"]
    _, second, _ = run_method(name, make_loaders("dict"))
    assert same_weights(first, second)
