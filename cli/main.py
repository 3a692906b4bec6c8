"""The command line: one entry point, a command per step of the pipeline, each option defined once.

``OPTIONS`` is the one table: the parsers are built from it, ``run`` hands parsed values on by name
(``_pick``), and ``--make``, the Makefile's one rule, reads them from make variables (``make_argv``).
"""

import argparse
import dataclasses
import errno
import inspect
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path

from builder.assets import assets_slug, collect_assets, kaggle_assets_dir
from builder.errors import BuildError
from builder.hyperparameters import parse_overrides
from builder.kernel_metadata import resolve_owner
from local_eval.data.datasets import DATASETS
from local_eval.errors import EvalError
from local_eval.scoring.executors import make_executor
from local_eval.scoring.presets import BATCH_FORMATS, DEFAULT_PRESET, FORGET_MODES, preset_help

COMMANDS = {
    "methods": "list registered methods and their hyperparameters",
    "notebook": "build the competition notebook of a method",
    "check-notebooks": "build, validate and compile every registered method's notebook",
    "mock": "write a mock competition input folder",
    "dryrun": "execute the notebook locally on a mock input and check its output",
    "submission": "notebook + dry-run + packaged kernel/assets folders (no network)",
    "submit": "package, validate and print (or with --push run) the kaggle commands",
    "eval": "score a method with the competition's metric against retrained models",
    "leaderboard": "score every registered method and write docs/leaderboard-<preset>.md",
    "references": "build a preset's reference models (or, with --status, say how far they are)",
    "compare": "is method A better than B? their paired score difference",
    "agree": "do two written boards order their common methods alike? Kendall's tau",
    "tune": "search hyperparameters with Optuna; report them on a held-out split",
}

def opt(commands: str, flag: str, make: str | None = None, **keywords) -> tuple:
    """An option (or positional): the commands taking it, its make variable, argparse's keywords."""
    return commands.split(), flag, make, keywords

BUILT, MOCKED, SCORED = "notebook dryrun submission submit eval", "mock dryrun submission", "eval leaderboard compare"
RUN = SCORED + " references tune"  # the commands making reference models and runs
# Unset (None), an option takes the default of the function it goes to (_pick); "METHOD=finetune": make's default.
OPTIONS = [
    opt(BUILT + " tune", "method", "METHOD=finetune", help="registered method name, or path of a method file"),
    opt("compare", "a", "A=ftsu", help="registered method name"),
    opt("compare", "b", "B=finetune", help="registered method name to compare it with"),
    opt("agree", "boards", "BOARDS=docs/leaderboard-faithful_small_full.md docs/leaderboard-faithful_medium_full.md", nargs=2, metavar="BOARD", help="docs/leaderboard-*.md files written by leaderboard"),
    opt(BUILT, "--class", dest="class_name", help="class to use when the file has several"),
    opt(BUILT, "--set", "SET", dest="overrides", action="append", default=[], metavar="NAME=VALUE", help="override a hyperparameter (repeatable), e.g. --set lr=0.01"),
    opt(MOCKED, "--dataset", choices=DATASETS),
    opt(MOCKED + " " + RUN, "--data-root", help="folder with the dataset files (offline use)"),
    opt(MOCKED, "--n-train", type=int, help="training images (retain + forget)"),
    opt(MOCKED, "--n-val", type=int, help="validation images"),
    opt(MOCKED, "--mock-epochs", dest="epochs", type=int, help="epochs to train original_model.pth"),
    opt(MOCKED, "--seed", type=int),
    opt("mock", "--forget-fraction", type=float, help="share of the training images forgotten (whole persons)"),
    opt("mock", "--arch", help="network of original_model.pth (default resnet18, the only one the competition notebook loads)"),
    opt("mock", "--out", dest="out_dir", type=Path, metavar="FOLDER", help="folder (default: a cache folder keyed by the options)"),
    opt("mock", "--empty", action="store_true", help="the public mock: a folder with only empty.txt"),
    opt("mock", "--quiet", dest="progress", action="store_false", help="no progress bar"),
    opt("dryrun submission", "--n-checkpoints", "N_CHECKPOINTS", type=int),
    opt("dryrun submission", "--data-dir", type=Path, help="an existing competition-layout folder to use instead of the mock"),
    opt("dryrun submission", "--timeout", type=int, help="seconds per cell"),
    opt("dryrun submission", "--project-sizes", metavar="RETAIN,FORGET,VALIDATION", help="data sizes to scale the Kaggle time projection to (the competition's when known; default: the mock's own sizes)"),
    opt("dryrun submission", "--efficiency", type=float, help="fraction of the GPUs' peak FP32 throughput assumed by the projection (default 0.3)"),
    opt("submission submit", "--owner", help="Kaggle username (default: KAGGLE_USERNAME or ~/.kaggle/kaggle.json)"),
    opt("submission submit", "--accelerator", default="gpu", help="kernel accelerator (gpu, or e.g. nvidiaTeslaT4)"),
    opt("submit", "--push", "PUSH", action="store_true", help="create/version the assets dataset and push the kernel"),
    opt("submit", "--competition-submit", dest="run_submit", action="store_true", help="after a push, also run `kaggle competitions submit`"),
    opt("submit", "--message", help="submission message"),
    opt(RUN, "--preset", "PRESET", default=DEFAULT_PRESET, help=preset_help()),
    opt(RUN, "--n-models", "N", type=int, help="N: unlearned runs and retrained references per score (1 + 2N models)"),
    opt(SCORED, "--batch-format", choices=BATCH_FORMATS),
    opt(SCORED, "--forget", dest="forget_mode", choices=FORGET_MODES, help="forget set: whole persons (~2%%) or random 10%%"),
    opt(RUN, "--executor", "EXECUTOR", choices=["local", "ray"], default="local", help="where reference models and runs are made: in this process, or as Ray tasks"),
    opt(RUN, "--ray-address", metavar="ADDRESS", help="join this Ray cluster (default: $RAY_ADDRESS, else start Ray on this machine)"),  # make's RAY_ADDRESS: $RAY_ADDRESS
    opt(RUN, "--task-cpus", type=float, default=1, help="torch threads per task on either executor (and the CPUs each Ray task reserves); the same value gives the same figures on both"),
    opt(RUN, "--task-gpus", type=float, default=0.25, help="GPU fraction each Ray task reserves where the cluster has GPUs (0.25: four models share one)"),
    opt(SCORED, "--splits", "SPLITS", type=int, default=1, metavar="K", help="score on K independent reference sets (other forget persons, data and seeds)"),
    opt(SCORED, "--split", "SPLIT", type=int, default=0, metavar="J", help="score on split J alone (0: the preset itself; J > 0: the reference set that --splits K > J builds as split J), e.g. a split no tuning saw"),
    opt(SCORED, "--bootstrap", "BOOTSTRAP", type=int, metavar="B", help="bootstrap resamples of every interval (default 1000; 200 past 500 forget examples)"),
    opt("leaderboard", "--methods", "METHODS", metavar="NAME,NAME", help="score only these registered methods (the table names the ones left out)"),
    opt("references", "--status", "STATUS", action="store_true", help="only report finished and half-trained models"),
    opt("agree", "--split", "SPLIT", type=int, action="append", metavar="J", help="on a -splitsK board, read split J's scores instead of the mean; given twice, one per board (--split 0 --split 1: a board's two splits)"),
    opt("agree", "--plot", "PLOT", metavar="PNG", help="also draw each method's score on one board against the other's, with both intervals, into this file"),
    opt("agree", "--metric", "METRIC", action="append", choices=("score", "klom"), help="which column orders a board: the score (default) or KLoM; given twice, one per board (one board twice with --metric score --metric klom: do the two metrics order its methods alike?)"),
    opt("tune", "--trials", "TRIALS", type=int, help="trials the study should hold (default 40; a rerun adds what is missing)"),
    opt("tune", "--space", "SPACE", action="append", default=[], metavar='"NAME=KIND:..."', help='replace or add dimensions of the method\'s search_space, e.g. "lr=log:1e-4:1e-1 epochs=int:1:5 mode=choice:a,b"'),
    opt("tune", "--seed", "SEED", type=int, help="sampler seed (default 0)"),
    opt("tune", "--workers", "WORKERS", type=int, help="worker processes sharing the study (default 1)"),
    opt("tune", "--prune-at", type=int, help="runs in the first stage (0: no pruning; default N/4)"),
    opt("tune", "--no-report", dest="report", action="store_false", help="only run trials (an extra worker)"),
    opt("tune", "--fresh", "FRESH", action="store_true", help="delete this method's study first"),
    opt("tune", "--results-dir", help="where results/<preset>/tune/ goes (default: results/)"),
    opt("tune", "--docs-dir", help="where the report goes (default: docs/tuning/)"),
]  # fmt: skip

class _Scenario(argparse.Action):  # records the scenarios given, in order: two are one clear error
    def __call__(self, parser, namespace, value, option_string=None):
        if value or self.nargs == 0:  # K = 0, as before, leaves the competition's setting
            namespace.scenarios = {**getattr(namespace, "scenarios", {}), self.dest: value}

def _options(command: str) -> list[tuple]:
    """A command's rows of ``OPTIONS``; a scoring command's also ``--<scenario> K`` per scenario."""
    found = [row[1:] for row in OPTIONS if command in row[0]]
    if command in SCORED.split():
        from local_eval.scoring.scenarios import COMPETITION, scenario_names  # only where needed
        for name, cls in ((n, c) for n, c in scenario_names().items() if n != COMPETITION):
            # K sets the class's first field, read as its default's type; without fields, a plain flag.
            about, first = " ".join((cls.__doc__ or "").split("\n\n")[0].split()).replace("``", ""), dataclasses.fields(cls)[:1]
            kind = dict(type=type(first[0].default) if isinstance(first[0].default, int | float | str) else str, metavar="K") if first else dict(nargs=0)
            found.append((f"--{name}", name.upper(), dict(action=_Scenario, help=f"the {name} scenario{f' with {first[0].name} = K' if first else ''}: {about}", **kind)))
    return found

def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command; with ``only``, that command's options alone."""
    parser = argparse.ArgumentParser(prog="unlearnkit", description="Build, dry-run, score and submit machine-unlearning methods for Kaggle.")
    parser.add_argument("--make", action="store_true", help="read the command's options from the make variables OPTIONS names (METHOD, PRESET, N, ...) in the environment, as the Makefile does")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, about in COMMANDS.items():
        p = sub.add_parser(name, help=about, description=about)
        for flag, _, keywords in _options(name) if only in (None, name) else ():
            p.add_argument(flag, **keywords)
    return parser

def make_argv(command: str, env: Mapping[str, str]) -> list[str]:
    """The command line make variables stand for (``N=4``: ``--n-models 4``; ``SET="a=1 b=2"``: two ``--set``)."""
    argv = [command]
    for flag, make, keywords in _options(command):
        name, _, default = (make or "").partition("=")
        words, action = shlex.split(env.get(name) or default), keywords.get("action")  # words as a shell splits
        if not words or not flag.startswith("-"):  # a positional takes the words
            argv += words
        elif action in ("store_true", "store_false") or keywords.get("nargs") == 0:  # a flag: given when not empty
            argv.append(flag)
        else:  # a repeatable option is given once per word
            argv += [x for w in words for x in (flag, w)] if action == "append" else [flag, *words]
    return argv

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--make"] and len(argv) > 1:
        argv = make_argv(argv[1], os.environ) + argv[2:]
    args = _parser(next((a for a in argv if not a.startswith("-")), None)).parse_args(argv)
    try:
        return run(args) or 0
    except BrokenPipeError:
        # The reader went away (`... | head`): point stdout at /dev/null so the last flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (BuildError, EvalError, OSError) as exc:
        message = str(exc)
        if isinstance(exc, OSError):  # permission and disk-full errors are the user's machine, not a bug
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
                raise
            where, full = f" {exc.filename}" if exc.filename else "", exc.errno in (errno.ENOSPC, errno.EDQUOT)
            advice = "free some disk space" if full else "make that folder writable (or work in a copy you own)"
            message = f"cannot write{where} ({exc.strerror}): {advice} and run again."
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

def run(args: argparse.Namespace) -> int | None:
    """Carry out the parsed command; heavy modules are imported by the commands that use them."""
    match args.command:
        case "methods":
            from builder.discover import registered_methods_text
            print(registered_methods_text())
        case "check-notebooks":
            from builder.check_notebook import check_registered_notebooks
            if failures := check_registered_notebooks():
                print(f"{failures} notebook(s) failed the checks", file=sys.stderr)
            return 1 if failures else 0
        case "mock":
            from local_eval.replica.mock_input import build_mock_input, write_empty_mock
            if args.empty and args.out_dir is None:
                raise EvalError("--empty needs --out FOLDER")
            print(write_empty_mock(args.out_dir) if args.empty else build_mock_input(**_pick(build_mock_input, args)))
        case "notebook":
            print(_build(args).path)
        case "dryrun":
            _dry_run(args, _build(args))
        case "submission":
            from builder.submit import package
            built = _build(args)
            print(f"notebook: {built.path}")
            _dry_run(args, built)
            package(built, **_pick(package, args))
        case "submit":
            from builder.submit import submit
            submit(_build(args), **_pick(submit, args))
        case "eval":
            from local_eval.boards.report import evaluate_method, evaluate_splits
            _score(args, evaluate_method, evaluate_splits, method=args.method, overrides=parse_overrides(args.overrides))
        case "leaderboard":
            from local_eval.boards import leaderboard, split_board
            only = None if args.methods is None else [name.strip() for name in args.methods.split(",") if name.strip()]
            if only == []:
                raise EvalError(f"--methods {args.methods!r} names no method: give registered names separated by commas, e.g. --methods finetune,kookmin (see `python -m cli methods`).")
            print(_score(args, leaderboard.build_leaderboard, split_board.build_split_leaderboard, only=only))
        case "references":
            from local_eval.scoring.references import (
                build_references,
                reference_status,
                status_text,
            )
            from local_eval.scoring.runner import resolve_preset
            preset = resolve_preset(*_preset_and_fields(args), None)
            if not args.status:
                with closing(make_executor(args.executor, address=args.ray_address, cpus=args.task_cpus, gpus=args.task_gpus)) as executor:
                    built = build_references(preset, executor=executor)
                print(f"this build: {built.seconds_this_build:.0f} s wall")
            print(status_text(reference_status(preset)))
        case "compare":
            from local_eval.boards.compare import compare_methods, comparison_text
            if args.splits != 1:
                raise EvalError("compare pairs two methods on one reference set: drop --splits and pick one with --split J (SPLIT=J on make).")
            print(comparison_text(_score(args, compare_methods, None, a=args.a, b=args.b)))
        case "agree":
            from local_eval.boards.board_orders import agreement_text, order_agreement, read_board
            for flag, values in (("--split", args.split or []), ("--metric", args.metric or [])):
                if len(values) > 2:  # once serves both boards, twice is one per board
                    raise EvalError(f"agree takes {flag} once (both boards) or twice (one per board), not {len(values)} times.")
            splits, metrics = (args.split or [None]) * 2, (args.metric or [None]) * 2
            first, second = (read_board(path, split=j, metric=m or "score") for path, j, m in zip(args.boards, splits, metrics))
            found = order_agreement(first.scores, second.scores)
            print(agreement_text(first, second, found))
            if args.plot:
                from local_eval.boards.plots import plot_agreement
                print(f"wrote {plot_agreement(args.plot, first, second, found)}")
        case "tune":
            from local_eval.tuning.tune import TuneRequest, tune
            tune(TuneRequest(**_pick(TuneRequest, args, space=tuple(args.space), preset_fields=_preset_and_fields(args)[1])))

def _pick(target, args: argparse.Namespace, **given) -> dict:
    """``given`` and the parsed values named like ``target``'s parameters, but None: ``target``'s default."""
    names = inspect.signature(target).parameters
    return {k: v for k, v in vars(args).items() if k in names and v is not None} | given

def _build(args: argparse.Namespace):
    """The method's notebook; one with assets reads them where Kaggle mounts their dataset."""
    from builder.discover import resolve_target
    from builder.notebook import build_notebook
    from builder.render import NotebookParameters
    target, parameters = resolve_target(args.method, args.class_name), {}
    if getattr(target.cls, "assets", ()):
        parameters["assets_dir"] = kaggle_assets_dir(assets_slug(target.method_name, resolve_owner(getattr(args, "owner", None))))
    overrides, parameters = parse_overrides(args.overrides), NotebookParameters(**parameters)
    return build_notebook(args.method, overrides=overrides, class_name=args.class_name, parameters=parameters)

def _dry_run(args: argparse.Namespace, built) -> None:
    """Run ``built`` on ``--data-dir`` or the mock, with the method's assets as Kaggle will see them."""
    from builder.discover import resolve_target
    from local_eval.replica.dryrun import dry_run
    from local_eval.replica.kaggle_projection import parse_sizes
    from local_eval.replica.mock_input import build_mock_input
    sizes, assets_dir = parse_sizes(args.project_sizes), None
    if built.extracted.assets:  # the packaged flat folder, produced from the method
        assets_dir = built.path.parent / "assets"
        collect_assets(resolve_target(str(built.extracted.source_path), built.extracted.class_name).cls, assets_dir)
    data_dir = args.data_dir or build_mock_input(**_pick(build_mock_input, args))
    dry_run(built.path, **_pick(dry_run, args, data_dir=data_dir, assets_dir=assets_dir, project_sizes=sizes))

def _score(args: argparse.Namespace, one, several, **given):
    """``one(...)`` on the preset (split J's with ``--split J``), or ``several(k=K, ...)`` with ``--splits K``."""
    from local_eval.scoring.context import make_context
    scenario, (preset, fields) = _scenario(args), _preset_and_fields(args)
    with closing(make_executor(args.executor, address=args.ray_address, cpus=args.task_cpus, gpus=args.task_gpus)) as executor:
        shared = dict(preset=preset, scenario=scenario, context=make_context(executor=executor, bootstrap=args.bootstrap), **fields, **given)
        return several(k=args.splits, **shared) if args.splits != 1 else one(**shared)

def _preset_and_fields(args: argparse.Namespace) -> tuple:
    """The preset and the options changing it; with ``--split J``, the split J of ``--splits K > J``."""
    fields = {k: getattr(args, k) for k in ("n_models", "data_root", "batch_format", "forget_mode") if getattr(args, k, None) is not None}
    if getattr(args, "split", 0) == 0:
        return args.preset, fields
    if args.splits != 1:
        raise EvalError("--split J scores one split and --splits K several: give one of them.")
    from local_eval.scoring.runner import resolve_preset
    from local_eval.scoring.several_splits import split_preset
    return split_preset(resolve_preset(args.preset, fields, None), args.split), {}

def _scenario(args: argparse.Namespace):
    """The scenario a ``--<scenario> K`` flag asks for; the competition's otherwise."""
    from local_eval.scoring.scenarios import COMPETITION, get_scenario, scenario_names
    given = getattr(args, "scenarios", {})
    if len(given) > 1:
        raise EvalError(f"{' and '.join('--' + name for name in given)} are separate modes: choose one")
    name, value = next(iter(given.items()), (COMPETITION, None))
    first = dataclasses.fields(scenario_names()[name])[:1] if name != COMPETITION else ()
    return get_scenario(name, **{field.name: value for field in first})
