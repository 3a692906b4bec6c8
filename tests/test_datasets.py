"""Datasets arrive as uint8 [N, 3, 32, 32] with int64 labels; loaders batch them like Kaggle."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from local_eval.data import datasets
from local_eval.data.datasets import (
    DEBIAN_FASHION_MNIST,
    DatasetUnavailable,
    load_dataset,
    read_idx,
    stratified_subset,
)
from local_eval.data.loaders import make_loader
from local_eval.errors import EvalError

needs_debian_fashion_mnist = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION_MNIST})",
)


def write_idx(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())
    return path


@pytest.fixture
def idx_folder(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A miniature Fashion-MNIST in the IDX format, as a user's --data-root would hold it."""
    rng = np.random.default_rng(0)
    grey = rng.integers(1, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.arange(12, dtype=np.uint8) % 10
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", grey)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return tmp_path, grey, labels


@needs_debian_fashion_mnist
def test_fashion_mnist_is_uint8_rgb_32x32_with_int64_labels():
    data = load_dataset("fashion_mnist", "test", size=50)
    assert data.images.shape == (50, 3, 32, 32)
    assert data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64
    assert len(data.classes) == 10


@needs_debian_fashion_mnist
def test_fashion_mnist_full_splits_have_the_published_sizes():
    assert len(load_dataset("fashion_mnist", "test")) == 10_000
    assert len(read_idx(DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz")) == 60_000


def test_fashion_mnist_pads_28x28_with_zeros_and_repeats_grey_into_three_channels(idx_folder):
    root, grey, _ = idx_folder
    data = load_dataset("fashion_mnist", "train", data_root=str(root))
    assert torch.equal(data.images[:, 0, 2:30, 2:30], torch.from_numpy(grey))
    border = data.images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.max()) == 0
    assert torch.equal(data.images[:, 0], data.images[:, 1])
    assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_fashion_mnist_reads_labels_from_data_root(idx_folder):
    root, _, labels = idx_folder
    data = load_dataset("fashion_mnist", "test", data_root=str(root))
    assert data.labels.tolist() == labels.tolist()


def test_truncated_idx_file_is_reported_with_its_path(tmp_path):
    path = tmp_path / "broken-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 5, 28, 28) + b"\x00" * 100)
    with pytest.raises(DatasetUnavailable, match="truncated") as raised:
        read_idx(path)
    assert str(path) in str(raised.value)


def test_cifar10_offline_without_a_copy_says_how_to_provide_it(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise URLError("network is unreachable")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    datasets._read_cifar10.cache_clear()
    with pytest.raises(DatasetUnavailable) as raised:
        load_dataset("cifar10", "train", data_root=str(tmp_path))
    message = str(raised.value)
    assert isinstance(raised.value, EvalError)
    assert "--data-root" in message and "cifar-10-batches-py" in message
    assert str(tmp_path) in message
    assert "\n" not in message


def test_fashion_mnist_without_debian_files_or_network_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):
        raise URLError("network is unreachable")

    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(DatasetUnavailable) as raised:
        load_dataset("fashion_mnist", "test", data_root=str(tmp_path / "empty"))
    message = str(raised.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--data-root" in message
    assert "\n" not in message


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(EvalError, match="fashion_mnist"):
        load_dataset("mnist")


def test_asking_for_more_images_than_the_split_holds_is_a_clear_error(idx_folder):
    root, _, _ = idx_folder
    with pytest.raises(EvalError, match="only 12"):
        load_dataset("fashion_mnist", "train", data_root=str(root), size=13)


def test_subset_keeps_the_class_proportions():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    chosen = stratified_subset(labels, 100, seed=3)
    assert np.bincount(labels[chosen], minlength=4).tolist() == [40, 30, 20, 10]


def test_subset_is_deterministic_for_a_seed_and_changes_with_it():
    labels = np.arange(1000) % 10
    first, again = stratified_subset(labels, 50, seed=1), stratified_subset(labels, 50, seed=1)
    other = stratified_subset(labels, 50, seed=2)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len(np.unique(first)) == 50


def test_synthetic_is_deterministic_for_a_seed_and_changes_with_it():
    first = load_dataset("synthetic", "train", seed=5, size=64)
    datasets._load_cached.cache_clear()
    again = load_dataset("synthetic", "train", seed=5, size=64)
    other = load_dataset("synthetic", "train", seed=6, size=64)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)


def test_synthetic_train_and_test_images_differ():
    train = load_dataset("synthetic", "train", size=64)
    test = load_dataset("synthetic", "test", size=64)
    assert train.images.shape == test.images.shape == (64, 3, 32, 32)
    assert not torch.equal(train.images, test.images)


def test_dict_loader_yields_float_images_in_0_255_and_int64_age_groups():
    data = load_dataset("synthetic", "train", size=40)
    batch = next(iter(make_loader(data.images, data.labels, range(10), batch_size=4)))
    assert set(batch) == {"image", "age_group"}
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 3, 32, 32)
    assert batch["age_group"].dtype == torch.int64
    assert float(batch["image"].max()) > 1.0


def test_tuple_loader_yields_inputs_and_targets():
    data = load_dataset("synthetic", "train", size=40)
    inputs, targets = next(
        iter(make_loader(data.images, data.labels, [3, 4], shuffle=False, batch_format="tuple"))
    )
    assert torch.equal(inputs, data.images[[3, 4]].float())
    assert torch.equal(targets, data.labels[[3, 4]])


def test_loader_covers_exactly_its_indices():
    data = load_dataset("synthetic", "train", size=40)
    indices = [1, 5, 7, 20, 33]
    loader = make_loader(data.images, data.labels, indices, batch_size=2)
    seen = torch.cat([batch["image"] for batch in loader])
    assert len(loader.dataset) == len(indices)
    expected = sorted(data.images[indices].float().flatten(1).sum(1).tolist())
    assert sorted(seen.flatten(1).sum(1).tolist()) == expected


def test_seeded_loader_reproduces_its_shuffles():
    data = load_dataset("synthetic", "train", size=40)

    def orders(seed: int) -> list[list[int]]:
        loader = make_loader(data.images, data.labels, range(40), batch_size=40, seed=seed)
        return [
            batch["age_group"].tolist() + batch["image"][:, 0, 0, 0].tolist() for batch in loader
        ]

    assert orders(1) == orders(1)
    assert orders(1) != orders(2)
