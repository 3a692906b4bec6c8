"""How fast one full-width training step runs under each precision, memory layout and thread count.

The reference models are the slow part of a full-width board, so this times the
step they repeat: torchvision's ``resnet18(num_classes=10)``, a batch of 64 32x32
images, cross-entropy and an Adam step, as the organisers' recipe trains. Each
variant is timed in alternating rounds in one process (so drift of the machine
hits them alike), after warm-up steps, and reported as images per second and as
a ratio to float32 at the same thread count. Variants: float32, channels-last,
bf16 autocast, both (the recipe's ``precision="bf16"``), and, with
``--compile``, ``torch.compile`` of the float32 model. Run on an otherwise idle
machine:

    .venv/bin/python benchmarks/bench_training_step.py [--threads 1 2] [--rounds 5] [--compile]

It writes benchmarks/results/training-step.json and training-step.md. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_metric import cpu_name, finished_at, write_results  # noqa: E402
from local_eval.scoring.models import build_model  # noqa: E402

VARIANTS = {
    "float32": (False, False),
    "channels_last": (False, True),
    "bf16": (True, False),
    "bf16_channels_last": (True, True),
}


def make_step(bf16: bool, channels_last: bool, compiled: bool, batch: int):
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model("resnet18").to(memory_format=layout).train()
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-3)
    inputs = (torch.rand(batch, 3, 32, 32) * 255).contiguous(memory_format=layout)
    targets = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(inputs)
        loss = F.cross_entropy(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def images_per_second(step, steps: int, batch: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (float32)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    variants = dict(VARIANTS)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        steps = {
            name: make_step(bf16, layout, False, args.batch) for name, (bf16, layout) in variants.items()
        }
        if args.compile:
            steps["compile"] = make_step(False, False, True, args.batch)
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                rates[name].append(images_per_second(step, args.steps, args.batch))
        base = statistics.median(rates["float32"])
        for name, values in rates.items():
            rows.append(
                {
                    "threads": threads,
                    "variant": name,
                    "images_per_second": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "ratio_to_float32": statistics.median(values) / base,
                }
            )
    result = {"cpu": cpu_name(), "torch": torch.__version__, "batch": args.batch,
              "rounds": args.rounds, "steps": args.steps, "rows": rows, "finished_at": finished_at()}  # fmt: skip
    lines = [
        "# One full-width training step: precision, layout, threads",
        "",
        f"torchvision resnet18(num_classes=10), batch {args.batch} of 32x32, Adam; median of "
        f"{args.rounds} alternating rounds of {args.steps} steps after {args.warmup} warm-up steps, "
        f"one process, {result['cpu']}, torch {result['torch']}, {result['finished_at']}. Made by "
        "`benchmarks/bench_training_step.py`.",
        "",
        "| threads | variant | images/s (min-max) | ratio to float32 |",
        "|---:|---|---:|---:|",
        *(
            f"| {r['threads']} | {r['variant']} | {r['images_per_second']:.0f} "
            f"({r['min']:.0f}-{r['max']:.0f}) | {r['ratio_to_float32']:.2f} |"
            for r in rows
        ),
        "",
    ]
    write_results(args.out, "training-step", result, "\n".join(lines))


if __name__ == "__main__":
    main()
