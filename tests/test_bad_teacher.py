"""Bad Teacher reads its incompetent teacher from the bundled assets and distils towards it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.resnet import BasicBlock, ResNet

from builder.assets import collect_assets
from methods.bad_teacher import BadTeacher
from methods.common import ASSETS_ENV

NUM_CLASSES = 10


@pytest.fixture
def assets_dir(tmp_path, monkeypatch):
    """The folder the notebook (or the evaluator) points the method at."""
    folder = tmp_path / "assets"
    collect_assets(BadTeacher, folder)
    monkeypatch.setenv(ASSETS_ENV, str(folder))
    return folder


def tiny_resnet(num_classes: int = NUM_CLASSES) -> torch.nn.Module:
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes).eval()


def loader(seed: int, size: int = 16, num_classes: int = NUM_CLASSES) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, 3, 16, 16, generator=generator) * 255
    labels = torch.randint(0, num_classes, (size,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=16, shuffle=False)


def kl_to_incompetent_teacher(net, images, assets_folder) -> float:
    teacher = BadTeacher().load_incompetent_teacher(torch.device("cpu"))
    with torch.no_grad():
        target = F.softmax(teacher(images / 255.0)[:, :NUM_CLASSES], dim=1)
        return F.kl_div(F.log_softmax(net(images), dim=1), target, reduction="batchmean").item()


def test_assets_are_exactly_the_declared_teacher_file(tmp_path):
    written = collect_assets(BadTeacher, tmp_path / "a")
    assert [p.name for p in written] == list(BadTeacher.assets) == [BadTeacher.teacher_file]


def test_build_assets_writes_the_same_teacher_every_time(tmp_path):
    first = torch.load(collect_assets(BadTeacher, tmp_path / "a")[0], weights_only=True)
    torch.manual_seed(123)  # whatever the caller's random state
    second = torch.load(collect_assets(BadTeacher, tmp_path / "b")[0], weights_only=True)
    assert first["num_classes"] == second["num_classes"] == BadTeacher.teacher_classes
    assert all(
        torch.equal(first["state_dict"][k], second["state_dict"][k]) for k in first["state_dict"]
    )


def test_build_assets_leaves_the_callers_random_state_alone(tmp_path):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    collect_assets(BadTeacher, tmp_path / "a")
    assert torch.equal(torch.rand(3), expected)


def test_run_without_the_assets_folder_names_the_missing_asset(monkeypatch):
    monkeypatch.delenv(ASSETS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=BadTeacher.teacher_file):
        BadTeacher().run(tiny_resnet(), loader(1), loader(2), loader(3))


class Scale255(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 255.0


def confident_model() -> torch.nn.Module:
    """No batch norm, so train and eval mode agree, and a strong prior for class 0."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        Scale255(),
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, NUM_CLASSES),
    )
    with torch.no_grad():
        net[-1].bias[0] = 5.0
    return net.eval()


def images(seed: int, bright: bool, size: int = 16) -> torch.Tensor:
    """Bright images stand for the forget set, dark ones for the retain set: the model can tell."""
    generator = torch.Generator().manual_seed(seed)
    return (180.0 if bright else 0.0) + torch.rand(size, 3, 16, 16, generator=generator) * 60


def unlabelled(x: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=16)


def test_forget_like_predictions_become_the_incompetent_teachers(assets_dir):
    net = confident_model()
    forget_like, retain_like = images(4, bright=True), images(5, bright=False)
    before = kl_to_incompetent_teacher(net, forget_like, assets_dir)
    BadTeacher(epochs=5, lr=0.05).run(
        net,
        unlabelled(images(1, bright=False, size=32)),
        unlabelled(images(2, bright=True)),
        unlabelled(images(3, bright=False)),
    )
    after = kl_to_incompetent_teacher(net, forget_like, assets_dir)
    assert after < 0.5 * before
    assert after < kl_to_incompetent_teacher(net, retain_like, assets_dir)


def test_run_changes_the_model_in_place_and_leaves_it_in_eval_mode(assets_dir):
    net = tiny_resnet()
    original = copy.deepcopy(net.state_dict())
    BadTeacher().run(net, loader(1), loader(2), loader(3))
    assert not net.training
    assert any(not torch.equal(original[k], v) for k, v in net.state_dict().items())


def test_model_with_more_classes_than_the_teacher_is_explained(assets_dir):
    many = BadTeacher.teacher_classes + 1
    with pytest.raises(ValueError, match="raise teacher_classes"):
        BadTeacher().run(
            tiny_resnet(many), loader(1, num_classes=many), loader(2, num_classes=many), loader(3)
        )


def test_notebook_code_matches_the_class_with_the_bundled_teacher(assets_dir):
    from tests.equivalence import differing_tensors, run_class_and_generated

    by_class, by_notebook, source = run_class_and_generated(
        "methods/bad_teacher.py", assets_dir=assets_dir
    )
    assert differing_tensors(by_class, by_notebook) == []
    assert "build_assets" not in source
