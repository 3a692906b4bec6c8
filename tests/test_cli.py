"""The command line: one clear line and a non-zero exit for user mistakes."""

import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
REJECTED = Path(__file__).parent / "rejected_methods"


def cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_clear_line(result, expected):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_notebook_of_a_file_with_a_syntax_error_prints_one_line():
    assert_one_clear_line(cli("notebook", str(REJECTED / "syntax_error.py")), "syntax_error.py:7:")


def test_notebook_of_a_file_without_a_method_class_prints_one_line():
    assert_one_clear_line(cli("notebook", str(REJECTED / "no_method_class.py")), "no method class found")


def test_notebook_of_an_unknown_method_prints_one_line():
    assert_one_clear_line(cli("notebook", "no_such_method"), "unknown method 'no_such_method'")


def test_notebook_of_an_unsupported_construct_prints_one_line():
    assert_one_clear_line(cli("notebook", str(REJECTED / "rebind_net.py")), "rebinds `net`")


def test_bad_set_syntax_prints_one_line():
    assert_one_clear_line(cli("notebook", "finetune", "--set", "lr"), "expected NAME=VALUE")


def test_leaderboard_with_an_empty_methods_list_prints_one_line():
    assert_one_clear_line(cli("leaderboard", "--methods", " , "), "names no method")


def test_notebook_command_prints_the_path_of_a_valid_notebook():
    result = cli("notebook", "finetune", "--set", "lr=0.02")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "LR = 0.02" in next(c.source for c in notebook.cells if c.get("id") == "unlearning")


def test_methods_lists_every_registered_method_with_hyperparameters():
    from methods import all_method_handlers

    result = cli("methods")
    assert result.returncode == 0
    for name in all_method_handlers():
        assert name in result.stdout
    assert "lr=0.001" in result.stdout


def test_main_py_forwards_to_eval_with_a_clear_error_for_unknown_methods():
    result = subprocess.run(
        [sys.executable, "main.py", "-m", "no_such_method", "-p", "smoke"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert_one_clear_line(result, "'no_such_method'")


def test_eval_with_zero_splits_prints_one_line():
    assert_one_clear_line(cli("eval", "finetune", "--preset", "smoke", "--splits", "0"), "at least 1")


def test_the_preset_help_names_every_preset():
    from local_eval.scoring.presets import PRESETS

    for command in ("eval", "tune"):
        text = " ".join(cli(command, "--help").stdout.split())
        assert all(name in text for name in PRESETS), command


def test_compare_over_several_splits_is_refused_in_one_line():
    assert_one_clear_line(cli("compare", "ftsu", "salun", "--splits", "2"), "--split J")


def test_references_status_on_an_empty_cache_reports_none_finished(tmp_path):
    import os

    env = {**os.environ, "UNLEARNKIT_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "references", "--preset", "smoke", "--n-models", "3", "--status"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "preset smoke (N = 3): 0 of 7 reference models finished" in result.stdout


def test_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback(monkeypatch, tmp_path):
    """`cli ... | head` : the reader closes the pipe, the next write fails; that is no error."""
    import errno
    import io
    import os

    from cli.main import main

    class ClosedPipe(io.TextIOBase):
        def __init__(self, fd):
            self._fd = fd

        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def fileno(self):
            return self._fd

    fd = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT)
    monkeypatch.setattr(sys, "stdout", ClosedPipe(fd))
    assert main(["methods"]) == 0
