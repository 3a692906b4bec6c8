"""The command line: one entry point, a subcommand per step of the pipeline.

Heavy modules (torch training, papermill, the kaggle CLI wrapper) are imported
inside the subcommands so that ``methods`` or ``notebook`` answer quickly.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from builder.errors import BuildError
from local_eval.errors import EvalError
from local_eval.scoring.presets import DEFAULT_PRESET, preset_help


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except BrokenPipeError:
        # The reader went away (`... | head`): what it wanted was written, so no traceback.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (BuildError, EvalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        print(f"error: {_disk_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# Permission and disk-full errors: the user's machine, not a bug, so no traceback.
DISK_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def _disk_message(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some disk space and run again"
    else:
        advice = "make that folder writable (or work in a copy you own) and run again"
    return f"cannot write{where} ({exc.strerror}): {advice}."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unlearnkit",
        description="Build, dry-run, score and submit machine-unlearning methods for Kaggle.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("methods", help="list registered methods and their hyperparameters")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("notebook", help="build the competition notebook of a method")
    _method_args(p)
    p.set_defaults(func=cmd_notebook)

    p = sub.add_parser("check-notebooks", help="build, validate and compile every registered method's notebook")
    p.set_defaults(func=cmd_check_notebooks)

    p = sub.add_parser("mock", help="write a mock competition input folder")
    _mock_args(p)
    p.add_argument("--out", type=Path, default=None, help="folder (default: a cache folder keyed by the options)")
    p.add_argument("--empty", action="store_true", help="the public mock: a folder with only empty.txt")
    p.set_defaults(func=cmd_mock)

    p = sub.add_parser("dryrun", help="execute the notebook locally on a mock input and check its output")
    _method_args(p)
    _dryrun_args(p)
    p.set_defaults(func=cmd_dryrun)

    p = sub.add_parser(
        "submission", help="notebook + dry-run + packaged kernel/assets folders (no network)"
    )
    _method_args(p)
    _dryrun_args(p)
    _owner_args(p)
    p.set_defaults(func=cmd_submission)

    p = sub.add_parser("submit", help="package, validate and print (or with --push run) the kaggle commands")
    _method_args(p)
    _owner_args(p)
    p.add_argument("--push", action="store_true", help="create/version the assets dataset and push the kernel")
    p.add_argument("--competition-submit", action="store_true", help="after a push, also run `kaggle competitions submit`")
    p.add_argument("--message", default=None, help="submission message")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("eval", help="score a method with the competition's metric against retrained models")
    _method_args(p)
    _eval_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("leaderboard", help="score every registered method and write docs/leaderboard-<preset>.md")
    _eval_args(p)
    p.add_argument(
        "--methods", default=None, metavar="NAME,NAME",
        help="score only these registered methods (the table names the ones left out)",
    )
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("references", help="build a preset's reference models (or, with --status, say how far they are)")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=preset_help())
    p.add_argument("--n-models", type=int, default=None, help="N: 1 + 2N models")
    p.add_argument("--data-root", default=None)
    p.add_argument("--status", action="store_true", help="only report finished and half-trained models")
    _executor_args(p)
    p.set_defaults(func=cmd_references)

    p = sub.add_parser("compare", help="is method A better than B? their paired score difference")
    p.add_argument("a", help="registered method name")
    p.add_argument("b", help="registered method name to compare it with")
    _eval_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("agree", help="do two written boards order their common methods alike? Kendall's tau")
    p.add_argument("boards", nargs=2, metavar="BOARD", help="docs/leaderboard-*.md files written by leaderboard")
    p.add_argument("--split", type=int, action="append", default=None, metavar="J",
                   help="on a -splitsK board, read split J's scores instead of the mean; given "
                   "twice, one per board (--split 0 --split 1: a board's two splits)")  # fmt: skip
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw each method's score on one board against the other's, "
                   "with both intervals, into this file")  # fmt: skip
    p.add_argument("--metric", action="append", default=None, choices=("score", "klom"),
                   help="which column orders a board: the score (default) or KLoM; given twice, "
                   "one per board (one board twice with --metric score --metric klom: do the "
                   "two metrics order its methods alike?)")  # fmt: skip
    p.set_defaults(func=cmd_agree)

    p = sub.add_parser("tune", help="search hyperparameters with Optuna; report them on a held-out split")
    p.add_argument("method", help="registered method name, or path of a method file")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=preset_help())
    p.add_argument("--n-models", type=int, default=None, help="N: runs and references per score")
    p.add_argument("--data-root", default=None)
    p.add_argument("--trials", type=int, default=40, help="trials the study should hold (a rerun adds what is missing)")
    p.add_argument(
        "--space", action="append", default=[], metavar='"NAME=KIND:..."',
        help='replace or add dimensions of the method\'s search_space, e.g. "lr=log:1e-4:1e-1 epochs=int:1:5 mode=choice:a,b"',
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the study")
    p.add_argument("--prune-at", type=int, default=None, help="runs in the first stage (0: no pruning; default N/4)")
    p.add_argument("--no-report", dest="report", action="store_false", help="only run trials (an extra worker)")
    p.add_argument("--fresh", action="store_true", help="delete this method's study first")
    p.add_argument("--results-dir", default=None, help="where results/<preset>/tune/ goes (default: results/)")
    p.add_argument("--docs-dir", default=None, help="where the report goes (default: docs/tuning/)")
    _executor_args(p)
    p.set_defaults(func=cmd_tune)
    return parser


def _method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", help="registered method name, or path of a method file")
    p.add_argument("--class", dest="class_name", default=None, help="class to use when the file has several")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="override a hyperparameter (repeatable), e.g. --set lr=0.01",
    )


def _mock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "cifar10", "synthetic"])
    p.add_argument("--data-root", default=None, help="folder with the dataset files (offline use)")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--mock-epochs", type=int, default=2, help="epochs to train original_model.pth")
    p.add_argument("--seed", type=int, default=0)


def _dryrun_args(p: argparse.ArgumentParser) -> None:
    _mock_args(p)
    p.add_argument("--n-checkpoints", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=None, help="an existing competition-layout folder to use instead of the mock")
    p.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    p.add_argument(
        "--project-sizes", default=None, metavar="RETAIN,FORGET,VALIDATION",
        help="data sizes to scale the Kaggle time projection to (the competition's when known; "
        "default: the mock's own sizes)",
    )
    p.add_argument(
        "--efficiency", type=float, default=None,
        help="fraction of the GPUs' peak FP32 throughput assumed by the projection (default 0.3)",
    )


def _owner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", default=None, help="Kaggle username (default: KAGGLE_USERNAME or ~/.kaggle/kaggle.json)")
    p.add_argument("--accelerator", default="gpu", help="kernel accelerator (gpu, or e.g. nvidiaTeslaT4)")


def _executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor", choices=["local", "ray"], default="local",
        help="where reference models and runs are made: in this process, or as Ray tasks",
    )
    p.add_argument(
        "--ray-address", default=None, metavar="ADDRESS",
        help="join this Ray cluster (default: $RAY_ADDRESS, else start Ray on this machine)",
    )
    p.add_argument("--task-cpus", type=float, default=1, help="torch threads per task on either executor (and the CPUs each Ray task reserves); "
        "the same value gives the same figures on both")
    p.add_argument(
        "--task-gpus", type=float, default=0.25,
        help="GPU fraction each Ray task reserves where the cluster has GPUs (0.25: four models share one)",
    )


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=DEFAULT_PRESET, help=preset_help())
    p.add_argument("--n-models", type=int, default=None, help="N: unlearned runs and retrained references")
    p.add_argument("--data-root", default=None)
    p.add_argument("--batch-format", choices=["dict", "tuple"], default=None)
    p.add_argument("--forget", choices=["persons", "random"], default=None, help="forget set: whole persons (~2%%) or random 10%%")
    p.add_argument("--requests", type=int, default=None, help="serve the forget set as K sequential requests")
    p.add_argument("--federated", type=int, default=None, metavar="K", help="simulate K federated clients")
    _executor_args(p)
    p.add_argument(
        "--splits", type=int, default=1, metavar="K",
        help="score on K independent reference sets (other forget persons, data and seeds)",
    )
    p.add_argument(
        "--split", type=int, default=0, metavar="J",
        help="score on split J alone (0: the preset itself; J > 0: the reference set that "
        "--splits K > J builds as split J), e.g. a split no tuning saw",
    )
    p.add_argument(
        "--bootstrap", type=int, default=None, metavar="B",
        help="bootstrap resamples of every interval (default 1000; 200 past 500 forget examples)",
    )


# --- subcommands ------------------------------------------------------------------


def cmd_methods(args: argparse.Namespace) -> int:
    from methods import all_method_handlers
    from methods.base import new_method

    for name, cls in all_method_handlers().items():
        try:
            params = new_method(cls).hyperparameters()
        except Exception as exc:  # a broken __init__ should not hide the other methods
            params = {"<error>": f"{type(exc).__name__}: {exc}"}
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no hyperparameters"
        assets = f"  [assets: {', '.join(cls.assets)}]" if getattr(cls, "assets", ()) else ""
        print(f"{name:<22} {cls.__module__}.{cls.__name__}{assets}\n{'':<22} {shown}")
    return 0


def _build(args: argparse.Namespace, **parameters):
    from builder.hyperparameters import parse_overrides
    from builder.notebook import build_notebook
    from builder.render import NotebookParameters

    return build_notebook(
        args.method,
        overrides=parse_overrides(args.overrides),
        class_name=args.class_name,
        parameters=NotebookParameters(**parameters),
    )


def cmd_notebook(args: argparse.Namespace) -> int:
    built = _build(args, **_kaggle_assets_parameters(args))
    print(built.path)
    return 0


def _kaggle_assets_parameters(args: argparse.Namespace) -> dict:
    """The assets folder the notebook reads on Kaggle: the attached dataset's mount point."""
    from builder.discover import resolve_target

    target = resolve_target(args.method, args.class_name)
    if not getattr(target.cls, "assets", ()):
        return {}
    from builder.assets import assets_slug, kaggle_assets_dir

    owner = _owner(getattr(args, "owner", None))
    return {"assets_dir": kaggle_assets_dir(assets_slug(target.method_name, owner))}


def _owner(explicit: str | None) -> str:
    from builder.kernel_metadata import resolve_owner

    return resolve_owner(explicit)


def cmd_check_notebooks(args: argparse.Namespace) -> int:
    from builder.check_notebook import notebook_problems
    from builder.notebook import build_notebook
    from methods import all_method_handlers

    failures = 0
    for name in all_method_handlers():
        try:
            built = build_notebook(name)
        except BuildError as exc:
            print(f"FAIL {name}: {exc}")
            failures += 1
            continue
        problems = notebook_problems(built.path)
        for problem in problems:
            print(f"FAIL {name}: {problem}")
        failures += bool(problems)
        if not problems:
            print(f"ok   {name}: {built.path}")
    if failures:
        print(f"{failures} notebook(s) failed the checks", file=sys.stderr)
        return 1
    return 0


def _mock_dir(args: argparse.Namespace) -> Path:
    from local_eval.replica.mock_input import build_mock_input

    return build_mock_input(
        dataset=args.dataset,
        n_train=args.n_train,
        n_val=args.n_val,
        seed=args.seed,
        epochs=args.mock_epochs,
        data_root=args.data_root,
    )


def cmd_mock(args: argparse.Namespace) -> int:
    from local_eval.replica.mock_input import build_mock_input, write_empty_mock

    if args.empty:
        if args.out is None:
            raise EvalError("--empty needs --out FOLDER")
        print(write_empty_mock(args.out))
        return 0
    print(
        build_mock_input(
            args.out,
            dataset=args.dataset,
            n_train=args.n_train,
            n_val=args.n_val,
            seed=args.seed,
            epochs=args.mock_epochs,
            data_root=args.data_root,
        )
    )
    return 0


def _dry_run(args: argparse.Namespace, built) -> None:
    from local_eval.replica.dryrun import dry_run
    from local_eval.replica.kaggle_projection import parse_sizes

    sizes = parse_sizes(args.project_sizes)
    assets_dir = _local_assets(built)
    data_dir = args.data_dir if args.data_dir is not None else _mock_dir(args)
    dry_run(
        built.path,
        data_dir=data_dir,
        n_checkpoints=args.n_checkpoints,
        assets_dir=assets_dir,
        timeout=args.timeout,
        project_sizes=sizes,
        **({"efficiency": args.efficiency} if args.efficiency is not None else {}),
    )


def _local_assets(built) -> Path | None:
    """Assets as Kaggle will see them: the packaged flat folder, produced from the method."""
    if not built.extracted.assets:
        return None
    from builder.assets import collect_assets
    from builder.discover import resolve_target

    target = resolve_target(str(built.extracted.source_path), built.extracted.class_name)
    folder = built.path.parent / "assets"
    collect_assets(target.cls, folder)
    return folder


def cmd_dryrun(args: argparse.Namespace) -> int:
    built = _build(args, **_kaggle_assets_parameters(args))
    _dry_run(args, built)
    return 0


def cmd_submission(args: argparse.Namespace) -> int:
    built = _build(args, **_kaggle_assets_parameters(args))
    print(f"notebook: {built.path}")
    _dry_run(args, built)
    from builder.submit import package

    package(built, owner=args.owner, accelerator=args.accelerator)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    built = _build(args, **_kaggle_assets_parameters(args))
    from builder.submit import submit

    submit(
        built,
        owner=args.owner,
        accelerator=args.accelerator,
        push=args.push,
        run_submit=args.competition_submit,
        message=args.message,
    )
    return 0


def _preset_fields(args: argparse.Namespace) -> dict:
    """Command-line options that change the preset (and so the reference models)."""
    fields = {
        "n_models": args.n_models,
        "data_root": args.data_root,
        "batch_format": args.batch_format,
        "forget_mode": args.forget,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _preset_and_fields(args: argparse.Namespace) -> tuple:
    """The preset to score and the fields still to apply: split J's preset where --split J > 0.

    Split J's preset is the one ``--splits K`` (K > J) scores as its split J, so a
    held-out split can be scored on its own, and a split board reuses its results.
    """
    fields = _preset_fields(args)
    if args.split == 0:
        return args.preset, fields
    if args.splits != 1:
        raise EvalError("--split J scores one split and --splits K several: give one of them.")
    from local_eval.scoring.runner import resolve_preset
    from local_eval.scoring.several_splits import split_preset

    return split_preset(resolve_preset(args.preset, fields, None), args.split), {}


def _scenario(args: argparse.Namespace):
    """The scenario ``--requests K`` or ``--federated K`` asks for; the competition's otherwise."""
    if args.requests and args.federated:
        raise EvalError("--requests and --federated are separate modes: choose one")
    from local_eval.scoring.scenarios import get_scenario

    if args.requests:
        return get_scenario("requests", k=args.requests)
    if args.federated:
        return get_scenario("federated", clients=args.federated)
    return get_scenario("standard")


def _executor(args: argparse.Namespace):
    """The executor ``--executor`` / ``--ray-address`` / ``--task-cpus`` / ``--task-gpus`` ask for."""
    from local_eval.scoring.executors import make_executor

    return make_executor(
        args.executor, address=args.ray_address, cpus=args.task_cpus, gpus=args.task_gpus
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from builder.hyperparameters import parse_overrides

    hyperparameters = parse_overrides(args.overrides)
    scenario = _scenario(args)
    from local_eval.boards.report import evaluate_method, evaluate_splits

    preset, fields = _preset_and_fields(args)
    shared = dict(scenario=scenario, bootstrap=args.bootstrap, **fields)
    with closing(_executor(args)) as executor:
        if args.splits != 1:
            evaluate_splits(
                args.method, preset, args.splits, hyperparameters, executor=executor, **shared
            )
        else:
            evaluate_method(args.method, preset, hyperparameters, executor=executor, **shared)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    chosen = _method_list(args.methods)
    from local_eval.boards.leaderboard import build_leaderboard
    from local_eval.boards.split_board import build_split_leaderboard

    preset, fields = _preset_and_fields(args)
    shared = dict(scenario=scenario, only=chosen, bootstrap=args.bootstrap, **fields)
    with closing(_executor(args)) as executor:
        if args.splits != 1:
            path = build_split_leaderboard(preset, args.splits, executor=executor, **shared)
        else:
            path = build_leaderboard(preset, executor=executor, **shared)
    print(path)
    return 0


def cmd_references(args: argparse.Namespace) -> int:
    from local_eval.scoring.reference_status import reference_status, status_text
    from local_eval.scoring.references import build_references
    from local_eval.scoring.runner import resolve_preset

    fields = {"data_root": args.data_root} if args.data_root else {}
    preset = resolve_preset(args.preset, fields, args.n_models)
    if not args.status:
        with closing(_executor(args)) as executor:
            built = build_references(preset, executor=executor)
        print(f"this build: {built.seconds_this_build:.0f} s wall")
    print(status_text(reference_status(preset)))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from local_eval.boards.compare import compare_methods, comparison_text

    if args.splits != 1:
        raise EvalError(
            "compare pairs two methods on one reference set: drop --splits and pick one with "
            "--split J (SPLIT=J on make)."
        )
    with closing(_executor(args)) as executor:
        found = compare_methods(
            args.a,
            args.b,
            args.preset,
            scenario=_scenario(args),
            executor=executor,
            bootstrap=args.bootstrap,
            split=args.split,
            **_preset_fields(args),
        )
    print(comparison_text(found))
    return 0


def _one_per_board(given: list | None, flag: str) -> list:
    """An option given once serves both boards; twice, one each; never more."""
    values = given or [None]
    if len(values) > 2:
        raise EvalError(
            f"agree takes {flag} once (both boards) or twice (one per board), not {len(values)} "
            "times."
        )
    return values * 2 if len(values) == 1 else values


def cmd_agree(args: argparse.Namespace) -> int:
    from local_eval.boards.board_orders import agreement_text, order_agreement, read_board

    splits = _one_per_board(args.split, "--split")
    metrics = _one_per_board(args.metric, "--metric")
    first, second = (
        read_board(path, split=j, metric=m or "score")
        for path, j, m in zip(args.boards, splits, metrics)
    )
    found = order_agreement(first.scores, second.scores)
    print(agreement_text(first, second, found))
    if args.plot:
        from local_eval.boards.plots import plot_agreement

        print(f"wrote {plot_agreement(args.plot, first, second, found)}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from local_eval.tuning.tune import TuneRequest, tune

    fields = {"n_models": args.n_models, "data_root": args.data_root}
    tune(
        TuneRequest(
            method=args.method,
            preset=args.preset,
            preset_fields={k: v for k, v in fields.items() if v is not None},
            trials=args.trials,
            space=tuple(args.space),
            seed=args.seed,
            workers=args.workers,
            prune_at=args.prune_at,
            report=args.report,
            fresh=args.fresh,
            results_dir=args.results_dir,
            docs_dir=args.docs_dir,
            executor=args.executor,
            ray_address=args.ray_address,
            task_cpus=args.task_cpus,
            task_gpus=args.task_gpus,
        )
    )
    return 0


def _method_list(text: str | None) -> list[str] | None:
    """``--methods a,b`` as a list; None (every registered method) when not given."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise EvalError(
            f"--methods {text!r} names no method: give registered names separated by commas, "
            "e.g. --methods finetune,kookmin (see `python -m cli methods`)."
        )
    return names


if __name__ == "__main__":
    sys.exit(main())
