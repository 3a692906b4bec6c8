"""Time one preset's reference build with the local executor and with Ray on this machine.

Both builds start from an empty cache and train the same 1 + 2N models, one after
the other in one run (so both see the same machine): ``local`` in this process
at ``--local-threads`` torch threads (default: one per CPU, its fastest set-up
here; the executor's own default is one, to match Ray's figures), ``ray`` as one task per model on a Ray instance sized to
the machine (one CPU and one torch thread per task, a GPU fraction where there
is a GPU). Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_executors.py [--preset cpu] [--n-models 32]

It writes benchmarks/results/executors.json and executors.md (``--out`` elsewhere).
Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_metric import device_name, finished_at, write_results  # noqa: E402

from local_eval.data.roles import load_eval_data  # noqa: E402
from local_eval.scoring.executors import make_executor  # noqa: E402
from local_eval.scoring.presets import get_preset  # noqa: E402
from local_eval.scoring.references import build_references  # noqa: E402
from local_eval.store.files import CACHE_ENV  # noqa: E402


def timed_build(preset, data, executor) -> tuple[float, float]:
    """(seconds to start the executor, seconds to build every model) from an empty cache."""
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as cache:
        previous = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = cache
        try:
            started = time.perf_counter()
            if executor.name == "ray":
                executor._connect()  # startup is reported apart from the build
            startup = time.perf_counter() - started
            started = time.perf_counter()
            build_references(preset, data=data, progress=True, executor=executor)
            return startup, time.perf_counter() - started
        finally:
            executor.close()
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--n-models", type=int, default=None, help="N (default: the preset's)")
    parser.add_argument("--task-gpus", type=float, default=0.25, help="GPU fraction per Ray task")
    parser.add_argument(
        "--local-threads", type=int, default=os.cpu_count() or 1,
        help="torch threads of the local build (default: one per CPU)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    overrides = {"n_models": args.n_models} if args.n_models else {}
    preset = get_preset(args.preset, overrides)
    data = load_eval_data(preset)
    models = 1 + 2 * preset.n_models
    threads = args.local_threads
    local_startup, local_seconds = timed_build(
        preset, data, make_executor("local", cpus=threads)
    )
    ray_startup, ray_seconds = timed_build(
        preset, data, make_executor("ray", gpus=args.task_gpus)
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = device_name(torch.device(device))
    result = {
        "benchmark": "reference build, local vs ray",
        "preset": preset.name,
        "n_models": preset.n_models,
        "models": models,
        "device": device,
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "local_torch_threads": threads,
        "ray_cpus_per_task": 1,
        "ray_gpus_per_task": args.task_gpus if device == "cuda" else 0,
        "local_seconds": round(local_seconds, 2),
        "ray_seconds": round(ray_seconds, 2),
        "ray_startup_seconds": round(ray_startup, 2),
        "local_over_ray": round(local_seconds / ray_seconds, 3),
        "local_models_per_hour": round(3600 * models / local_seconds, 1),
        "ray_models_per_hour": round(3600 * models / ray_seconds, 1),
        "torch": torch.__version__,
        "finished_at": finished_at(),
    }
    note = (
        f"Reference build, preset {preset.name}, N={preset.n_models} ({models} models) on "
        f"{name} ({os.cpu_count()} CPUs): local {local_seconds:.0f} s "
        f"({result['local_models_per_hour']} models/h, {threads} torch threads), ray "
        f"{ray_seconds:.0f} s ({result['ray_models_per_hour']} models/h, one CPU per task; "
        f"+{ray_startup:.0f} s to start Ray): local/ray wall time {result['local_over_ray']}. "
        f"{result['finished_at']}\n"
    )
    write_results(args.out, "executors", result, note)


if __name__ == "__main__":
    main()
