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


# --- every command and option defined once: the table, the parsers, the Makefile ---------------

# One value for each make variable the Makefile took before the table, and the command line its
# per-target flag threading made of them: the one generic rule must make the same command lines.
MAKE_VARIABLES = {
    "METHOD": "ftsu", "SET": "lr=0.02 epochs=2", "N_CHECKPOINTS": "1", "PUSH": "1", "PRESET": "smoke",
    "SPLIT": "1", "REQUESTS": "3", "N": "4", "BOOTSTRAP": "50", "EXECUTOR": "ray", "RAY_ADDRESS": "auto",
    "METHODS": "finetune,ftsu", "STATUS": "1", "A": "ftsu", "B": "salun", "BOARDS": "a.md b.md",
    "METRIC": "score klom", "PLOT": "agree.png", "TRIALS": "5", "SPACE": "lr=log:1e-4:1e-1 epochs=int:1:5",
    "WORKERS": "2", "SEED": "3", "FRESH": "1",
}
SETS = ["--set", "lr=0.02", "--set", "epochs=2"]
SCORING = ["--preset", "smoke", "--split", "1", "--requests", "3", "--n-models", "4", "--bootstrap", "50"]
THREADED_BEFORE = {
    "methods": ["methods"],
    "check-notebooks": ["check-notebooks"],
    "notebook": ["notebook", "ftsu", *SETS],
    "dryrun": ["dryrun", "ftsu", *SETS, "--n-checkpoints", "1"],
    "submission": ["submission", "ftsu", *SETS, "--n-checkpoints", "1"],
    "submit": ["submit", "ftsu", *SETS, "--push"],
    "eval": ["eval", "ftsu", *SETS, *SCORING, "--executor", "ray"],
    "leaderboard": ["leaderboard", *SCORING, "--methods", "finetune,ftsu", "--executor", "ray"],
    "references": ["references", "--preset", "smoke", "--n-models", "4", "--status", "--executor", "ray"],
    "compare": ["compare", "ftsu", "salun", *SCORING, "--executor", "ray"],
    "agree": ["agree", "a.md", "b.md", "--split", "1", "--metric", "score", "--metric", "klom", "--plot", "agree.png"],
    "tune": ["tune", "ftsu", "--preset", "smoke", "--trials", "5", "--space", "lr=log:1e-4:1e-1 epochs=int:1:5",
             "--workers", "2", "--n-models", "4", "--seed", "3", "--fresh", "--executor", "ray"],
}  # fmt: skip


def parsed(argv):
    from cli.main import _parser

    found = vars(_parser(argv[0]).parse_args(argv))
    if "space" in found:  # --space "a b" and --space a --space b are one search space (parse_space)
        found["space"] = " ".join(found["space"]).split()
    return found


def test_every_command_line_is_built_from_the_one_table():
    import argparse

    from cli.main import COMMANDS, OPTIONS, _options, _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert list(commands) == list(COMMANDS)
    for command, parser in commands.items():
        built = [name for a in parser._actions if a.dest != "help" for name in a.option_strings or [a.dest]]
        listed = [flag for flag, _, _ in _options(command)]
        assert sorted(built) == sorted(listed) and len(set(listed)) == len(listed), command
    assert all(set(row[0]) <= set(COMMANDS) for row in OPTIONS), "an option names an unknown command"


def test_the_makefile_threads_no_option_and_has_one_rule_for_every_command():
    from cli.main import COMMANDS, _options

    makefile = (REPO / "Makefile").read_text()
    listed = next(line for line in makefile.splitlines() if line.startswith("COMMANDS :="))
    assert listed.split(":=")[1].split() == list(COMMANDS)
    assert [line.strip() for line in makefile.splitlines() if "-m cli" in line] == ["$(PY) -m cli --make $@ $(ARGS)"]
    for command in COMMANDS:
        for flag, make, _ in _options(command):
            assert not make or f"$({make.partition('=')[0]})" not in makefile, (command, flag)


def test_the_one_make_rule_gives_the_command_lines_the_makefile_threaded_before():
    from cli.main import COMMANDS, make_argv

    assert set(THREADED_BEFORE) == set(COMMANDS) - {"mock"}
    for command, before in THREADED_BEFORE.items():
        argv = make_argv(command, MAKE_VARIABLES)
        assert parsed(argv) == parsed(before), command
        # RAY_ADDRESS is never a flag: Ray reads $RAY_ADDRESS, so only EXECUTOR=ray uses it.
        assert "--ray-address" not in argv


def test_make_variables_left_empty_take_the_makefiles_old_defaults():
    import inspect

    from cli.main import make_argv
    from local_eval.replica.dryrun import dry_run
    from local_eval.tuning.tune import TuneRequest

    assert make_argv("eval", {}) == ["eval", "finetune"]  # METHOD ?= finetune, no flag at all
    assert make_argv("compare", {"B": ""}) == ["compare", "ftsu", "finetune"]  # A ?= ftsu, B ?= finetune
    boards = make_argv("agree", {})[1:]
    assert boards == ["docs/leaderboard-faithful_small_full.md", "docs/leaderboard-faithful_medium_full.md"]
    assert parsed(make_argv("eval", {}))["executor"] == "local"  # EXECUTOR ?= local
    # N_CHECKPOINTS ?= 2 and TRIALS ?= 40: left unset, the functions' own defaults, the same.
    assert inspect.signature(dry_run).parameters["n_checkpoints"].default == 2
    assert TuneRequest(method="m").trials == 40


def test_a_new_scenario_needs_no_line_of_the_command_line_or_the_makefile(monkeypatch, capsys):
    import dataclasses

    import pytest

    from cli.main import _parser, _scenario, main, make_argv
    from local_eval.scoring import scenarios

    @dataclasses.dataclass(frozen=True)
    class WholeClass:
        """Forget every image of one class.

        More about it."""

        label: int = 0
        name = "whole_class"

    known = scenarios.scenario_names()
    monkeypatch.setattr(scenarios, "scenario_names", lambda: {**known, "whole_class": WholeClass})
    for command in ("eval", "leaderboard", "compare"):
        argv = make_argv(command, {"WHOLE_CLASS": "7"})
        assert argv[-2:] == ["--whole_class", "7"], argv
        assert _scenario(_parser(command).parse_args(argv)) == WholeClass(label=7)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--whole_class K the whole_class scenario with label = K: Forget every image of one class." in " ".join(capsys.readouterr().out.split())
    assert _scenario(_parser("eval").parse_args(["eval", "m", "--requests", "2"])).k == 2


def test_two_scenarios_at_once_are_refused_in_one_line():
    result = cli("eval", "finetune", "--requests", "2", "--federated", "2")
    assert_one_clear_line(result, "--requests and --federated are separate modes: choose one")


def test_every_command_answers_help(capsys):
    import pytest

    from cli.main import COMMANDS, main

    for command, about in COMMANDS.items():
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert " ".join(about.split()) in " ".join(capsys.readouterr().out.split()), command


def test_mock_is_the_one_mock_input_command_line(monkeypatch, tmp_path, capsys):
    import functools

    from cli.main import main
    from local_eval.replica import mock_input

    seen = {}
    real = mock_input.build_mock_input
    monkeypatch.setattr(mock_input, "build_mock_input", functools.wraps(real)(lambda **kw: seen.update(kw) or tmp_path))
    assert main(["mock", "--out", str(tmp_path), "--dataset", "synthetic", "--n-train", "30", "--n-val", "3",
                 "--seed", "1", "--forget-fraction", "0.1", "--mock-epochs", "1", "--arch", "resnet18_tiny",
                 "--data-root", "d", "--quiet"]) == 0  # fmt: skip
    assert seen == dict(out_dir=tmp_path, dataset="synthetic", n_train=30, n_val=3, seed=1,
                        forget_fraction=0.1, epochs=1, arch="resnet18_tiny", data_root="d", progress=False)  # fmt: skip
    assert capsys.readouterr().out.strip() == str(tmp_path)
    seen.clear()
    assert main(["mock"]) == 0 and seen == {"progress": True}  # every other option: build_mock_input's default
    assert not hasattr(mock_input, "main")  # no second command line


def test_make_runs_the_one_rule_with_its_variables_in_the_environment(tmp_path):
    import os
    import shutil

    import pytest

    if shutil.which("make") is None:
        pytest.skip("no make")
    outside_make = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    plan = subprocess.run(["make", "--no-print-directory", "-n", "test"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=outside_make)  # as from a shell, even under `make test`
    lines = [line.strip() for line in plan.stdout.splitlines()]  # `make test` checks the notebooks first
    assert ".venv/bin/python -m cli --make check-notebooks" in lines and lines[-1] == ".venv/bin/python -m pytest -q -n 2 --dist worksteal"
    env = {**os.environ, "UNLEARNKIT_CACHE": str(tmp_path), "PRESET": "smoke", "N": "3", "STATUS": "1"}
    result = subprocess.run([sys.executable, "-m", "cli", "--make", "references"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "preset smoke (N = 3): 0 of 7 reference models finished" in result.stdout
