"""The smallest folder in the competition's input layout, written in milliseconds.

Three CSVs with a few rows each (persons 1-2 retained, 3 forgotten, 4 validation),
one 32x32 RGB PNG per row and an ``original_model.pth`` for
``resnet18(num_classes=10)``: enough to pass the input checks, for tests that run a
notebook which only needs the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models import resnet18

ROWS = {
    "retain.csv": [("1-0", 3, 25, 1), ("1-1", 3, 25, 1), ("2-0", 5, 41, 2)],
    "forget.csv": [("3-0", 7, 57, 3)],
    "validation.csv": [("4-0", 2, 17, 4), ("4-1", 2, 17, 4)],
}
HEADER = "image_id,age_group,age,person_id"


def write_competition_input(folder: Path, state: dict | None = None, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, rows in ROWS.items():
        lines = [HEADER] + [",".join(map(str, row)) for row in rows]
        (folder / name).write_text("\n".join(lines) + "\n")
        for image_id, *_ in rows:
            person, number = image_id.split("-")
            (folder / "images" / person).mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "images" / person / f"{number}.png")
    if state is None:
        torch.manual_seed(seed)
        state = resnet18(weights=None, num_classes=10).state_dict()
    torch.save(state, folder / "original_model.pth")
    return folder
