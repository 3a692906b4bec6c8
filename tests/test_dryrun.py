"""Specification of the dry-run: execute a competition notebook on a mock input, then check it.

The notebooks here are written by hand to the notebook contract in
docs/architecture.md (parameters cell, ``unlearning`` and ``driver`` tags,
checkpoints in WORK_DIR, submission.zip in the working directory, the
UNLEARNKIT_TIMING line), so the dry-run is specified independently of the builder.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from torchvision.models import resnet18

from local_eval.errors import EvalError
from local_eval.replica.dryrun import DryRunFailed, check_submission, dry_run
from local_eval.replica.kernel import ensure_kernel, kernel_dir
from tests.competition_input import write_competition_input

PARAMETERS = """\
DATA_DIR = "/kaggle/input/neurips-2023-machine-unlearning"
WORK_DIR = "/kaggle/tmp"
N_CHECKPOINTS = 512
BATCH_SIZE = 64
REQUIRE_GPU = True
ASSETS_DIR = ""
"""

SETUP = """\
import os
import time
import zipfile

import torch
from torchvision.models import resnet18

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if REQUIRE_GPU and DEVICE != "cuda":
    raise RuntimeError("no GPU")
"""

CHANGES_WEIGHTS = """\
def unlearning(net, retain_loader, forget_loader, val_loader):
    with torch.no_grad():
        net.fc.bias.add_(1.0)
"""

LEAVES_WEIGHTS = """\
def unlearning(net, retain_loader, forget_loader, val_loader):
    net.eval()
"""

RAISES = """\
def unlearning(net, retain_loader, forget_loader, val_loader):
    scale = len(list(net.parameters()))
    raise ValueError(f"forgot how to forget {scale}")
"""

DRIVER = """\
if os.path.exists(os.path.join(DATA_DIR, "empty.txt")):
    zipfile.ZipFile("submission.zip", "w").close()
else:
    os.makedirs(WORK_DIR, exist_ok=True)
    original = torch.load(os.path.join(DATA_DIR, "original_model.pth"), weights_only=True)
    net = resnet18(weights=None, num_classes=10).to(DEVICE)
    seconds = []
    for i in range(CHECKPOINTS_WRITTEN):
        net.load_state_dict(original)
        start = time.perf_counter()
        unlearning(net, None, None, None)
        seconds.append(time.perf_counter() - start)
        torch.save(net.state_dict(), os.path.join(WORK_DIR, f"unlearned_checkpoint_{i}.pth"))
    print(
        f"UNLEARNKIT_TIMING seconds_per_call={sum(seconds) / len(seconds)} "
        f"device={DEVICE} calls={len(seconds)}"
    )
    with zipfile.ZipFile("submission.zip", "w") as archive:
        for name in sorted(os.listdir(WORK_DIR)):
            archive.write(os.path.join(WORK_DIR, name), name)
"""


def write_contract_notebook(
    path: Path, unlearning: str, checkpoints_written: str = "N_CHECKPOINTS"
) -> Path:
    def cell(source: str, tag: str | None = None) -> nbformat.NotebookNode:
        node = nbformat.v4.new_code_cell(source)
        if tag:
            node.metadata["tags"] = [tag]
        return node

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        cell(PARAMETERS, "parameters"),
        cell(SETUP),
        cell(unlearning, "unlearning"),
        cell(DRIVER.replace("CHECKPOINTS_WRITTEN", checkpoints_written), "driver"),
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def save_state(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def mock_input(tmp_path_factory) -> Path:
    """The smallest competition input (the contract notebook reads only its original model)."""
    return write_competition_input(tmp_path_factory.mktemp("mock"))


@pytest.fixture(scope="module")
def empty_input(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("empty_mock")
    (folder / "empty.txt").write_text("")
    return folder


@pytest.fixture(scope="module")
def successful_run(tmp_path_factory, mock_input):
    notebook = write_contract_notebook(
        tmp_path_factory.mktemp("submissions") / "toy" / "toy.ipynb", CHANGES_WEIGHTS
    )
    return notebook, dry_run(notebook, data_dir=mock_input, n_checkpoints=2)


def read_report(folder: Path) -> dict:
    return json.loads((folder / "dryrun.json").read_text())


# --- successful run -----------------------------------------------------------------------


@pytest.mark.slow
def test_successful_run_saves_executed_notebook_and_html_next_to_the_notebook(successful_run):
    notebook, result = successful_run
    assert result.executed_notebook == notebook.parent / "toy.executed.ipynb"
    assert result.html == notebook.parent / "toy.executed.html"
    executed = nbformat.read(result.executed_notebook, as_version=4)
    assert any("UNLEARNKIT_TIMING" in str(cell.get("outputs")) for cell in executed.cells)
    assert "UNLEARNKIT_TIMING" in result.html.read_text()


@pytest.mark.slow
def test_successful_run_checks_exactly_the_requested_checkpoints(successful_run):
    _, result = successful_run
    assert result.ok
    assert sorted(result.checkpoints) == [
        "unlearned_checkpoint_0.pth",
        "unlearned_checkpoint_1.pth",
    ]


@pytest.mark.slow
def test_successful_run_records_verdict_and_hashes_in_dryrun_json(successful_run, mock_input):
    notebook, result = successful_run
    report = read_report(notebook.parent)
    unlearning_cell = next(
        c
        for c in nbformat.read(notebook, as_version=4).cells
        if "unlearning" in c.metadata.get("tags", [])
    )
    assert report["ok"] is True
    assert report["notebook_sha256"] == hashlib.sha256(notebook.read_bytes()).hexdigest()
    assert report["source_sha256"] == hashlib.sha256(unlearning_cell.source.encode()).hexdigest()
    assert report["n_checkpoints"] == 2
    assert report["data_dir"] == str(mock_input.resolve())
    assert report["finished_at"]


@pytest.mark.slow
def test_successful_run_reports_timing_from_the_notebooks_timing_line(successful_run):
    notebook, result = successful_run
    report = read_report(notebook.parent)
    assert result.timing.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert result.timing.calls == 2
    assert report["seconds_per_call"] == result.timing.seconds_per_call
    assert report["device"] == result.timing.device


def test_timing_summary_projects_512_calls_on_the_measured_device():
    from local_eval.replica.dryrun import Timing

    summary = Timing(seconds_per_call=3.0, device="cpu", calls=2).summary()
    assert "3.00 s per call on cpu" in summary
    assert "512 calls would take 25 min 36 s on cpu" in summary


# --- empty.txt input -----------------------------------------------------------------------


@pytest.mark.slow
def test_empty_input_yields_an_empty_submission_zip(tmp_path, empty_input):
    notebook = write_contract_notebook(tmp_path / "toy.ipynb", CHANGES_WEIGHTS)
    result = dry_run(notebook, data_dir=empty_input, n_checkpoints=2)
    assert result.ok and result.empty_input
    assert result.checkpoints == ()
    assert read_report(tmp_path)["ok"] is True


def test_empty_input_rejects_a_zip_with_checkpoints(tmp_path):
    zip_path = tmp_path / "submission.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("unlearned_checkpoint_0.pth", b"")
    check = check_submission(zip_path, n_checkpoints=2, original_model=None)
    assert any("should be empty" in problem for problem in check.problems)


def test_empty_input_accepts_a_touched_zero_byte_zip(tmp_path):
    zip_path = tmp_path / "submission.zip"
    zip_path.touch()
    assert check_submission(zip_path, n_checkpoints=2, original_model=None).problems == ()


# --- failures ---------------------------------------------------------------------------------


def failed_run(folder: Path, data_dir: Path, unlearning: str, **notebook_options) -> DryRunFailed:
    notebook = write_contract_notebook(folder / "toy.ipynb", unlearning, **notebook_options)
    with pytest.raises(DryRunFailed) as failure:
        dry_run(notebook, data_dir=data_dir, n_checkpoints=2)
    return failure.value


@pytest.fixture(scope="module")
def raising_run(tmp_path_factory, mock_input) -> tuple[Path, DryRunFailed]:
    folder = tmp_path_factory.mktemp("raising")
    return folder, failed_run(folder, mock_input, RAISES)


@pytest.fixture(scope="module")
def rejected_run(tmp_path_factory, mock_input) -> tuple[Path, DryRunFailed]:
    """One execution, two faults: one checkpoint short, and the one written is unchanged."""
    folder = tmp_path_factory.mktemp("rejected")
    return folder, failed_run(
        folder, mock_input, LEAVES_WEIGHTS, checkpoints_written="N_CHECKPOINTS - 1"
    )


@pytest.mark.slow
def test_unlearning_that_raises_is_reported_with_cell_line_exception_and_path(raising_run):
    folder, failure = raising_run
    message = str(failure)
    executed = folder / "toy.executed.ipynb"
    assert "ValueError: forgot how to forget" in message
    assert "line 3 of the cell tagged 'unlearning'" in message
    assert 'raise ValueError(f"forgot how to forget {scale}")' in message
    assert "the cell tagged 'driver'" in message
    assert str(executed) in message
    assert failure.executed_notebook == executed


@pytest.mark.slow
def test_unlearning_that_raises_still_saves_executed_notebook_and_html(raising_run):
    folder, _ = raising_run
    executed = nbformat.read(folder / "toy.executed.ipynb", as_version=4)
    assert any(
        output.get("ename") == "ValueError"
        for cell in executed.cells
        for output in cell.get("outputs", [])
    )
    assert "forgot how to forget" in (folder / "toy.executed.html").read_text()


@pytest.mark.slow
def test_unlearning_that_raises_records_ok_false_with_the_report(raising_run):
    folder, failure = raising_run
    report = read_report(folder)
    assert report["ok"] is False
    assert report["error"] == str(failure)


@pytest.mark.slow
def test_checkpoint_identical_to_the_original_is_reported(rejected_run):
    _, failure = rejected_run
    assert (
        "1 of 1 checkpoints (unlearned_checkpoint_0.pth) are identical to original_model.pth"
        in str(failure)
    )


@pytest.mark.slow
def test_zip_with_the_wrong_number_of_checkpoints_is_reported(rejected_run):
    _, failure = rejected_run
    assert "holds 1 file (unlearned_checkpoint_0.pth), expected exactly 2 checkpoints" in str(
        failure
    )


@pytest.mark.slow
def test_rejected_submission_records_ok_false(rejected_run):
    folder, failure = rejected_run
    assert read_report(folder)["ok"] is False
    assert read_report(folder)["error"] == str(failure)


def test_checkpoint_for_another_architecture_is_reported(tmp_path, mock_input):
    zip_path = tmp_path / "submission.zip"
    other = save_state(resnet18(weights=None, num_classes=100).state_dict(), tmp_path / "x.pth")
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.write(other, "unlearned_checkpoint_0.pth")
    check = check_submission(
        zip_path, n_checkpoints=1, original_model=mock_input / "original_model.pth"
    )
    assert len(check.problems) == 1
    assert "wrong shape for fc.weight" in check.problems[0]


def test_missing_mock_input_is_a_clear_error_before_anything_runs(tmp_path):
    notebook = write_contract_notebook(tmp_path / "toy.ipynb", CHANGES_WEIGHTS)
    with pytest.raises(EvalError, match="does not exist"):
        dry_run(notebook, data_dir=tmp_path / "no-such-mock")
    assert not (tmp_path / "dryrun.json").exists()


# --- kernel ---------------------------------------------------------------------------------


def test_kernel_is_registered_for_this_interpreter(tmp_path):
    assert ensure_kernel(prefix=tmp_path) == "unlearnkit"
    spec = json.loads((kernel_dir(tmp_path) / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable


def test_kernel_registration_leaves_a_current_spec_untouched(tmp_path):
    ensure_kernel(prefix=tmp_path)
    spec_file = kernel_dir(tmp_path) / "kernel.json"
    os.utime(spec_file, (0, 0))
    ensure_kernel(prefix=tmp_path)
    assert spec_file.stat().st_mtime == 0


def test_kernel_registration_replaces_a_spec_for_another_python(tmp_path):
    spec_file = kernel_dir(tmp_path) / "kernel.json"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(
        json.dumps({"argv": ["/old/clone/.venv/bin/python"], "language": "python"})
    )
    ensure_kernel(prefix=tmp_path)
    assert json.loads(spec_file.read_text())["argv"][0] == sys.executable


# --- failure reports without a kernel ----------------------------------------------------------


def executed_cells(*cells: tuple[str, str | None, int, bool]) -> nbformat.NotebookNode:
    """An executed notebook: (source, tag, execution count, whether papermill started the cell)."""
    notebook = nbformat.v4.new_notebook()
    for source, tag, count, started in cells:
        cell = nbformat.v4.new_code_cell(source, execution_count=count)
        cell.metadata["tags"] = [tag] if tag else []
        cell.metadata["papermill"] = {"start_time": "2024-01-01T00:00:00" if started else None}
        notebook.cells.append(cell)
    return notebook


HUNG_NOTEBOOK = executed_cells(
    ("N = 2", "parameters", 1, True),
    ("def unlearning(net):\n    while True:\n        net.step()", "unlearning", 2, True),
    ("for i in range(N):\n    unlearning(net)", "driver", 3, True),
    ("print('done')", None, None, False),
)


def test_timeout_report_names_the_line_where_the_cell_was_interrupted(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    from local_eval.replica.notebook_failure import describe_failure

    error = PapermillExecutionError(
        cell_index=2,
        exec_count=3,
        source=HUNG_NOTEBOOK.cells[2].source,
        ename="KeyboardInterrupt",
        evalue="",
        traceback=[
            "\x1b[31mKeyboardInterrupt\x1b[39m   Traceback (most recent call last)",
            "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[3]\x1b[39m\x1b[32m, line 2\x1b[39m\n----> 2     unlearning(net)\n",
            "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[2]\x1b[39m\x1b[32m, line 3\x1b[39m, in \x1b[36munlearning\x1b[39m(net)\n",
            "\x1b[31mKeyboardInterrupt\x1b[39m: ",
        ],
    )
    message = describe_failure(
        error, HUNG_NOTEBOOK, notebook_path=tmp_path / "m.ipynb", executed_path=None, timeout=40
    )
    assert "timed out after 40 s, interrupted in unlearning() at line 3" in message
    assert "`net.step()`" in message
    assert "called from line 2 of the cell tagged 'driver'" in message


def test_dead_kernel_report_names_the_cell_that_was_running(tmp_path):
    from nbclient.exceptions import DeadKernelError

    from local_eval.replica.notebook_failure import describe_failure

    message = describe_failure(
        DeadKernelError("Kernel died"),
        HUNG_NOTEBOOK,
        notebook_path=tmp_path / "m.ipynb",
        executed_path=None,
    )
    assert "kernel died" in message
    assert "the cell tagged 'driver' (cell 2, In [3])" in message


def test_unknown_kernel_name_is_a_clear_error_before_anything_runs(tmp_path, mock_input):
    notebook = write_contract_notebook(tmp_path / "toy.ipynb", CHANGES_WEIGHTS)
    with pytest.raises(EvalError, match="kernel 'no-such-kernel' is not installed"):
        dry_run(notebook, data_dir=mock_input, kernel_name="no-such-kernel")
    assert not (tmp_path / "dryrun.json").exists()
