"""What a faithful reference model costs at each network width, measured on this machine.

The faithful preset runs a width-8 ResNet-18 because the competition's full-width
network does not fit a 2-core afternoon; this says by how much, so a researcher can
see whether ``faithful_full`` fits the machine (or GPU) they have before starting
a build of hours. It trains each architecture with the faithful preset's own
``train_model`` and retraining recipe (Adam, batch 64, class-weighted, unnormalised
inputs) for one epoch over the same ``--images`` retain images, in alternating
rounds so that every width sees the same machine state, and projects one model
and the 1 + 2N reference build from the recipe's epoch count. Validation passes
(one forward pass over 2,600 images per epoch) are left out of the projection.
Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_widths.py                       # one thread, 3 rounds
    .venv/bin/python benchmarks/bench_widths.py --device cuda --rounds 2
    python3 benchmarks/bench_widths.py --device cuda --data-root .fmnist   # a GPU machine, data carried

It writes benchmarks/results/widths-<device>.json and .md (``--out`` elsewhere).
Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_metric import device_name, finished_at, write_results  # noqa: E402

from local_eval.data.roles import load_eval_data, train_indices  # noqa: E402
from local_eval.devices import synchronize  # noqa: E402
from local_eval.scoring.models import build_model  # noqa: E402
from local_eval.scoring.presets import get_preset  # noqa: E402
from local_eval.scoring.references import retrained_seed  # noqa: E402
from local_eval.scoring.training import train_model  # noqa: E402

ARCHES = ("resnet18_w8", "resnet18_w16", "resnet18")


def epoch_seconds(arch: str, data, indices: torch.Tensor, recipe, seed: int, device) -> float:
    """Wall seconds of one epoch of ``train_model`` over ``indices`` on a fresh model."""
    torch.manual_seed(seed)
    model = build_model(arch)
    one_epoch = dataclasses.replace(recipe, epochs=1, checkpoint="last", checkpoint_start=0)
    synchronize(device)
    started = time.perf_counter()
    train_model(model, data.train.images, data.train.labels, indices, one_epoch, seed=seed, device=device)
    synchronize(device)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="faithful", help="whose data and recipe (default faithful)")
    parser.add_argument("--arches", default=",".join(ARCHES), help="comma-separated architectures")
    parser.add_argument("--images", type=int, default=1280, help="retain images per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per architecture")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (a Ray task uses 1)")
    parser.add_argument("--data-root", default=None, help="folder holding Fashion-MNIST's idx files")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = get_preset(args.preset, {"data_root": args.data_root} if args.data_root else None)
    recipe = preset.retrain_recipe
    data = load_eval_data(preset)
    retain = train_indices(data, "retrained")
    indices = retain[: args.images]
    arches = [a.strip() for a in args.arches.split(",") if a.strip()]
    seed = retrained_seed(preset, 0)

    epoch_seconds(arches[0], data, indices[: 2 * recipe.batch_size], recipe, seed, device)  # warm-up
    timings: dict[str, list[float]] = {arch: [] for arch in arches}
    with tqdm(total=args.rounds * len(arches), desc="epochs", unit="epoch") as bar:
        for _ in range(args.rounds):
            for arch in arches:
                timings[arch].append(epoch_seconds(arch, data, indices, recipe, seed, device))
                bar.update()

    models = 1 + 2 * preset.n_models
    image_steps = recipe.epochs * len(retain)
    rows = []
    for arch in arches:
        seconds = statistics.median(timings[arch])
        rate = len(indices) / seconds
        model_seconds = image_steps / rate
        rows.append({
            "arch": arch,
            "epoch_seconds": [round(s, 3) for s in timings[arch]],
            "images_per_second": round(rate, 1),
            "projected_model_seconds": round(model_seconds, 1),
            "projected_references_core_hours": round(models * model_seconds / 3600, 2),
        })
    fastest = max(row["images_per_second"] for row in rows)
    for row in rows:
        row["slowdown_vs_fastest"] = round(fastest / row["images_per_second"], 2)

    name = device_name(device)
    result = {
        "benchmark": "faithful reference training cost by network width",
        "preset": preset.name,
        "recipe_epochs": recipe.epochs,
        "retain_images": len(retain),
        "timed_images": len(indices),
        "reference_models": models,
        "rounds": args.rounds,
        "device": str(device),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
        "torch": torch.__version__,
        "finished_at": finished_at(),
    }
    lines = [
        f"Preset {preset.name} retraining recipe ({recipe.epochs} epochs x {len(retain)} images), "
        f"one epoch over {len(indices)} of them timed {args.rounds} times per width in alternating "
        f"rounds on {device} ({name}, {result['torch_threads']} threads), median; "
        f"projected to one model and the {models}-model reference build (validation passes left out). "
        f"{result['finished_at']}",
        "",
        "| arch | images/s | x slower | one model | references (1 + 2N), one worker |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['arch']} | {row['images_per_second']:,.0f} | {row['slowdown_vs_fastest']:.1f} | "
            f"{row['projected_model_seconds'] / 60:,.0f} min | "
            f"{row['projected_references_core_hours']:,.1f} h |"
        )
    note = "\n".join(lines) + "\n"
    stem = f"widths-{device.type}"
    write_results(args.out, stem, result, note)


if __name__ == "__main__":
    main()
