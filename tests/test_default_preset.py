"""The preset a command scores on when none is named: one constant, named by the README."""

from __future__ import annotations

import re
from pathlib import Path

from cli.main import _parser, make_argv
from local_eval.scoring.presets import DEFAULT_PRESET, PRESETS, get_preset

ROOT = Path(__file__).resolve().parent.parent


def test_the_default_preset_is_the_one_the_readme_names():
    named = re.search(r"default preset is `([a-z_0-9]+)`", (ROOT / "README.md").read_text())
    assert named is not None and named.group(1) == DEFAULT_PRESET


def test_the_default_preset_is_the_full_width_network_on_the_headline_boards_references():
    default, headline = get_preset(DEFAULT_PRESET), PRESETS["faithful_small_full"]
    assert default.arch == "resnet18" and default.persons == "frames"
    assert default.n_models < headline.n_models
    assert {**vars(default), "name": "", "n_models": 0} == {**vars(headline), "name": "", "n_models": 0}


def test_every_scoring_command_defaults_to_the_default_preset():
    parser = _parser()
    for command in (["eval", "m"], ["leaderboard"], ["compare", "a", "b"], ["references"], ["tune", "m"]):
        assert parser.parse_args(command).preset == DEFAULT_PRESET


def test_the_makefile_leaves_the_default_to_the_command_line():
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^\s*(export\s+)?PRESET\s*[:?+]?=", makefile, flags=re.M)
    for command in ("eval", "leaderboard", "compare", "references", "tune"):
        argv = make_argv(command, {"PRESET": ""})  # `make eval` and `make eval PRESET=`
        assert "--preset" not in argv
        assert _parser().parse_args(argv).preset == DEFAULT_PRESET
