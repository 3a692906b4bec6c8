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
import time
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


TIMEOUT_ENV = "UNLEARNKIT_KAGGLE_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0
RATE_LIMIT_ATTEMPTS = 4
RULES_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"


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


def command_timeout() -> float:
    """Seconds one CLI call may take (``UNLEARNKIT_KAGGLE_TIMEOUT``): uploads of big assets are slow."""
    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise BuildError(
            f"{TIMEOUT_ENV}={value!r} is not a number of seconds; unset it or give e.g. 1800."
        ) from None


def run_kaggle(args: Sequence[str]) -> CommandOutput:
    """Run the CLI with the caller's environment; stdout and stderr are kept together.

    The CLI sets no timeout of its own, so an unresponsive server would hang the
    push forever: the call is bounded by :func:`command_timeout`.
    """
    executable, timeout = kaggle_executable(), command_timeout()
    try:
        completed = subprocess.run(
            [executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise KaggleCommandFailed(
            f"`{format_command(args)}` got no answer from Kaggle within {timeout:.0f} s (network "
            f"down, or Kaggle slow); nothing was changed here: run `make submit PUSH=1` again, "
            f"which resumes, or allow more time with {TIMEOUT_ENV}=SECONDS."
        ) from None
    except OSError as error:  # removed or made non-executable since it was found
        raise BuildError(
            f"the kaggle command-line tool at {executable} cannot be run ({error.strerror}); "
            "reinstall it with `pip install kaggle` in the project's virtual environment."
        ) from None
    return CommandOutput(completed.returncode, completed.stdout)


def retrying(
    runner: Runner,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = RATE_LIMIT_ATTEMPTS,
    first_delay_s: float = 5.0,
    max_delay_s: float = 60.0,
) -> Runner:
    """``runner``, run again with doubling pauses while Kaggle answers 429 (rate limited).

    A rate-limited request was refused before it did anything, so repeating it is
    safe even for uploads; after ``attempts`` tries the refusal is reported.
    """

    def run(args: Sequence[str]) -> CommandOutput:
        waited = 0.0
        delay = first_delay_s
        for attempt in range(1, attempts + 1):
            result = runner(args)
            if failure_kind(result.output) != "rate_limited":
                return result
            if attempt == attempts:
                break
            sleep(delay)
            waited += delay
            delay = min(delay * 2, max_delay_s)
        raise KaggleCommandFailed(
            f"Kaggle kept refusing `{format_command(args)}` as rate limited (429) after {attempts} "
            f"tries over {waited:.0f} s; wait a few minutes, then run `make submit PUSH=1` again "
            "(it resumes)."
        )

    return run


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


# What the CLI prints for each kind of refusal (kaggle 2.x adds a hint under the
# server's message; requests' own wording covers answers without a JSON body).
_SIGNATURES = (
    ("unauthorized", re.compile(r"Authentication required|401 Client Error|\bUnauthorized\b")),
    ("forbidden", re.compile(r"You don't have access to this resource|403 Client Error|\bForbidden\b")),
    ("not_found", re.compile(r"The resource was not found|404 Client Error|Could not find competition")),
    ("rate_limited", re.compile(r"You have been rate limited|429 Client Error|Too Many Requests")),
    ("server_error", re.compile(r"problem on Kaggle's side|\b5\d\d Server Error")),
    ("not_json", re.compile(
        r"Expecting value: line \d+|JSONDecodeError|Unterminated string|Extra data: line \d+"
        r"|Expecting property name"
    )),  # fmt: skip
    ("conflict", re.compile(r"409 Client Error|\bConflict\b")),
)


def failure_kind(output: str) -> str | None:
    """Which refusal the CLI's output reports, or None when it reports none of them."""
    for kind, pattern in _SIGNATURES:
        if pattern.search(output):
            return kind
    return None


def _server_message(output: str) -> str:
    """The server's own sentence: the first line, above the CLI's hint."""
    for line in output.strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("Warning:", "Looks like you're using")):
            return line[:200]
    return "(no output)"


def _refusal(args: Sequence[str], result: CommandOutput, not_found: str = "") -> None:
    """Raise one line naming the command, what Kaggle said and what to do; None if unclassified."""
    kind = failure_kind(result.output)
    command = f"`{format_command(args)}`"
    said = _server_message(result.output)
    resume = "run `make submit PUSH=1` again (it resumes)"
    if kind == "unauthorized":
        raise KaggleCommandFailed(
            f"Kaggle did not accept your credentials for {command} (401): {CREDENTIALS_HELP}."
        )
    if kind == "forbidden":
        raise KaggleCommandFailed(
            f"Kaggle refused {command} (403: {said}): accept the competition's rules at "
            f"{RULES_URL} with the account of your credentials, and check that the kernel's "
            "owner (--owner, KAGGLE_USERNAME) is that account."
        )
    if kind == "not_found":
        raise KaggleCommandFailed(
            f"Kaggle found nothing for {command} (404: {said}): "
            + (not_found or f"check the names in it, and that you joined {RULES_URL}")
            + "."
        )
    if kind == "server_error":
        raise KaggleCommandFailed(
            f"Kaggle's servers failed on {command} ({said}); nothing is wrong on your side: "
            f"wait a little, then {resume}."
        )
    if kind == "not_json":
        raise KaggleCommandFailed(
            f"Kaggle's answer to {command} was not JSON ({said}): a proxy, firewall or outage "
            f"page answered instead of Kaggle's API; check the connection, then {resume}."
        )
    if kind == "rate_limited":
        raise KaggleCommandFailed(
            f"Kaggle refused {command} as rate limited (429); wait a few minutes, then {resume}."
        )
    if kind == "conflict":
        raise KaggleCommandFailed(
            f"Kaggle refused {command} as a conflict (409: {said}): something with that name "
            f"already exists or is being changed; wait a minute, then {resume}."
        )


def dataset_exists(runner: Runner, dataset_id: str) -> bool:
    """True when Kaggle knows the dataset (so a new version is needed, not a create)."""
    args = dataset_status_args(dataset_id)
    result = runner(args)
    kind = failure_kind(result.output)
    if result.returncode == 0 and kind is None:
        return True
    if kind == "not_found" or (kind is None and "not found" in result.output.lower()):
        return False
    _refusal(args, result)
    raise _fail("checking the assets dataset", args, result)


def dataset_status(runner: Runner, dataset_id: str) -> str:
    """``ready``, ``failed``, ... or ``missing`` while a just-created dataset is not listed yet."""
    args = dataset_status_args(dataset_id)
    result = runner(args)
    kind = failure_kind(result.output)
    if result.returncode != 0 or kind is not None:
        if kind == "not_found" or (kind is None and "not found" in result.output.lower()):
            return "missing"
        _refusal(args, result)
        raise _fail("checking the assets dataset", args, result)
    return result.output.strip().splitlines()[-1].strip().lower() if result.output.strip() else ""


_DATASET_OK = re.compile(r"Dataset is being created|Dataset version is being created")


def upload_dataset(runner: Runner, args: Sequence[str]) -> str:
    """Run ``datasets create``/``version``; the CLI reports some refusals with exit 0."""
    result = runner(args)
    if result.returncode != 0 or not _DATASET_OK.search(result.output):
        _refusal(
            args, result,
            not_found="the assets dataset is not on Kaggle (yet): check `kaggle datasets list --mine`",
        )  # fmt: skip
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
    if result.returncode != 0 or failure_kind(result.output) is not None:  # it may exit 0
        _refusal(
            args, result,
            not_found=(
                f"the notebook names a data source Kaggle does not know: the competition "
                f"{COMPETITION} (join it and accept its rules at {RULES_URL}) or the assets "
                "dataset (check `kaggle datasets status <owner>/<slug>`)"
            ),
        )  # fmt: skip
        if result.returncode != 0:
            raise _fail("pushing the notebook", args, result)
    return parse_kernel_version(result.output)


_STATUS = re.compile(r'has status "(?:KernelWorkerStatus\.)?([A-Za-z_]+)"')


def kernel_status(runner: Runner, kernel_id: str) -> str:
    """``complete``, ``running``, ``queued``, ``error``, ... of the latest version."""
    args = kernel_status_args(kernel_id)
    result = runner(args)
    match = _STATUS.search(result.output)
    if result.returncode != 0 or match is None:
        _refusal(
            args, result,
            not_found=f"Kaggle has no notebook {kernel_id}: push it first (`make submit PUSH=1`)",
        )  # fmt: skip
        raise _fail("reading the notebook's status", args, result)
    return match.group(1).lower()


def submit_to_competition(runner: Runner, kernel_id: str, version: int, message: str) -> str:
    args = competition_submit_args(kernel_id, version, message)
    result = runner(args)
    if result.returncode != 0 or failure_kind(result.output) is not None:
        _refusal(
            args, result,
            not_found=(
                f"the competition {COMPETITION} or the notebook {kernel_id} version {version}: "
                f"join the competition and accept its rules at {RULES_URL}"
            ),
        )  # fmt: skip
        if result.returncode != 0:
            raise _fail("submitting to the competition", args, result)
    return result.output
