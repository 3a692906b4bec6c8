"""The starter kit's entry point, kept: ``python main.py -m NAME`` scores a method locally.

Everything else lives in the ``unlearnkit`` command line (``python -m cli --help``).
"""

from __future__ import annotations

import argparse
import sys

from cli.main import main as cli_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score an unlearning method with the competition's metric.")
    parser.add_argument("-m", "--method", required=True, help="registered method name or method file")
    parser.add_argument("-p", "--preset", default="cpu", help="smoke, cpu or gpu (default: cpu)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    args, rest = parser.parse_known_args(argv)
    forwarded = ["eval", args.method, "--preset", args.preset, *rest]
    for override in args.overrides:
        forwarded += ["--set", override]
    return cli_main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
