"""Time forget_quality at the competition's size: 5,000 forget examples x 512 models per side.

The organisers' per-example, per-threshold loop takes hours at this size on a CPU;
this records what the vectorised metric takes, so regressions show. Run:

    .venv/bin/python benchmarks/bench_metric.py [--examples 5000] [--models 512] [--device cpu]
    .venv/bin/python benchmarks/bench_metric.py --baseline REV   # and a git revision's metric

It writes benchmarks/results/metric.json and a one-line note in metric.md. With
``--baseline``, the metric of that git revision runs on the same inputs in the
same process, right after this checkout's, so the note gives a ratio measured in
one run, and says whether the two F agree exactly.
Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.atomic_files import write_json_atomic, write_text_atomic  # noqa: E402
from local_eval.scoring.metric import forget_quality  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def realistic_confidences(examples: int, models: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping, normal-ish confidence distributions per forget example.

    Logit-scaled confidences of training examples sit mostly between -2 and 10
    with an example-specific spread; an imperfect unlearning method shifts and
    widens them a little. Per-example ranges of 3 to 20 units mean 300 to 2,000
    single thresholds, as in real scoring.
    """
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-2.0, 10.0, size=examples)
    spread = rng.uniform(0.5, 3.0, size=examples)
    retrained = rng.normal(centre, spread, size=(models, examples))
    shift = rng.normal(0.0, 0.5, size=examples)
    widen = rng.uniform(0.8, 1.3, size=examples)
    unlearned = rng.normal(centre + shift, spread * widen, size=(models, examples))
    return unlearned, retrained


def cpu_name() -> str:
    """The CPU model, so figures from different machines are not compared by mistake."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's or CPU's model name, recorded beside every figure."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def finished_at() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_results(folder: Path, stem: str, result: dict, note: str) -> None:
    """``<stem>.json`` for tools and ``<stem>.md`` for people, each written whole; the note is printed."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / f"{stem}.json", result)
    write_text_atomic(folder / f"{stem}.md", note)
    print(note, end="")


def revision_forget_quality(revision: str):
    """``forget_quality`` from ``local_eval/scoring/metric.py`` as it was at a git revision."""
    source = subprocess.run(
        ["git", "show", f"{revision}:local_eval/scoring/metric.py"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if source.returncode != 0:
        raise SystemExit(f"error: --baseline {revision}: {source.stderr.strip()}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "baseline_metric.py"
        path.write_text(source.stdout)
        spec = importlib.util.spec_from_file_location("baseline_metric", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.forget_quality


def timed(fn, unlearned, retrained, device) -> tuple[float, float, float]:
    """(F, wall seconds, process CPU seconds) of one call."""
    started_cpu, started = time.process_time(), time.perf_counter()
    quality = fn(unlearned, retrained, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return quality, time.perf_counter() - started, time.process_time() - started_cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--models", type=int, default=512)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", default=None, help="a git revision whose metric to time too")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    unlearned, retrained = realistic_confidences(args.examples, args.models, args.seed)
    forget_quality(unlearned[:, :8], retrained[:, :8], device=device)  # warm-up: kernels, caches

    quality, seconds, cpu_seconds = timed(forget_quality, unlearned, retrained, device)
    baseline = None
    if args.baseline:
        baseline_fn = revision_forget_quality(args.baseline)
        baseline_fn(unlearned[:, :8], retrained[:, :8], device=device)
        base_quality, base_seconds, base_cpu = timed(baseline_fn, unlearned, retrained, device)
        baseline = {
            "revision": args.baseline,
            "seconds": round(base_seconds, 3),
            "process_cpu_seconds": round(base_cpu, 3),
            "forget_quality": base_quality,
            "same_forget_quality": base_quality == quality,
            "speedup": round(base_seconds / seconds, 2),
        }

    result = {
        "benchmark": "forget_quality",
        "examples": args.examples,
        "models_per_side": args.models,
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "seconds": round(seconds, 3),
        "process_cpu_seconds": round(cpu_seconds, 3),
        "ms_per_example": round(1000 * seconds / args.examples, 3),
        "forget_quality": quality,
        "seed": args.seed,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "finished_at": finished_at(),
        "baseline": baseline,
    }
    note = (
        f"forget_quality, {args.examples} examples x {args.models} models per side: "
        f"{seconds:.1f} s wall ({cpu_seconds:.1f} s CPU) on {device} "
        f"({result['device_name']}, {result['torch_threads']} torch thread(s)), "
        f"F = {quality:.4f}, {result['finished_at']}\n"
    )
    if baseline:
        note += (
            f"revision {args.baseline}'s metric on the same inputs, same run: {base_seconds:.1f} s "
            f"wall ({base_cpu:.1f} s CPU), {baseline['speedup']}x this checkout's time; "
            f"F {'identical' if baseline['same_forget_quality'] else f'differs: {base_quality!r}'}\n"
        )
    # The competition's size keeps the plain name; other shapes get their own files.
    default = (args.examples, args.models) == (parser.get_default("examples"), parser.get_default("models"))
    stem = "metric" if default else f"metric-{args.examples}x{args.models}"
    write_results(RESULTS, stem, result, note)


if __name__ == "__main__":
    main()
