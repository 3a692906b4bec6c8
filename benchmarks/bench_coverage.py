"""How often the score intervals cover the true F, against their nominal level, on synthetic confidences.

The confidences come from tests/test_bootstrap.py's generator (half the forget
examples forgotten, half still shifted; every model adds one offset to all its
confidences, as trained networks vary as a whole), so the true value, F's
expectation over draws of models and examples, is known by simulation. For each
N and level it draws ``--replicates`` data sets, computes each interval with
``bootstrap_score`` and counts how many cover the true F and how many contain
their own estimate. The metric runs on a 10x coarser threshold grid, as in the
tests, so hundreds of intervals take minutes. Run:

    .venv/bin/python benchmarks/bench_coverage.py [--replicates 200] [--resamples 200]

It writes benchmarks/results/coverage.json and coverage.md. Not a test: the
test asserts the coverage at one size; this records it at several.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_metric import finished_at, write_results  # noqa: E402
from local_eval.scoring import metric  # noqa: E402
from local_eval.scoring.bootstrap import SCHEME, bootstrap_score  # noqa: E402
from tests.test_bootstrap import synthetic_pair  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def coverage(n_models: int, level: float, replicates: int, resamples: int, truth_draws: int) -> dict:
    rng = np.random.default_rng([n_models, int(level * 100)])
    true_f = float(
        np.mean(
            [
                metric.forget_quality(u.confidences, r.confidences, device="cpu")
                for u, r in (synthetic_pair(rng, n_models) for _ in range(truth_draws))
            ]
        )
    )
    covered = contains = 0
    for k in tqdm(range(replicates), desc=f"N={n_models} level={level}", leave=False):
        interval = bootstrap_score(
            *synthetic_pair(rng, n_models), num_resamples=resamples, level=level, seed=k,
            device="cpu",
        ).forget_quality
        covered += interval.low <= true_f <= interval.high
        contains += interval.low <= interval.estimate <= interval.high
    return {
        "n_models": n_models,
        "level": level,
        "true_f": true_f,
        "covered": covered / replicates,
        "contains_estimate": contains / replicates,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--levels", type=float, nargs="+", default=[0.9, 0.95])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--truth-draws", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    metric.THRESHOLDS_PER_UNIT, metric.NUM_LEFT_THRESHOLDS = 10, 40
    rows = [
        coverage(n, level, args.replicates, args.resamples, args.truth_draws)
        for n in args.models
        for level in args.levels
    ]
    result = {
        "scheme": SCHEME,
        "replicates": args.replicates,
        "resamples": args.resamples,
        "truth_draws": args.truth_draws,
        "rows": rows,
        "finished_at": finished_at(),
    }
    lines = [
        f"# Interval coverage on synthetic confidences ({SCHEME})",
        "",
        f"{args.replicates} data sets per row, B = {args.resamples}, true F from "
        f"{args.truth_draws} draws; 8 forget examples; metric on a 10x coarser grid. "
        f"Made by `benchmarks/bench_coverage.py` ({result['finished_at']}).",
        "",
        "| N | nominal | covers true F | contains its estimate |",
        "|---:|---:|---:|---:|",
        *(
            f"| {r['n_models']} | {r['level']:.0%} | {r['covered']:.1%} | "
            f"{r['contains_estimate']:.1%} |"
            for r in rows
        ),
        "",
    ]
    write_results(args.out, "coverage", result, "\n".join(lines))


if __name__ == "__main__":
    main()
