"""Models per hour: reference models trained one at a time against M at once as an ensemble.

Trains the same K retrained models of a preset twice on one device: one model
per call of ``train_model`` (what one task per model does), then in groups of M
with ``local_eval.scoring.ensemble.train_ensemble``; only training is timed.
Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_ensemble.py [--preset cpu] [--models 8] [--ensemble 4]
    .venv/bin/python benchmarks/bench_ensemble.py --device cuda --models 32 --ensemble 8

It writes benchmarks/results/ensemble-<device>.json and .md (``--out`` elsewhere).
Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_metric import device_name, finished_at, write_results  # noqa: E402

from local_eval.devices import synchronize  # noqa: E402
from local_eval.scoring.ensemble import train_ensemble  # noqa: E402
from local_eval.scoring.models import build_model  # noqa: E402
from local_eval.scoring.presets import get_preset  # noqa: E402
from local_eval.scoring.references import load_eval_data, retrained_seed, train_indices  # noqa: E402
from local_eval.scoring.training import train_model  # noqa: E402


def fresh_models(arch: str, seeds: list[int], device: torch.device) -> list[torch.nn.Module]:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build_model(arch).to(device))
    return models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--models", type=int, default=8, help="K models trained each way")
    parser.add_argument("--ensemble", type=int, default=4, help="M models per ensemble")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = get_preset(args.preset)
    recipe = preset.retrain_recipe
    if args.epochs:
        recipe = type(recipe)(**{**recipe.__dict__, "epochs": args.epochs})
    data = load_eval_data(preset)
    indices = train_indices(data, "retrained")
    images, labels = data.train.images, data.train.labels
    seeds = [retrained_seed(preset, i) for i in range(args.models)]

    started = time.perf_counter()
    for model, seed in zip(fresh_models(preset.arch, seeds, device), seeds):
        train_model(model, images, labels, indices, recipe, seed=seed, device=device)
    synchronize(device)
    single_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for start in range(0, len(seeds), args.ensemble):
        group = seeds[start : start + args.ensemble]
        members = fresh_models(preset.arch, group, device)
        train_ensemble(members, images, labels, indices, recipe, group, device)
    synchronize(device)
    ensemble_seconds = time.perf_counter() - started

    name = device_name(device)
    result = {
        "benchmark": "reference training, one model per task vs ensembles",
        "preset": preset.name,
        "arch": preset.arch,
        "epochs": recipe.epochs,
        "train_examples": len(indices),
        "models": args.models,
        "ensemble": args.ensemble,
        "device": str(device),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "single_seconds": round(single_seconds, 2),
        "ensemble_seconds": round(ensemble_seconds, 2),
        "single_models_per_hour": round(3600 * args.models / single_seconds, 1),
        "ensemble_models_per_hour": round(3600 * args.models / ensemble_seconds, 1),
        "speedup": round(single_seconds / ensemble_seconds, 3),
        "torch": torch.__version__,
        "finished_at": finished_at(),
    }
    note = (
        f"Preset {preset.name} ({preset.arch}, {recipe.epochs} epochs x {len(indices)} images), "
        f"{args.models} models on {device} ({name}, {result['torch_threads']} threads): "
        f"one at a time {result['single_models_per_hour']} models/h, ensembles of "
        f"{args.ensemble} {result['ensemble_models_per_hour']} models/h "
        f"(x{result['speedup']}). {result['finished_at']}\n"
    )
    stem = f"ensemble-{device.type}"
    write_results(args.out, stem, result, note)


if __name__ == "__main__":
    main()
