"""Architectures keep torchvision's ResNet-18 layout; the training recipe learns and is reproducible."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, ResNet

from local_eval.data.datasets import load_dataset
from local_eval.errors import EvalError
from local_eval.scoring.models import ARCHITECTURES, build_model
from local_eval.scoring.training import (
    Recipe,
    augment_batch,
    evaluate_accuracy,
    predict_logits,
    train_model,
)

QUICK = Recipe(epochs=4, lr=0.02, batch_size=32, augment=False)


def torchvision_layout() -> dict[str, tuple[int, ...]]:
    return {
        k: tuple(v.shape) for k, v in resnet18(weights=None, num_classes=10).state_dict().items()
    }


def test_resnet18_is_the_competitions_torchvision_model():
    model = build_model("resnet18")
    layout = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert layout == torchvision_layout()


@pytest.mark.parametrize("arch", ["resnet18_w16", "resnet18_w8", "resnet18_tiny"])
def test_narrow_variants_keep_torchvision_module_names(arch):
    model = build_model(arch)
    assert list(model.state_dict()) == list(torchvision_layout())
    assert [name for name, _ in model.named_modules()] == [
        name for name, _ in resnet18(weights=None, num_classes=10).named_modules()
    ]


@pytest.mark.parametrize(("arch", "width"), [("resnet18_w16", 16), ("resnet18_w8", 8), ("resnet18_tiny", 4)])
def test_narrow_variants_shrink_channels_from_the_stem(arch, width):
    model = build_model(arch)
    assert model.conv1.out_channels == width
    assert model.fc.in_features == 8 * width
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)


def test_narrow_variants_are_torchvision_resnets_of_basic_blocks():
    model = build_model("resnet18_w16")
    assert isinstance(model, ResNet)
    assert all(isinstance(block, BasicBlock) for block in model.layer3)
    assert model.layer2[0].downsample is not None


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_models_map_a_0_255_batch_to_ten_logits(arch):
    logits = build_model(arch).eval()(torch.rand(2, 3, 32, 32) * 255)
    assert logits.shape == (2, 10)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(EvalError, match="resnet18_w16"):
        build_model("resnet50")


def test_training_lifts_a_tiny_model_above_chance_on_unseen_images():
    train = load_dataset("synthetic", "train", size=400)
    test = load_dataset("synthetic", "test", size=200)
    torch.manual_seed(0)
    model = build_model("resnet18_tiny")
    train_model(model, train.images, train.labels, range(400), QUICK, seed=0, device="cpu")
    assert evaluate_accuracy(model, test.images, test.labels, range(200), "cpu") > 0.3


def test_training_is_deterministic_for_a_seed_on_cpu():
    train = load_dataset("synthetic", "train", size=96)
    recipe = Recipe(epochs=1, batch_size=32)

    def trained(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model("resnet18_tiny")
        return train_model(
            model, train.images, train.labels, range(96), recipe, seed, "cpu"
        ).state_dict()

    first, again, other = trained(1), trained(1), trained(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_trained_model_is_returned_in_eval_mode():
    train = load_dataset("synthetic", "train", size=64)
    model = build_model("resnet18_tiny")
    train_model(model, train.images, train.labels, range(64), Recipe(epochs=1), 0, "cpu")
    assert not model.training


def test_predict_logits_keeps_order_and_restores_train_mode():
    data = load_dataset("synthetic", "test", size=20)
    model = build_model("resnet18_tiny").train()
    logits = predict_logits(model, data.images, [5, 2, 9], "cpu", batch_size=2)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = model(data.images[[5, 2, 9]].float())
    assert torch.allclose(logits, expected, atol=1e-5)


def test_augmentation_crops_and_flips_without_changing_shape_or_range():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) % 256
    out = augment_batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert not torch.equal(out, images)


def test_training_on_fewer_than_two_images_is_a_clear_error():
    data = load_dataset("synthetic", "train", size=8)
    with pytest.raises(EvalError, match="at least 2 images"):
        train_model(
            build_model("resnet18_tiny"), data.images, data.labels, [0], Recipe(epochs=1), 0, "cpu"
        )
