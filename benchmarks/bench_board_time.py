"""What a board costs on this machine, from the times its own build recorded.

A board's wall time is its reference models (trained two at a time with
``EXECUTOR=ray`` on 2 cores) plus its methods' runs. Both are recorded as the
board is built: each reference model's training seconds beside it in the cache
(``<model>.timing.json``), each method's ``seconds_total`` in its result JSON.
This adds them up for a chosen set of methods, so the question "how long does a
board of these methods take?" is answered from one measured build instead of a
guess. Models trained while other work shared the machine are slower: give
``--idle-below S`` to estimate the reference time from the models that took less
than S seconds (the rest were disturbed), and say so beside the figure. Run:

    .venv/bin/python benchmarks/bench_board_time.py --preset faithful_small_full_bf16 \
        --methods finetune,fanchuan,... [--idle-below 62] [--workers 2]

It writes benchmarks/results/board-time-<preset>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.atomic_files import write_json_atomic, write_text_atomic  # noqa: E402
from local_eval.scoring.presets import get_preset  # noqa: E402
from local_eval.scoring.references import references_dir  # noqa: E402


def reference_seconds(preset_name: str) -> list[float]:
    """Each reference model's recorded training seconds (one core each)."""
    folder = references_dir(get_preset(preset_name))
    found = [json.loads(p.read_text())["train_seconds"] for p in sorted(folder.glob("*.timing.json"))]
    if not found:
        sys.exit(f"No reference timings under {folder}: build the board first (make leaderboard PRESET={preset_name}).")
    return found


def method_seconds(preset_name: str, methods: list[str] | None) -> dict[str, float]:
    """Each scored method's ``seconds_total`` from its result JSON."""
    folder = ROOT / "results" / preset_name
    found = {}
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        if methods is None or result["method"] in methods:
            found[result["method"]] = result["seconds_total"]
    missing = sorted(set(methods or ()) - set(found))
    if missing:
        sys.exit(f"No result under {folder} for {', '.join(missing)}: score them first.")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True)
    parser.add_argument("--methods", help="comma-separated (default: every result of the preset)")
    parser.add_argument("--workers", type=int, default=2, help="reference models trained at once")
    parser.add_argument("--idle-below", type=float, help="seconds under which a model counts as undisturbed")
    args = parser.parse_args()
    models = reference_seconds(args.preset)
    undisturbed = [s for s in models if args.idle_below is None or s < args.idle_below]
    per_model = statistics.mean(undisturbed)
    references_min = len(models) * per_model / args.workers / 60
    runs = method_seconds(args.preset, args.methods.split(",") if args.methods else None)
    runs_min = sum(runs.values()) / 60
    figures = {
        "preset": args.preset,
        "reference_models": len(models),
        "undisturbed_models": len(undisturbed),
        "seconds_per_model": per_model,
        "references_minutes": references_min,
        "methods": sorted(runs),
        "runs_minutes": runs_min,
        "board_minutes": references_min + runs_min,
        "workers": args.workers,
    }
    write_json_atomic(ROOT / "benchmarks" / "results" / f"board-time-{args.preset}.json", figures)
    basis = (
        f"the mean of the {len(undisturbed)} models under {args.idle_below:g} s"
        if args.idle_below is not None
        else f"the mean of all {len(models)}"
    )
    text = (
        f"# What a `{args.preset}` board costs\n\n"
        f"{len(models)} reference models at {per_model:.1f} s of one core each ({basis}), "
        f"{args.workers} at a time: {references_min:.1f} min. The runs of {len(runs)} methods "
        f"(their results' `seconds_total`): {runs_min:.1f} min. A board of these methods: "
        f"**{references_min + runs_min:.1f} min** of wall time.\n\n"
        f"Methods: {', '.join(sorted(runs))}.\n\n"
        f"Made with `.venv/bin/python benchmarks/bench_board_time.py --preset {args.preset}"
        + (f" --methods {args.methods}" if args.methods else "")
        + (f" --idle-below {args.idle_below:g}" if args.idle_below is not None else "")
        + "`.\n"
    )
    path = ROOT / "benchmarks" / "results" / f"board-time-{args.preset}.md"
    write_text_atomic(path, text)
    print(text)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
