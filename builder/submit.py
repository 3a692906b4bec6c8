"""``make submit``: package, validate, then push with the kaggle CLI -- or say how.

Without ``push`` nothing leaves the machine: the exact commands are printed so
they can be reviewed or run by hand. With ``push``, the assets dataset is
created (or versioned when it exists) and waited on until Kaggle has processed
it, because a notebook pushed before that runs without its data; then the
notebook is pushed and its version number read from the CLI's output. Code
competitions score a *finished* notebook version, so ``run_submit`` waits for
the run to complete before ``kaggle competitions submit``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder import kaggle_cli
from builder import package as packaging
from builder.kaggle_cli import KaggleCommandFailed, Runner, format_command
from builder.package import SUBMISSIONS_ROOT, PackageResult
from builder.validate_submission import display_path

VERSION_PLACEHOLDER = "<N>"
DATASET_FAILED = ("failed", "deleted")
KERNEL_FAILED = ("error", "cancel_requested", "cancel_acknowledged")


@dataclass(frozen=True)
class SubmitResult:
    package: PackageResult
    commands: tuple[str, ...]
    pushed: bool = False
    dataset_action: str | None = None
    kernel_version: int | None = None
    submit_command: str | None = None
    submitted: bool = False


@dataclass(frozen=True)
class Waits:
    """How long to wait for Kaggle, and how (``sleep`` is swapped out in tests)."""

    dataset_timeout_s: float = 900.0
    kernel_timeout_s: float = 12 * 3600.0
    poll_s: float = 15.0
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class _Target:
    method_name: str
    notebook_path: Path
    method_cls: type
    out_root: Path


def _target(target, notebook_path, method_cls, out_root) -> _Target:
    """Accept a method name with its notebook and class, or the notebook builder's result."""
    if isinstance(target, str):
        if notebook_path is None or method_cls is None:
            raise TypeError("a method name needs notebook_path= and method_cls=")
        return _Target(target, Path(notebook_path), method_cls, Path(out_root or SUBMISSIONS_ROOT))
    from builder.discover import resolve_target  # a BuiltNotebook from builder.notebook

    extracted = target.extracted
    cls = method_cls or resolve_target(str(extracted.source_path), extracted.class_name).cls
    path = Path(target.path)
    return _Target(extracted.method_name, path, cls, Path(out_root or path.parent.parent))


def package(
    target,
    *,
    notebook_path: Path | None = None,
    method_cls: type | None = None,
    owner: str | None = None,
    accelerator: str = "gpu",
    out_root: Path | None = None,
    echo: Callable[[str], None] = print,
) -> PackageResult:
    """``make submission``'s last step: package and validate offline, and say what is ready."""
    t = _target(target, notebook_path, method_cls, out_root)
    result = packaging.package(
        t.method_name,
        notebook_path=t.notebook_path,
        method_cls=t.method_cls,
        owner=owner,
        accelerator=accelerator,
        out_root=t.out_root,
    )
    for warning in result.warnings:
        echo(str(warning))
    echo(f"kernel folder: {display_path(result.kernel_dir)} (id {result.kernel_id})")
    if result.assets_dir is not None:
        echo(f"assets folder: {display_path(result.assets_dir)} (dataset {result.dataset_id})")
    echo(f"validated; push with `make submit METHOD={t.method_name} PUSH=1`")
    return result


def submit(
    target,
    *,
    notebook_path: Path | None = None,
    method_cls: type | None = None,
    owner: str | None = None,
    push: bool = False,
    run_submit: bool = False,
    message: str | None = None,
    accelerator: str = "gpu",
    out_root: Path | None = None,
    runner: Runner | None = None,
    echo: Callable[[str], None] = print,
    waits: Waits | None = None,
) -> SubmitResult:
    """Package and validate, then print (or with ``push`` run) the kaggle commands.

    ``target`` is a method name (with ``notebook_path`` and ``method_cls``) or
    the notebook builder's ``BuiltNotebook``. Raises ``BuildError`` subclasses
    for anything the user must fix: invalid folders, missing credentials, a
    refused upload or push.
    """
    t = _target(target, notebook_path, method_cls, out_root)
    method_name = t.method_name
    if push or run_submit:  # submitting needs a pushed version, so it implies a push
        kaggle_cli.require_credentials()
    result = packaging.package(
        method_name,
        notebook_path=t.notebook_path,
        method_cls=t.method_cls,
        owner=owner,
        accelerator=accelerator,
        out_root=t.out_root,
        for_push=push or run_submit,
    )
    for warning in result.warnings:
        echo(str(warning))
    message = message or f"unlearnkit {method_name}"
    pushing = push or run_submit
    program = kaggle_cli.display_program(kaggle_cli.kaggle_executable()) if pushing else "kaggle"
    kernel_dir = Path(display_path(result.kernel_dir))
    assets_dir = Path(display_path(result.assets_dir)) if result.assets_dir else None

    def show(args: list[str]) -> str:
        return format_command(args, program)

    push_args = kaggle_cli.kernel_push_args(kernel_dir)
    if not pushing:
        commands = _plan(result, assets_dir, push_args, message, show)
        echo(
            f"Packaged {display_path(result.kernel_dir.parent)} (owner {result.owner} from {result.owner_source})."
        )
        echo("Nothing was sent. With PUSH=1 these commands run:")
        for line in commands:
            echo(f"  {line}")
        return SubmitResult(result, tuple(commands))

    waits = waits or Waits()
    quiet_run = kaggle_cli.retrying(runner or kaggle_cli.run_kaggle, sleep=waits.sleep)
    run = _echoing(quiet_run, echo)
    commands: list[str] = []
    action = None
    if assets_dir is not None and result.dataset_id is not None:
        exists = kaggle_cli.dataset_exists(quiet_run, result.dataset_id)
        commands.append(show(kaggle_cli.dataset_status_args(result.dataset_id)))
        upload = (
            kaggle_cli.dataset_version_args(assets_dir, f"{message}: assets update")
            if exists
            else kaggle_cli.dataset_create_args(assets_dir)
        )
        action = "version" if exists else "create"
        echo(f"$ {show(upload)}")
        try:
            kaggle_cli.upload_dataset(run, upload)
        except KaggleCommandFailed as failure:
            if exists or not _exists_after_all(quiet_run, result.dataset_id, failure):
                raise
            # An earlier push created it and Kaggle had not listed it yet: add a version instead.
            upload = kaggle_cli.dataset_version_args(assets_dir, f"{message}: assets update")
            action = "version"
            echo(f"The assets dataset exists after all; $ {show(upload)}")
            kaggle_cli.upload_dataset(run, upload)
        commands.append(show(upload))
        _wait_for_dataset(quiet_run, result.dataset_id, waits, echo)
    echo(f"$ {show(push_args)}")
    version = kaggle_cli.push_kernel(run, kernel_dir)
    commands.append(show(push_args))
    echo(f"Pushed {result.kernel_id} version {version}.")
    submit_args = kaggle_cli.competition_submit_args(result.kernel_id, version, message)
    submit_line = show(submit_args)
    if not run_submit:
        echo("When that version has finished running on Kaggle, submit it with:")
        echo(f"  {submit_line}")
        return SubmitResult(result, tuple(commands), True, action, version, submit_line)
    _wait_for_kernel(quiet_run, result.kernel_id, waits, echo)
    echo(f"$ {submit_line}")
    kaggle_cli.submit_to_competition(run, result.kernel_id, version, message)
    commands.append(submit_line)
    return SubmitResult(result, tuple(commands), True, action, version, submit_line, True)


_PROGRESS = re.compile(r"\d+%\|")


def _exists_after_all(run: Runner, dataset_id: str, failure: KaggleCommandFailed) -> bool:
    """Whether a dataset whose creation was just refused is on Kaggle (a conflict, not a fault)."""
    try:
        return kaggle_cli.dataset_exists(run, dataset_id)
    except KaggleCommandFailed:
        raise failure from None


def _echoing(runner: Runner, echo: Callable[[str], None]) -> Runner:
    """Show what the CLI said (minus progress bars): its URLs and warnings matter to the user."""

    def run(args):
        output = runner(args)
        if output.returncode != 0 or kaggle_cli.failure_kind(output.output) is not None:
            return output  # the failure is reported in one line by the caller
        for line in output.output.replace("\r", "\n").splitlines():
            if line.strip() and not _PROGRESS.search(line):
                echo(f"  {line.rstrip()}")
        return output

    return run


def _plan(result: PackageResult, assets_dir, push_args, message, show) -> list[str]:
    lines = []
    if assets_dir is not None and result.dataset_id is not None:
        lines.append(
            f"{show(kaggle_cli.dataset_status_args(result.dataset_id))}    # does the assets dataset exist?"
        )
        lines.append(f"{show(kaggle_cli.dataset_create_args(assets_dir))}    # if not")
        lines.append(
            f"{show(kaggle_cli.dataset_version_args(assets_dir, f'{message}: assets update'))}    # if it does"
        )
    lines.append(show(push_args))
    submit_args = kaggle_cli.competition_submit_args(result.kernel_id, VERSION_PLACEHOLDER, message)
    lines.append(
        f"{show(submit_args)}    # {VERSION_PLACEHOLDER}: the version `kernels push` reports"
    )
    return lines


def _wait_for_dataset(run: Runner, dataset_id: str, waits: Waits, echo) -> None:
    """A notebook pushed before its dataset is ready is refused that data source."""
    waited = 0.0
    while True:
        status = kaggle_cli.dataset_status(run, dataset_id)
        if status == "ready":
            return
        if status in DATASET_FAILED:
            raise KaggleCommandFailed(
                f"Kaggle reports the assets dataset {dataset_id} as {status!r}; open it on kaggle.com, "
                "fix or delete it, and submit again."
            )
        if waited >= waits.dataset_timeout_s:
            raise KaggleCommandFailed(
                f"the assets dataset {dataset_id} was still {status!r} after {waited:.0f} s; run "
                "`make submit PUSH=1` again once `kaggle datasets status` reports it ready."
            )
        echo(f"Waiting for {dataset_id} to be processed (status {status!r})...")
        waits.sleep(waits.poll_s)
        waited += waits.poll_s


def _wait_for_kernel(run: Runner, kernel_id: str, waits: Waits, echo) -> None:
    """Kaggle scores a notebook version only once it has run to completion."""
    waited = 0.0
    while True:
        status = kaggle_cli.kernel_status(run, kernel_id)
        if status == "complete":
            return
        if status in KERNEL_FAILED:
            raise KaggleCommandFailed(
                f"the notebook {kernel_id} ended with status {status!r}; read its log with "
                f"`{format_command(['kernels', 'output', kernel_id, '-p', 'kaggle-output'])}`, fix it "
                "and push again."
            )
        if waited >= waits.kernel_timeout_s:
            raise KaggleCommandFailed(
                f"the notebook {kernel_id} was still {status!r} after {waited:.0f} s; submit by hand "
                "once it has finished."
            )
        echo(f"Waiting for {kernel_id} to finish running (status {status!r})...")
        waits.sleep(waits.poll_s)
        waited += waits.poll_s
