"""What persons with an identity change: the same pool, split and seed with both kinds of person.

For each preset given (by default the full-width small preset with filmed persons
and its ``_groups`` twin), on split 0 (seed 0):

- how alike a person's training images are against other persons of the same
  class (``local_eval.data.persons.person_similarity``: pixel correlation, and how
  often an image's nearest same-class image is of its own person);
- what the models do on the forget persons: the original's forget accuracy and
  mean logit-scaled confidence against the N retrained models' (mean over models,
  with the spread across them), and the test accuracy for scale;

and, where boards are given, how alike two boards order their methods
(``make agree``) and each board's line against Kaggle's order. Reference models
come from the cache (``make references`` builds them; this builds what is missing,
on the executor given). Run:

    .venv/bin/python benchmarks/bench_persons.py [--n-models 16] [--executor ray] \
        [--boards docs/leaderboard-faithful_small_full_groups.md docs/leaderboard-faithful_small_full.md]

It writes benchmarks/results/persons.json and docs/persons.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_metric import finished_at  # noqa: E402
from builder.atomic_files import write_json_atomic, write_text_atomic  # noqa: E402
from local_eval.boards.board_orders import agreement_text, order_agreement, read_board  # noqa: E402
from local_eval.data.persons import person_similarity  # noqa: E402
from local_eval.data.roles import load_eval_data  # noqa: E402
from local_eval.scoring.executors import make_executor  # noqa: E402
from local_eval.scoring.presets import get_preset  # noqa: E402
from local_eval.scoring.references import build_references  # noqa: E402

KAGGLE_LINE = "**Against Kaggle's order.**"


def measure(name: str, n_models: int, executor_name: str) -> dict:
    preset = get_preset(name, {"n_models": n_models})
    data = load_eval_data(preset)
    similarity = person_similarity(data.train.images, data.train.labels, data.split.person_ids)
    executor = make_executor(executor_name, device="cpu")
    try:
        refs = build_references(preset, torch.device("cpu"), data=data, executor=executor)
    finally:
        executor.close()

    def spread(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "sd": statistics.stdev(values)}

    retrained = refs.reference
    return {
        "preset": name,
        "persons": preset.persons,
        "n_models": n_models,
        "forget_images": len(data.forget),
        "forget_persons": len(data.split.forget_persons),
        "similarity": similarity.as_dict(),
        "original": {
            "forget_accuracy": refs.original.forget_accuracy,
            "forget_confidence": float(refs.original.forget_confidences.double().mean()),
            "test_accuracy": refs.original.test_accuracy,
        },
        "retrained": {
            "forget_accuracy": spread([r.forget_accuracy for r in retrained]),
            "forget_confidence": spread(
                [float(r.forget_confidences.double().mean()) for r in retrained]
            ),
            "test_accuracy": spread([r.test_accuracy for r in retrained]),
        },
    }


def shown(path: Path) -> str:
    """A board's path as a reader of docs/ sees it: relative to the checkout where it lies there."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def kaggle_line(board: Path) -> str:
    for line in board.read_text(encoding="utf-8").splitlines():
        if line.startswith(KAGGLE_LINE):
            return line
    return f"({board} has no line against Kaggle's order)"


def report(rows: list[dict], boards: list[Path]) -> str:
    lines = [
        "# Persons with an identity: what they change",
        "",
        "Same pool, split 0 and seed 0 for both kinds of person; `groups` are random same-class "
        "images (the earlier replica), `frames` one subject filmed several times "
        "(`local_eval/data/persons.py`). Made by `benchmarks/bench_persons.py` "
        f"({finished_at()}).",
        "",
        "## How alike a person's images are",
        "",
        "Pixel correlation (Pearson) between two training images of one person, and between an "
        "image and other persons' images of the same class; *nearest*: the share of images whose "
        "most correlated same-class image is of their own person, against what a random "
        "same-class image gives.",
        "",
        "| preset | persons | within a person | other persons, same class | nearest is own person | by chance |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row["similarity"]
        lines.append(
            f"| `{row['preset']}` | {row['persons']} | {s['within']:.3f} | {s['between']:.3f} | "
            f"{s['nearest_same_person']:.1%} | {s['nearest_by_chance']:.1%} |"
        )
    lines += [
        "",
        "## What the models do on the forget persons",
        "",
        "The original (trained on them) against the N retrained models (never saw them): "
        "accuracy and mean logit-scaled confidence on the forget images; retrained figures are "
        "the mean ± the spread (sd) across models.",
        "",
        "| preset | persons | N | forget images (persons) | original forget acc. | retrained forget acc. | "
        "original confidence | retrained confidence | original test acc. | retrained test acc. |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        o, r = row["original"], row["retrained"]
        lines.append(
            f"| `{row['preset']}` | {row['persons']} | {row['n_models']} | "
            f"{row['forget_images']} ({row['forget_persons']}) | {o['forget_accuracy']:.3f} | "
            f"{r['forget_accuracy']['mean']:.3f} ± {r['forget_accuracy']['sd']:.3f} | "
            f"{o['forget_confidence']:.2f} | {r['forget_confidence']['mean']:.2f} ± "
            f"{r['forget_confidence']['sd']:.2f} | {o['test_accuracy']:.3f} | "
            f"{r['test_accuracy']['mean']:.3f} ± {r['test_accuracy']['sd']:.3f} |"
        )
    if len(boards) == 2:
        first, second = (read_board(shown(path)) if Path(shown(path)).exists() else read_board(path) for path in boards)
        lines += [
            "",
            "## The boards",
            "",
            "```",
            agreement_text(first, second, order_agreement(first.scores, second.scores)),
            "```",
            "",
            *(f"- `{shown(path)}`: {kaggle_line(path)}" for path in boards),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets", nargs="+", default=["faithful_small_full_groups", "faithful_small_full"]
    )
    parser.add_argument("--n-models", type=int, default=16)
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--boards", nargs=2, type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    rows = [measure(name, args.n_models, args.executor) for name in args.presets]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "persons.json", {"rows": rows, "finished_at": finished_at()})
    text = report(rows, args.boards or [])
    write_text_atomic(args.docs / "persons.md", text)
    print(text, end="")


if __name__ == "__main__":
    main()
