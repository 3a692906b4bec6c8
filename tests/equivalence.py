"""Run a method class and its generated ``unlearning()`` side by side.

Both runs start from the same tiny model, the same data and the same seeds, so
any difference in the resulting weights is a difference in behaviour introduced
by the builder.
"""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from builder.assets import collect_assets, has_assets
from builder.discover import resolve_target
from builder.extract import extract_unlearning
from builder.hyperparameters import instantiate
from builder.render import ASSETS_ENV, DRIVER_NAMES
from local_eval.scoring.models import build_model


class DictImages(Dataset):
    """Competition-style samples: float images in 0..255 and ``age_group`` labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, as_dict: bool) -> None:
        self.images, self.labels, self.as_dict = images, labels, as_dict

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        if self.as_dict:
            return {"image": self.images[index], "age_group": self.labels[index]}
        return self.images[index], self.labels[index]


def _loaders(seed: int, as_dict: bool) -> tuple[DataLoader, DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(1234)
    images = torch.randint(0, 256, (112, 3, 32, 32), generator=generator).float()
    labels = torch.randint(0, 10, (112,), generator=generator)
    def loader(lo: int, hi: int, offset: int) -> DataLoader:
        return DataLoader(
            DictImages(images[lo:hi], labels[lo:hi], as_dict),
            batch_size=16,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed + offset),
        )
    return loader(0, 64, 0), loader(64, 80, 1), loader(80, 112, 2)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18_tiny").eval()


def run_class_and_generated(
    target: str | Path,
    overrides: dict | None = None,
    as_dict: bool = True,
    class_name: str | None = None,
    assets_dir: Path | None = None,
) -> tuple[dict, dict, str]:
    """State dicts after the class's run() and after the generated unlearning(), and the source.

    Methods with assets read them from ``assets_dir`` (required for those), exactly as
    the notebook reads its attached dataset.
    """
    method = resolve_target(str(target), class_name)
    if has_assets(method.cls):
        if assets_dir is None:
            raise ValueError(f"{method.method_name} has assets: pass assets_dir")
        collect_assets(method.cls, assets_dir)
        os.environ[ASSETS_ENV] = str(assets_dir)
    extracted = extract_unlearning(method, overrides, reserved=DRIVER_NAMES)
    namespace: dict = {"__name__": "generated_unlearning"}
    exec(compile(extracted.source, f"<unlearning of {method.method_name}>", "exec"), namespace)
    original = tiny_model()

    _seed_everything(7)
    by_class = copy.deepcopy(original)
    instantiate(method.cls, overrides or {}).run(by_class, *_loaders(7, as_dict))

    _seed_everything(7)
    by_notebook = copy.deepcopy(original)
    namespace["unlearning"](by_notebook, *_loaders(7, as_dict))
    assert not by_class.training and not by_notebook.training, "run() must leave the model in eval mode"
    return by_class.state_dict(), by_notebook.state_dict(), extracted.source


def differing_tensors(first: dict, second: dict) -> list[str]:
    assert first.keys() == second.keys()
    return [k for k in first if not torch.equal(first[k], second[k])]
