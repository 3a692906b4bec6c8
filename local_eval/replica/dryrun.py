"""Execute a competition notebook on a mock Kaggle input and check what Kaggle would get.

A notebook that fails on Kaggle costs a submission slot and hours of queue, so the
dry-run runs it the way Kaggle does (papermill, fresh kernel, the notebook's own
working directory) and then applies the checks the scorer applies: a
``submission.zip`` with exactly the requested checkpoints, each loadable with
``weights_only=True`` into ``resnet18(num_classes=10)`` and each actually changed
by ``unlearning()``. Its record, ``dryrun.json``, ties the verdict to the exact
notebook and unlearning source by hash, so packaging can refuse stale notebooks.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import torch
from nbformat import NotebookNode

from local_eval.errors import EvalError
from local_eval.replica import kaggle_projection, state_leak
from local_eval.replica.input_validation import (
    EMPTY_MARKER,
    NUM_CLASSES,
    ORIGINAL_MODEL,
    check_competition_input,
    competition_model,
    key_mismatches,
)
from local_eval.replica.instrument import instrumented_copy, marker_payload
from local_eval.replica.kernel import check_kernel_exists, ensure_kernel
from local_eval.replica.notebook_failure import describe_failure
from local_eval.store.files import atomic_write_json, atomic_write_text

REPORT_NAME = "dryrun.json"
TIMING = re.compile(
    r"UNLEARNKIT_TIMING seconds_per_call=(?P<seconds>\S+) device=(?P<device>\S+) calls=(?P<calls>\d+)"
)


class DryRunFailed(EvalError):
    """The notebook failed or its submission would not be accepted; the message says why and where."""

    def __init__(
        self, message: str, *, executed_notebook: Path | None = None, report: Path | None = None
    ) -> None:
        super().__init__(message)
        self.executed_notebook = executed_notebook
        self.report = report


@dataclass(frozen=True)
class Timing:
    """What the driver cell measured around each ``unlearning()`` call."""

    seconds_per_call: float
    device: str
    calls: int

    def summary(self, calls: int = kaggle_projection.KAGGLE_CALLS) -> str:
        return (
            f"unlearning(): {_seconds(self.seconds_per_call)} s per call on {self.device} "
            f"(mean of {self.calls} call{'s' if self.calls != 1 else ''}); "
            f"{calls} calls would take {format_duration(self.seconds_per_call * calls)} on {self.device}."
        )


@dataclass(frozen=True)
class DryRunResult:
    ok: bool
    notebook: Path
    executed_notebook: Path
    html: Path
    report: Path
    n_checkpoints: int
    empty_input: bool
    timing: Timing | None
    checkpoints: tuple[str, ...]  # names inside submission.zip, as Kaggle would see them


@dataclass(frozen=True)
class SubmissionCheck:
    entries: tuple[str, ...]
    problems: tuple[str, ...]  # sentences saying why Kaggle would reject the zip; empty when fine


def dry_run(
    notebook_path: Path,
    *,
    data_dir: Path,
    n_checkpoints: int = 2,
    assets_dir: Path | None = None,
    out_dir: Path | None = None,
    timeout: int | None = None,
    kernel_name: str | None = None,
    project_sizes: dict[str, int] | None = None,
    efficiency: float = kaggle_projection.DEFAULT_EFFICIENCY,
) -> DryRunResult:
    """Execute ``notebook_path`` with papermill on ``data_dir`` and check its ``submission.zip``.

    Writes ``<method>.executed.ipynb``, ``<method>.executed.html`` and ``dryrun.json``
    into ``out_dir`` (default: the notebook's folder), also when the run fails, and
    raises ``DryRunFailed`` with a one-paragraph report on any failure (also stored as
    ``dryrun.json``'s ``error``). ``timeout`` bounds each cell in seconds (default: none);
    a cell that outlives it is interrupted, so the report shows where it hung.

    After the driver, the executed copy also compares the reused network with a fresh
    one (state left by ``unlearning()`` fails the run) and counts one more call's FLOPs
    to project 512 calls on Kaggle's GPUs, scaled to ``project_sizes`` when given.
    """
    notebook_path, data_dir = Path(notebook_path), Path(data_dir)
    notebook, empty_input = _check_inputs(notebook_path, data_dir, n_checkpoints, assets_dir)
    out = Path(out_dir) if out_dir is not None else notebook_path.parent
    out.mkdir(parents=True, exist_ok=True)
    method = notebook_path.name.removesuffix(".ipynb")
    executed_path = out / f"{method}.executed.ipynb"
    html_path = out / f"{method}.executed.html"
    report_path = out / REPORT_NAME
    record = {
        "notebook_sha256": hashlib.sha256(notebook_path.read_bytes()).hexdigest(),
        "source_sha256": unlearning_source_sha256(notebook),
        "ok": False,
        "n_checkpoints": n_checkpoints,
        "seconds_per_call": None,
        "device": None,
        "finished_at": None,
        "data_dir": str(data_dir.resolve()),
        "error": None,
    }
    kernel = ensure_kernel() if kernel_name is None else check_kernel_exists(kernel_name)
    parameters: dict[str, object] = {
        "DATA_DIR": str(data_dir.resolve()),
        "N_CHECKPOINTS": n_checkpoints,
        "REQUIRE_GPU": False,
    }
    if assets_dir is not None:
        parameters["ASSETS_DIR"] = str(Path(assets_dir).resolve())

    with tempfile.TemporaryDirectory(prefix="unlearnkit-dryrun-") as tmp:
        run_dir, work_dir = Path(tmp) / "run", Path(tmp) / "work"
        run_dir.mkdir()
        work_dir.mkdir()
        raw_output = Path(tmp) / f"{method}.executed.ipynb"
        root = str(Path(__file__).resolve().parents[2])
        checks = [state_leak.check_cell_source(root), kaggle_projection.flop_cell_source(root)]
        error = _execute(
            instrumented_copy(notebook_path, run_dir.parent, checks),
            raw_output,
            {**parameters, "WORK_DIR": str(work_dir)},
            kernel=kernel,
            cwd=run_dir,
            timeout=timeout,
        )
        executed = _publish_executed(raw_output, executed_path)
        html = _export_html_quietly(executed, html_path)
        if error is not None:
            message = describe_failure(
                error,
                executed,
                notebook_path=notebook_path,
                executed_path=executed_path if executed is not None else None,
                html_path=html,
                timeout=timeout,
            )
            _fail(message, record, report_path, executed_path)
        timing = parse_timing(executed) if executed is not None else None
        if timing is not None:
            record.update(seconds_per_call=timing.seconds_per_call, device=timing.device)
        submission = check_submission(
            run_dir / "submission.zip",
            n_checkpoints=n_checkpoints,
            original_model=None if empty_input else data_dir / ORIGINAL_MODEL,
        )
    if submission.problems:
        message = (
            f"Dry-run of {notebook_path} ran to the end, but Kaggle would reject its submission.zip: "
            + " ".join(submission.problems)
            + f" The executed notebook is at {executed_path}."
        )
        _fail(message, record, report_path, executed_path)
    leaks = [state_leak.Leak(**r) for r in marker_payload(executed, state_leak.MARKER) or []]
    if leaks:
        message = (
            f"Dry-run of {notebook_path}: unlearning() leaves state on the network it is given, and the "
            "competition's notebook reuses that network for its next call:\n"
            + state_leak.leak_report(leaks, _method_file(notebook, notebook_path))
        )
        _fail(message, record, report_path, executed_path)
    flops = kaggle_projection.flops_from_record(marker_payload(executed, kaggle_projection.MARKER))
    if flops is not None:
        record["kaggle_projection"] = {
            "flops_by_split": flops.by_split, "run_sizes": flops.sizes, "project_sizes": project_sizes,
            "efficiency": efficiency,
            "seconds_per_call": {p.gpu: p.seconds_per_call for p in kaggle_projection.project(flops, project_sizes, efficiency)},
        }
    if html is None:
        html = export_html(executed, html_path)  # the notebook ran fine: its HTML must exist
    record.update(ok=True, finished_at=_now())
    atomic_write_json(report_path, record)
    _print_summary(notebook_path, n_checkpoints, empty_input, timing)
    if flops is not None:
        print(kaggle_projection.summary(flops, project_sizes, efficiency, format_duration))
    return DryRunResult(
        ok=True,
        notebook=notebook_path,
        executed_notebook=executed_path,
        html=html,
        report=report_path,
        n_checkpoints=n_checkpoints,
        empty_input=empty_input,
        timing=timing,
        checkpoints=submission.entries,
    )


def unlearning_source_sha256(notebook: NotebookNode) -> str | None:
    """Hash of the cell tagged ``unlearning``: what changes when the method changes."""
    for cell in notebook.cells:
        if "unlearning" in cell.get("metadata", {}).get("tags", []):
            return hashlib.sha256(cell.source.encode("utf-8")).hexdigest()
    return None


def parse_timing(executed: NotebookNode) -> Timing | None:
    """The last ``UNLEARNKIT_TIMING`` line the notebook printed, if any."""
    found = None
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                for match in TIMING.finditer(output.get("text", "")):
                    found = match
    if found is None:
        return None
    try:
        seconds = float(found.group("seconds"))
    except ValueError:
        return None
    return Timing(seconds, found.group("device"), int(found.group("calls")))


def check_submission(
    zip_path: Path, *, n_checkpoints: int, original_model: Path | None
) -> SubmissionCheck:
    """Check ``zip_path`` the way Kaggle's scorer reads it.

    ``original_model=None`` means the input had ``empty.txt``: then the zip must be empty.
    """
    if not zip_path.exists():
        return SubmissionCheck(
            (), ("The notebook wrote no submission.zip in its working directory.",)
        )
    if original_model is None:
        return _check_empty_zip(zip_path)
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        return SubmissionCheck(
            (), (f"submission.zip ({zip_path.stat().st_size} bytes) is not a zip archive.",)
        )
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        problems = []
        if len(entries) != n_checkpoints:
            problems.append(
                f"submission.zip holds {len(entries)} file{'s' if len(entries) != 1 else ''}"
                f"{_list_names(entries)}, expected exactly {n_checkpoints} checkpoints "
                f"(N_CHECKPOINTS={n_checkpoints})."
            )
        original = _load_original(original_model)
        model = competition_model()
        identical = []
        for info in entries:
            problem, state = _load_checkpoint(archive, info, model)
            if problem:
                problems.append(problem)
            elif _same_weights(state, original):
                identical.append(info.filename)
    if identical:
        problems.append(
            f"{len(identical)} of {len(entries)} checkpoints ({_first(identical)}) "
            f"are identical to {ORIGINAL_MODEL}: "
            "unlearning() left the weights unchanged (run() must modify net in place, not rebind it)."
        )
    return SubmissionCheck(tuple(info.filename for info in entries), tuple(problems))


def _seconds(value: float) -> str:
    """Two decimals, or two significant digits for the sub-0.1 s calls of toy notebooks."""
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _check_inputs(
    notebook_path: Path, data_dir: Path, n_checkpoints: int, assets_dir: Path | None
) -> tuple[NotebookNode, bool]:
    """Catch the mistakes that would otherwise surface as an obscure error deep in a cell."""
    if not notebook_path.is_file():
        raise EvalError(
            f"Notebook {notebook_path} does not exist; build it first (`make notebook METHOD=<name>`)."
        )
    try:
        notebook = nbformat.read(notebook_path, as_version=4)
    except Exception as error:  # nbformat raises JSON, validation and version errors
        raise EvalError(
            f"Notebook {notebook_path} cannot be read as a Jupyter notebook ({type(error).__name__}: "
            f"{error}); rebuild it (`make notebook METHOD=<name>`)."
        ) from error
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in notebook.cells):
        raise EvalError(
            f"Notebook {notebook_path} has no cell tagged 'parameters', so papermill cannot point it "
            "at the mock input (it would read /kaggle/input); rebuild it from the project's template."
        )
    if isinstance(n_checkpoints, bool) or not isinstance(n_checkpoints, int) or n_checkpoints < 1:
        raise EvalError(
            f"n_checkpoints must be a positive whole number, got {n_checkpoints!r}; "
            "2 is enough to check the notebook (Kaggle asks for 512)."
        )
    if not data_dir.is_dir():
        raise EvalError(
            f"Input folder {data_dir} does not exist; pass a competition-layout folder with "
            "--data-dir, or leave it out to dry-run on the mock input."
        )
    check_competition_input(data_dir)  # every problem, one line each, before anything runs
    empty_input = (data_dir / EMPTY_MARKER).exists()
    if assets_dir is not None and not Path(assets_dir).is_dir():
        raise EvalError(
            f"Assets folder {assets_dir} does not exist; pass the folder holding the method's `assets` files."
        )
    return notebook, empty_input


def _execute(
    notebook_path: Path,
    output_path: Path,
    parameters: dict[str, object],
    *,
    kernel: str,
    cwd: Path,
    timeout: int | None,
) -> BaseException | None:
    """Run the notebook; return the failure instead of raising, so artefacts get saved first."""
    import papermill

    try:
        papermill.execute_notebook(
            str(notebook_path),
            str(output_path),
            parameters=parameters,
            kernel_name=kernel,
            progress_bar=True,
            cwd=str(cwd),
            execution_timeout=timeout,
            # An interrupted cell reports where it was stuck; a killed kernel reports nothing.
            interrupt_on_timeout=timeout is not None,
        )
    except Exception as error:  # papermill, nbclient and jupyter_client each raise their own
        return error
    return None


def _publish_executed(raw_output: Path, executed_path: Path) -> NotebookNode | None:
    """Move papermill's output next to the built notebook, pointing its metadata at its new home.

    Without an output (the kernel never started) an older run's notebook is removed, so
    that nothing beside the new dryrun.json describes a different run.
    """
    executed = None
    if raw_output.exists():
        try:
            executed = nbformat.read(raw_output, as_version=4)
        except Exception:  # a kernel that died mid-save can leave a truncated file
            executed = None
    if executed is None:
        executed_path.unlink(missing_ok=True)
        return None
    executed.metadata.setdefault("papermill", {})["output_path"] = str(executed_path)
    atomic_write_text(executed_path, nbformat.writes(executed))
    return executed


def export_html(executed: NotebookNode, html_path: Path) -> Path:
    """Write the executed notebook as one HTML page, atomically.

    The HTML is what reviewers open without Jupyter: it shows every cell's output,
    the timing line and, after a failure, the traceback, exactly as executed.
    """
    from nbconvert import HTMLExporter

    try:
        body, _ = HTMLExporter().from_notebook_node(executed)
    except Exception as error:  # nbconvert raises template, jinja and parsing errors alike
        raise EvalError(
            f"Could not render the executed notebook as HTML for {html_path}: "
            f"{type(error).__name__}: {error}. The executed .ipynb is unaffected; check that "
            "nbconvert's templates are installed in the environment (`pip install nbconvert`)."
        ) from error
    return atomic_write_text(html_path, body)


def _export_html_quietly(executed: NotebookNode | None, html_path: Path) -> Path | None:
    """HTML is a convenience: when it fails, the run's own verdict must still be reported."""
    if executed is not None:
        try:
            return export_html(executed, html_path)
        except EvalError:
            pass
    html_path.unlink(missing_ok=True)
    return None


def _fail(message: str, record: dict, report_path: Path, executed_path: Path) -> None:
    record.update(ok=False, finished_at=_now(), error=message)
    atomic_write_json(report_path, record)
    raise DryRunFailed(
        message,
        executed_notebook=executed_path if executed_path.exists() else None,
        report=report_path,
    )


def _check_empty_zip(zip_path: Path) -> SubmissionCheck:
    """With ``empty.txt`` the starter kit ``touch``es submission.zip; an empty archive is also fine."""
    if zip_path.stat().st_size == 0:
        return SubmissionCheck((), ())
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = tuple(archive.namelist())
    except zipfile.BadZipFile:
        return SubmissionCheck(
            (),
            (f"submission.zip should be empty with {EMPTY_MARKER} present, but it is not a zip.",),
        )
    if names:
        return SubmissionCheck(
            names,
            (
                f"submission.zip should be empty when the input has {EMPTY_MARKER}, but it holds "
                f"{len(names)} file{'s' if len(names) != 1 else ''} ({_first(names)}).",
            ),
        )
    return SubmissionCheck((), ())


def _load_original(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the mock is broken, not the notebook
        raise EvalError(
            f"The mock input's {path} does not load with torch.load(weights_only=True) "
            f"({type(error).__name__}: {_first_line(str(error))}); rebuild the mock input."
        ) from error


def _load_checkpoint(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, model: torch.nn.Module
) -> tuple[str | None, dict | None]:
    """Load one entry as Kaggle's scorer does; a problem sentence, or the state dict."""
    try:
        state = torch.load(io.BytesIO(archive.read(info)), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "Kaggle cannot load it"
        return (
            f"{info.filename} does not load with torch.load(weights_only=True): "
            f"{type(error).__name__}: {_first_line(str(error))}.",
            None,
        )
    if not isinstance(state, dict):
        return f"{info.filename} holds a {type(state).__name__}, not a state_dict.", None
    labels = ("missing", "unexpected", "wrong shape for")
    details = [
        f"{label} {_first(keys)}"
        for label, keys in zip(labels, key_mismatches(state, model))
        if keys
    ]
    if details:
        return (
            f"{info.filename} does not fit resnet18(num_classes={NUM_CLASSES}) with strict=True "
            f"({'; '.join(details)}).",
            None,
        )
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:
        return (
            f"{info.filename} does not load into resnet18(num_classes={NUM_CLASSES}): "
            f"{_first_line(str(error))}.",
            None,
        )
    return None, state


def _same_weights(state: dict, original: dict) -> bool:
    return state.keys() == original.keys() and all(
        torch.equal(state[k], original[k]) for k in original
    )


def _list_names(entries: list[zipfile.ZipInfo]) -> str:
    return f" ({_first([info.filename for info in entries], 4)})" if entries else ""


def _first(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c, ...``: a few names, and dots where some are left out."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _print_summary(
    notebook_path: Path, n_checkpoints: int, empty_input: bool, timing: Timing | None
) -> None:
    if empty_input:
        print(f"Dry-run OK: {notebook_path} wrote an empty submission.zip for the empty.txt input.")
        return
    print(f"Dry-run OK: {notebook_path} wrote {n_checkpoints} valid, changed checkpoints.")
    if timing is None:
        print("No UNLEARNKIT_TIMING line in the notebook's output: timing unknown.")
    else:
        print(timing.summary())


def _method_file(notebook: NotebookNode, notebook_path: Path) -> str:
    """The method's source file as the notebook records it, else the notebook itself."""
    return notebook.metadata.get("unlearnkit", {}).get("source") or str(notebook_path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 200 else line[:197] + "..."
