"""The starter kit's entry point, kept: ``python main.py -m NAME -p PHASE`` scores a method locally.

The kit's phases name how faithful a run is; each stands for one of the project's
presets, and ``-p`` takes preset names too. Everything else lives in the
``unlearnkit`` command line (``python -m cli --help``).
"""

from __future__ import annotations

import argparse
import sys

from cli.main import main as cli_main
from local_eval.scoring.presets import DEFAULT_PRESET

# The starter kit's phases and the preset each runs: the one place that says so.
# "dev" is the kit's default preset (the full width, small pool, N = 8); "test" the
# full-width board the project ranks methods on (the same references at N = 16).
PHASE_PRESETS = {"debug": "smoke", "dev": DEFAULT_PRESET, "test": "faithful_small_full"}


def preset_for(phase_or_preset: str) -> str:
    """The preset a ``-p`` value stands for: a phase is translated, a preset name kept."""
    return PHASE_PRESETS.get(phase_or_preset, phase_or_preset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score an unlearning method with the competition's metric.")
    parser.add_argument("-m", "--method", required=True, help="registered method name or method file")
    phases = ", ".join(f"{phase}={preset}" for phase, preset in PHASE_PRESETS.items())
    parser.add_argument(
        "-p", "--preset", "--phase", dest="preset", default="dev",
        help=f"starter-kit phase ({phases}) or preset name (default: dev)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    args, rest = parser.parse_known_args(argv)
    forwarded = ["eval", args.method, "--preset", preset_for(args.preset), *rest]
    for override in args.overrides:
        forwarded += ["--set", override]
    return cli_main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
