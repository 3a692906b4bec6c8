"""Image datasets in the competition's shape: uint8 ``[N, 3, 32, 32]`` with int64 labels.

Fashion-MNIST is the default because Debian ships it (``dataset-fashion-mnist``),
so a fresh machine can dry-run and score without a network. CIFAR-10 is the
development phase's dataset and needs a download or a local copy. The synthetic
set exists so unit tests never touch the disk.

Loaded datasets are cached in memory and shared between callers: treat the
tensors as read-only.
"""

from __future__ import annotations

import functools
import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from local_eval.errors import EvalError

DATASETS = ("fashion_mnist", "cifar10", "synthetic")
SPLITS = ("train", "test")

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ROOT = Path("~/.cache/unlearnkit")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SYNTHETIC_CLASSES = tuple(f"pattern_{i}" for i in range(10))
SYNTHETIC_SIZES = {"train": 2000, "test": 500}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetUnavailable(EvalError):
    """The dataset is neither on disk nor downloadable; the message says how to provide it."""


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A whole split in memory: the mock builder and the evaluator index it directly.

    ``eq=False`` keeps identity comparison: element-wise tensor equality has no
    single truth value.
    """

    images: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]
    classes: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_dataset(
    name: str,
    split: str = "train",
    data_root: str | None = None,
    seed: int = 0,
    size: int | None = None,
) -> ImageDataset:
    """One split of ``name``, optionally a seeded class-balanced subset of ``size`` images.

    ``seed`` only matters when it changes the content: the subset drawn for
    ``size``, or the images generated for ``synthetic``.
    """
    if name not in DATASETS:
        raise EvalError(
            f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)} "
            "(fashion_mnist works offline once Debian's dataset-fashion-mnist is installed)."
        )
    if split not in SPLITS:
        raise EvalError(f"Unknown split {split!r} for dataset {name!r}: use 'train' or 'test'.")
    if size is not None and size < 1:
        raise EvalError(f"Dataset size must be a positive number of images, got {size}.")
    root = None if data_root is None else str(data_root)
    return _load_cached(name, split, root, int(seed), size)


@functools.lru_cache(maxsize=8)
def _load_cached(
    name: str, split: str, data_root: str | None, seed: int, size: int | None
) -> ImageDataset:
    if name == "synthetic":
        return _synthetic(split, seed, size or SYNTHETIC_SIZES[split])
    if name == "fashion_mnist":
        images, labels = _read_fashion_mnist(split, data_root)
        convert, classes = _to_competition_shape, FASHION_MNIST_CLASSES
    else:
        images, labels = _read_cifar10(split, data_root)
        convert, classes = (lambda x: x), CIFAR10_CLASSES
    images, labels = _subset(images, labels, size, seed, f"{split} images of {name}", "the split has")
    return ImageDataset(convert(images), labels, classes, name)


def load_pooled_dataset(
    name: str, data_root: str | None = None, seed: int = 0, size: int | None = None
) -> ImageDataset:
    """The train and test files of ``name`` as one set, optionally a seeded class-balanced subset.

    The organisers pooled every image before cutting train / validation / test
    (80/10/10); pooling Fashion-MNIST's 60,000 + 10,000 images gives their split
    56,000 training images, so a retain epoch is ~860 steps at batch 64.
    """
    if size is not None and size < 1:
        raise EvalError(f"Dataset size must be a positive number of images, got {size}.")
    root = None if data_root is None else str(data_root)
    return _load_pooled_cached(name, root, int(seed), size)


@functools.lru_cache(maxsize=2)
def _load_pooled_cached(
    name: str, data_root: str | None, seed: int, size: int | None
) -> ImageDataset:
    parts = [load_dataset(name, split, data_root=data_root, seed=seed) for split in SPLITS]
    images = torch.cat([part.images for part in parts])
    labels = torch.cat([part.labels for part in parts])
    what = f"pooled images of {name}"
    images, labels = _subset(images, labels, size, seed, what, "its train and test files hold")
    return ImageDataset(images, labels, parts[0].classes, name)


def _subset(
    images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int, what: str, holds: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded class-balanced ``size`` of them (all when ``size`` is None)."""
    if size is None:
        return images, labels
    if size > len(labels):
        raise EvalError(
            f"Asked for {size} {what}, but {holds} only {len(labels)}: lower the size option."
        )
    keep = torch.from_numpy(stratified_subset(labels.numpy(), size, seed))
    return images[keep], labels[keep]


def subset_dataset(dataset: ImageDataset, indices) -> ImageDataset:
    index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    return ImageDataset(dataset.images[index], dataset.labels[index], dataset.classes, dataset.name)


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` items whose class mix follows ``labels``.

    Items are ranked by their position within their class in a seeded shuffle,
    scaled by the class size, so every prefix of the ranking is class-proportional.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    shuffled = labels[order]
    rank_in_class = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        members = np.flatnonzero(shuffled == c)
        rank_in_class[members] = (np.arange(len(members)) + rng.random()) / len(members)
    chosen = order[np.argsort(rank_in_class, kind="stable")[:size]]
    return np.sort(chosen)


def _to_competition_shape(grey: torch.Tensor) -> torch.Tensor:
    """28x28 grey to 32x32 RGB: zero padding keeps the digit-style centring, channels repeat."""
    padded = F.pad(grey, (2, 2, 2, 2))
    return padded.unsqueeze(1).repeat(1, 3, 1, 1).contiguous()


def _fashion_mnist_folders(data_root: str | None) -> list[Path]:
    """Where IDX files may be: the user's folder (flat or torchvision's layout), then Debian's."""
    folders = []
    if data_root is not None:
        root = Path(data_root).expanduser()
        folders += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=4)
def _read_fashion_mnist(split: str, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    image_stem, label_stem = _IDX_FILES[split]
    for folder in _fashion_mnist_folders(data_root):
        image_file, label_file = _find_idx(folder, image_stem), _find_idx(folder, label_stem)
        if image_file and label_file:
            images, labels = read_idx(image_file), read_idx(label_file)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DatasetUnavailable(
                    f"{image_file} and {label_file} do not form an image/label pair "
                    f"(shapes {tuple(images.shape)} and {tuple(labels.shape)}): replace them with "
                    "the original Fashion-MNIST files."
                )
            return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
    return _download_fashion_mnist(split, data_root)


def _download_fashion_mnist(split: str, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import FashionMNIST

    root = (
        Path(data_root).expanduser() if data_root else DOWNLOAD_ROOT.expanduser() / "fashion_mnist"
    )
    try:
        data = FashionMNIST(root=str(root), train=split == "train", download=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetUnavailable(
            f"Fashion-MNIST ({split}) was not found in {DEBIAN_FASHION_MNIST}"
            + (f" or {data_root}" if data_root else "")
            + f", and downloading it into {root} failed ({_one_line(exc)}). Install Debian's package "
            "(`sudo apt-get install dataset-fashion-mnist`, or `make setup` as root), pass "
            "--data-root DIR where DIR holds train-images-idx3-ubyte.gz and its siblings, "
            "or run once with network access."
        ) from exc
    return data.data.to(torch.uint8), data.targets.to(torch.int64)


def _one_line(exc: BaseException) -> str:
    """torchvision's download errors span lines; user messages must stay one paragraph."""
    return " ".join(str(exc).split())


def read_idx(path: Path) -> np.ndarray:
    """Decode an IDX file (optionally gzipped): the format MNIST-style datasets ship in."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetUnavailable(
            f"Cannot read {path} ({exc}): the file is damaged; reinstall or re-download it."
        ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetUnavailable(
            f"{path} is not an unsigned-byte IDX file (bad magic number): "
            "replace it with the original dataset file."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetUnavailable(
            f"{path} is truncated: the header announces {expected} bytes of data but "
            f"{len(raw) - header} follow; re-download or reinstall the dataset."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=4)
def _read_cifar10(split: str, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import CIFAR10

    root = Path(data_root).expanduser() if data_root else DOWNLOAD_ROOT.expanduser() / "cifar10"
    try:
        data = CIFAR10(root=str(root), train=split == "train", download=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetUnavailable(
            f"CIFAR-10 is not available: {root} holds no cifar-10-batches-py/ folder and "
            f"downloading it failed ({_one_line(exc)}). Either run once with network access so torchvision "
            f"can download it into {root}, or pass --data-root DIR where DIR contains "
            "cifar-10-batches-py/ (the python version from https://www.cs.toronto.edu/~kriz/cifar.html)."
        ) from exc
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(data.targets, dtype=torch.int64)


def _synthetic(split: str, seed: int, size: int) -> ImageDataset:
    """Class prototypes shared by both splits, per-image noise and shifts that differ.

    Prototypes are smooth colour blobs, so a small convolutional net separates them
    in one epoch, while the noise leaves room to memorise individual images (which
    is what unlearning has to undo).
    """
    num_classes = len(SYNTHETIC_CLASSES)
    prototypes_rng = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=prototypes_rng)
    prototypes = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    prototypes = 40.0 + 175.0 * prototypes

    split_offset = SPLITS.index(split) + 1
    rng = torch.Generator().manual_seed(seed * 1_000_003 + split_offset)
    labels = torch.arange(size) % num_classes
    labels = labels[torch.randperm(size, generator=rng)]
    images = prototypes[labels]
    shifts = torch.randint(-3, 4, (size, 2), generator=rng)
    images = torch.stack(
        [
            torch.roll(img, shifts=(int(dy), int(dx)), dims=(1, 2))
            for img, (dy, dx) in zip(images, shifts)
        ]
    )
    images = images + 45.0 * torch.randn(images.shape, generator=rng)
    images = images.clamp(0, 255).round().to(torch.uint8)
    return ImageDataset(images, labels.to(torch.int64), SYNTHETIC_CLASSES, "synthetic")
