"""Seconds per ``unlearning()`` call with PNGs decoded per item (before) and once (now).

Both variants run in one process, on the same mock input and the same generated
``unlearning()``, alternating old/new each round so that load from other jobs on a
shared machine falls on both; the ratio of medians is the figure to quote.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_decode_once.py [--rounds 5] [--method finetune]

Writes ``benchmarks/results/decode_once.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The template's data cell as it was before examples were decoded once: every
# __getitem__ opened and decoded its PNG. Kept here only as the baseline.
PER_ITEM_DATA_CELL = '''
def load_split(split):
    rows = []
    with open(os.path.join(DATA_DIR, f"{split}.csv")) as handle:
        header = handle.readline().strip().split(",")
        for line in handle:
            if line.strip():
                rows.append(dict(zip(header, line.strip().split(","))))
    return rows


class CompetitionDataset(Dataset):
    def __init__(self, split):
        self.rows = load_split(split)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        row = self.rows[index]
        person, number = row["image_id"].split("-")
        with Image.open(os.path.join(DATA_DIR, "images", person, f"{number}.png")) as png:
            pixels = np.asarray(png.convert("RGB"), dtype=np.uint8)
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
        return {
            "image": image.to(torch.float32),
            "image_id": row["image_id"],
            "age_group": torch.tensor(int(row["age_group"])),
            "age": torch.tensor(int(row["age"])),
            "person_id": row["person_id"],
        }


def make_loaders():
    retain = DataLoader(CompetitionDataset("retain"), batch_size=BATCH_SIZE, shuffle=True)
    forget = DataLoader(CompetitionDataset("forget"), batch_size=BATCH_SIZE, shuffle=True)
    validation = DataLoader(CompetitionDataset("validation"), batch_size=BATCH_SIZE, shuffle=True)
    return retain, forget, validation
'''


def notebook_namespace(method: str, data_dir: Path, data_cell: str | None) -> dict:
    """The built notebook's cells up to ``unlearning``, run in a fresh namespace."""
    from builder.discover import resolve_target
    from builder.extract import extract_unlearning
    from builder.render import DRIVER_NAMES, NotebookParameters, render_notebook

    notebook = render_notebook(
        extract_unlearning(resolve_target(method), reserved=DRIVER_NAMES),
        NotebookParameters(data_dir=str(data_dir), require_gpu=False),
    )
    cells = {cell["id"]: cell.source for cell in notebook.cells}
    namespace: dict = {}
    for cell_id in ("imports", "parameters", "device-check", "data", "unlearning"):
        source = data_cell if cell_id == "data" and data_cell is not None else cells[cell_id]
        exec(compile(source, f"<{cell_id}>", "exec"), namespace)
    return namespace


def seconds_per_call(namespace: dict, loaders: tuple, original: dict) -> float:
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=10).to(namespace["DEVICE"])
    net.load_state_dict(original)
    torch.manual_seed(0)
    started = time.perf_counter()
    namespace["unlearning"](net, *loaders)
    if namespace["DEVICE"].type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def seconds_per_pass(loader) -> float:
    """One pass over a loader with no model: the data cost alone."""
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-val", type=int, default=150)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "decode_once.md")
    args = parser.parse_args(argv)

    from local_eval.replica.mock_input import build_mock_input
    from local_eval.store.files import atomic_write_text

    data_dir = build_mock_input(
        dataset="fashion_mnist", n_train=args.n_train, n_val=args.n_val, epochs=1, progress=False
    )
    variants = {
        "per item (before)": notebook_namespace(args.method, data_dir, PER_ITEM_DATA_CELL),
        "decoded once (now)": notebook_namespace(args.method, data_dir, None),
    }
    device = next(iter(variants.values()))["DEVICE"]
    original = torch.load(data_dir / "original_model.pth", map_location=device, weights_only=True)
    loaders = {name: ns["make_loaders"]() for name, ns in variants.items()}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    passes: dict[str, list[float]] = {name: [] for name in variants}
    for _ in tqdm(range(args.rounds), desc="rounds (old, new)", unit="round"):
        for name, namespace in variants.items():
            timings[name].append(seconds_per_call(namespace, loaders[name], original))
            passes[name].append(seconds_per_pass(loaders[name][0]))
    before, now = (statistics.median(timings[name]) for name in variants)
    ratios = [old / new for old, new in zip(*timings.values())]
    pass_before, pass_now = (statistics.median(passes[name]) for name in variants)
    retain = len(loaders["decoded once (now)"][0].dataset)
    lines = [
        "# Seconds per unlearning() call: PNGs decoded per item vs once",
        "",
        f"`PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_decode_once.py --rounds {args.rounds} "
        f"--method {args.method} --n-train {args.n_train} --n-val {args.n_val}`",
        "",
        f"Method `{args.method}` (notebook code), torchvision `resnet18(num_classes=10)` on {device.type}, "
        f"Fashion-MNIST mock ({retain} retain images, batch 64), torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s) "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}).",
        "",
        "| variant | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |",
        "|---|" + "---|" * (args.rounds + 1),
    ]
    for name, values in timings.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f} s" for v in values) + f" | {statistics.median(values):.2f} s |")
    lines += [
        "",
        f"Ratio before/now of the medians: **{before / now:.2f}x**; median of the per-round ratios: "
        f"**{statistics.median(ratios):.2f}x** (per round: {', '.join(f'{r:.2f}' for r in ratios)}).",
        "",
        f"The data alone (one pass over the retain loader, no model, median of {args.rounds}): "
        f"{pass_before:.3f} s per item-decoding pass, {pass_now:.3f} s decoded once "
        f"({pass_before / pass_now:.1f}x); that difference is what every epoch of every call saves.",
        "",
        "Caveat: measured on a machine shared with other jobs; old and new alternate each round so that "
        "load falls on both, but single rounds vary. Decoding is a fixed cost per image, so the ratio "
        "grows as the method's own work per image shrinks (a GPU, as on Kaggle, does that work far "
        "faster than this CPU).",
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
