"""Running the kaggle CLI and reading what it says.

The CLI is run as a subprocess, never imported: importing ``kaggle`` tries to
authenticate on the spot. Its exit code cannot be trusted on its own -- it
exits 0 after ``Kernel push error: ...`` or ``Dataset creation error: ...`` --
so every call's output is parsed for the line that proves success.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildError
from builder.kaggle_names import kaggle_config_dirs
from builder.kernel_metadata import COMPETITION

CREDENTIALS_HELP = (
    "set KAGGLE_USERNAME and KAGGLE_KEY, or save the token file from kaggle.com > Settings > API "
    "as ~/.kaggle/kaggle.json (chmod 600), or set KAGGLE_API_TOKEN"
)


class KaggleCommandFailed(BuildError):
    """A kaggle CLI call that did not do what it was asked."""


@dataclass(frozen=True)
class CommandOutput:
    returncode: int
    output: str


Runner = Callable[[Sequence[str]], CommandOutput]


def kaggle_executable() -> str:
    """The CLI installed next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "kaggle"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kaggle")
    if found:
        return found
    raise BuildError(
        "the kaggle command-line tool is not installed in this environment; run "
        "`pip install kaggle` in the project's virtual environment (make setup installs it)."
    )


def display_program(executable: str) -> str:
    """``kaggle`` when that is what the shell would run, else the full path."""
    on_path = shutil.which("kaggle")
    if on_path and Path(on_path).resolve() == Path(executable).resolve():
        return "kaggle"
    return executable


def format_command(args: Sequence[str], program: str = "kaggle") -> str:
    """A shell-quoted command line the user can paste."""
    return shlex.join([program, *args])


def run_kaggle(args: Sequence[str]) -> CommandOutput:
    """Run the CLI with the caller's environment; stdout and stderr are kept together."""
    completed = subprocess.run(
        [kaggle_executable(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return CommandOutput(completed.returncode, completed.stdout)


def credential_source() -> str | None:
    """Which credential the CLI would use, or None; their values are never read here."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    for folder in kaggle_config_dirs():
        if (folder / "kaggle.json").is_file():
            return str(folder / "kaggle.json")
    for name in ("access_token", "access_token.txt", "credentials.json"):
        if (Path.home() / ".kaggle" / name).is_file():
            return f"~/.kaggle/{name}"
    return None


def require_credentials() -> str:
    source = credential_source()
    if source is None:
        raise BuildError(
            f"no Kaggle credentials found, so nothing can be pushed: {CREDENTIALS_HELP}."
        )
    return source


def dataset_status_args(dataset_id: str) -> list[str]:
    return ["datasets", "status", dataset_id]


def dataset_create_args(assets_dir: Path) -> list[str]:
    return ["datasets", "create", "-p", str(assets_dir)]


def dataset_version_args(assets_dir: Path, notes: str) -> list[str]:
    return ["datasets", "version", "-p", str(assets_dir), "-m", notes]


def kernel_push_args(kernel_dir: Path) -> list[str]:
    return ["kernels", "push", "-p", str(kernel_dir)]


def kernel_status_args(kernel_id: str) -> list[str]:
    return ["kernels", "status", kernel_id]


def competition_submit_args(kernel_id: str, version: int | str, message: str) -> list[str]:
    return [
        "competitions", "submit", COMPETITION,
        "-k", kernel_id, "-v", str(version), "-f", "submission.zip", "-m", message,
    ]  # fmt: skip


def _tail(output: str, lines: int = 8) -> str:
    kept = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _fail(
    what: str, args: Sequence[str], result: CommandOutput, hint: str = ""
) -> KaggleCommandFailed:
    return KaggleCommandFailed(
        f"{what} failed (`{format_command(args)}` exited {result.returncode}): {_tail(result.output)}"
        + (f". {hint}" if hint else "")
    )


def _check_auth(args: Sequence[str], result: CommandOutput) -> None:
    """Turn the CLI's page of sign-up instructions into one line naming the fix."""
    if "Authentication required" in result.output or "401 Client Error" in result.output:
        raise KaggleCommandFailed(
            f"Kaggle did not accept your credentials for `{format_command(args)}`: {CREDENTIALS_HELP}."
        )


def dataset_exists(runner: Runner, dataset_id: str) -> bool:
    """True when Kaggle knows the dataset (so a new version is needed, not a create)."""
    args = dataset_status_args(dataset_id)
    result = runner(args)
    if result.returncode == 0:
        return True
    _check_auth(args, result)
    if "not found" in result.output.lower() or "404" in result.output:
        return False
    raise _fail("checking the assets dataset", args, result)


def dataset_status(runner: Runner, dataset_id: str) -> str:
    """``ready``, ``failed``, ... or ``missing`` while a just-created dataset is not listed yet."""
    args = dataset_status_args(dataset_id)
    result = runner(args)
    if result.returncode != 0:
        _check_auth(args, result)
        if "not found" in result.output.lower() or "404" in result.output:
            return "missing"
        raise _fail("checking the assets dataset", args, result)
    return result.output.strip().splitlines()[-1].strip().lower() if result.output.strip() else ""


_DATASET_OK = re.compile(r"Dataset is being created|Dataset version is being created")


def upload_dataset(runner: Runner, args: Sequence[str]) -> str:
    """Run ``datasets create``/``version``; the CLI reports some refusals with exit 0."""
    result = runner(args)
    if result.returncode != 0 or not _DATASET_OK.search(result.output):
        _check_auth(args, result)
        raise _fail("uploading the assets dataset", args, result)
    return result.output


_PUSHED = re.compile(r"Kernel version (\d+) successfully pushed")
_INVALID_SOURCES = re.compile(
    r"The following are not valid (\w+) sources and could not be added[^\n]*"
)


def parse_kernel_version(output: str) -> int:
    """The version number in ``Kernel version N successfully pushed``.

    ``Kernel push error`` (printed with exit status 0) and sources the server
    refused to attach are failures: the notebook would run without its data.
    """
    if "Kernel push error" in output:
        raise KaggleCommandFailed(
            f"Kaggle refused the notebook: {_tail(output)}. Fix what it names and push again."
        )
    refused = _INVALID_SOURCES.search(output)
    if refused:
        hint = (
            "join the competition and accept its rules on kaggle.com first"
            if refused.group(1) == "competition"
            else "wait until `kaggle datasets status` reports the dataset ready, then push again"
        )
        raise KaggleCommandFailed(
            f"the notebook was pushed without its data: {refused.group(0).strip()}; {hint}."
        )
    match = _PUSHED.search(output)
    if match is None:
        raise KaggleCommandFailed(
            f"kaggle kernels push did not report a version number: {_tail(output)}. "
            "Check the notebook on kaggle.com before submitting."
        )
    return int(match.group(1))


def push_kernel(runner: Runner, kernel_dir: Path) -> int:
    args = kernel_push_args(kernel_dir)
    result = runner(args)
    if result.returncode != 0:
        _check_auth(args, result)
        raise _fail("pushing the notebook", args, result)
    return parse_kernel_version(result.output)


_STATUS = re.compile(r'has status "(?:KernelWorkerStatus\.)?([A-Za-z_]+)"')


def kernel_status(runner: Runner, kernel_id: str) -> str:
    """``complete``, ``running``, ``queued``, ``error``, ... of the latest version."""
    args = kernel_status_args(kernel_id)
    result = runner(args)
    match = _STATUS.search(result.output)
    if result.returncode != 0 or match is None:
        _check_auth(args, result)
        raise _fail("reading the notebook's status", args, result)
    return match.group(1).lower()


def submit_to_competition(runner: Runner, kernel_id: str, version: int, message: str) -> str:
    args = competition_submit_args(kernel_id, version, message)
    result = runner(args)
    if result.returncode != 0:
        _check_auth(args, result)
        raise _fail("submitting to the competition", args, result)
    return result.output
